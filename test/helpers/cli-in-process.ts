import { PassThrough } from 'node:stream';
import { Cli } from 'clipanion';
import { expect, vi } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { runQuick } from '../../src/cli/quick.js';

/** A stream that keeps what is written to it, as text; with `terminal`, one that says it is a terminal. */
export function collector(terminal = false): { stream: PassThrough; text: () => string } {
  const stream = terminal ? Object.assign(new PassThrough(), { isTTY: true }) : new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  return { stream, text: () => text };
}

/**
 * The CLI run in this process as bin/agentd runs it: the quick path first (plain status, history,
 * trigger), then clipanion; its exit code and what it wrote. With `terminal`, stdout and stderr say they
 * are a terminal (what the CLI makes visible there).
 */
export async function runCliInProcess(
  argv: string[],
  options: { terminal?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [out, err] = [collector(options.terminal), collector(options.terminal)];
  const quick = await runQuick(argv, { stdout: out.stream, stderr: err.stream });
  const context = { ...Cli.defaultContext, stdout: out.stream, stderr: err.stream };
  const code = quick ?? (await (await buildCli(argv[0])).run(argv, context));
  // What a command wrote just before it returned reaches the collectors on the next turn.
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout: out.text(), stderr: err.text() };
}

/**
 * The entry (src/cli/index.ts) run as `agentd ARGV` in this process, with process.stdout and stderr
 * collected: its exit code and what it printed. For what the entry itself does (its --json failure, its
 * handling of a long usage error); everything it changed on `process` is put back.
 */
export async function runEntryInProcess(
  argv: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  });
  const savedArgv = process.argv;
  const exitListeners = process.listeners('exit');
  process.argv = [process.execPath, 'agentd', ...argv];
  process.exitCode = undefined;
  try {
    vi.resetModules();
    await import('../../src/cli/index.js');
    await vi.waitFor(() => expect(process.exitCode).toBeDefined(), { timeout: 5000 });
    return { code: Number(process.exitCode), stdout, stderr };
  } finally {
    process.argv = savedArgv;
    process.exitCode = undefined;
    // The entry's own, at its exit (src/cli/output-streams.ts): not this worker's.
    for (const l of process.listeners('exit')) if (!exitListeners.includes(l)) process.off('exit', l);
    vi.restoreAllMocks();
  }
}
