import { spawn } from 'node:child_process';

/**
 * Runs a process to its exit and times it from spawn to exit (whole process: start-up included).
 * Resolves with { code, stdout, stderr, ms }; rejects when it exits non-zero unless allowFail. A timeoutMs of 0
 * never kills it (a `podman secret` command must not be killed mid-write).
 */
export function run(cmd, args, { env, cwd, input, allowFail = false, timeoutMs = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, {
      env: env ?? process.env,
      cwd,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
    });
    const timer = timeoutMs > 0 ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined;
    let ms = 0;
    child.on('exit', () => {
      ms = performance.now() - started;
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code: code ?? 128, signal, stdout, stderr, ms };
      if (code !== 0 && !allowFail) {
        const what = [cmd, ...args].join(' ').slice(0, 300);
        reject(
          new Error(`${what} exited with ${code ?? signal}:\n${stderr.slice(-2000)}${stdout.slice(-500)}`),
        );
      } else resolve(result);
    });
    if (input !== undefined) {
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
  });
}

/** Runs `podman ARGS`; resolves with stdout. */
export async function podman(args, options = {}) {
  return (await run('podman', args, options)).stdout;
}

/** Maps items through fn with at most `limit` running at once. */
export async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
