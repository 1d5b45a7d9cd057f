import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { podman, run, sleep } from './proc.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The built CLI as bin/agentd runs it (dist/cli/index.js in one file: scripts/bundle-cli.mjs). */
export const CLI = join(ROOT, 'dist', 'cli', 'agentd.cjs');
/** The `agentd` command as installed (package.json "bin"): the sh wrapper that runs CLI. */
export const BIN = join(ROOT, 'bin', 'agentd');
export const IMAGE = process.env.BENCH_IMAGE ?? 'localhost/agentd-base:bookworm';
export const TOKEN_ENV = 'AGENTD_BENCH_TOKEN';
export const TOKEN = 'bench-token-value';

/** Imports a module of the built daemon (dist/): the bench measures what `npm run build` made. */
/** Children the bench started: killed (by pid) if the bench exits without stopping them. */
const children = new Set();
function track(child, group = false) {
  children.add({ child, group });
  child.once('exit', () => {
    for (const entry of children) if (entry.child === child) children.delete(entry);
  });
}
function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    // already gone
  }
}
process.on('exit', () => {
  for (const { child, group } of children) {
    if (group) killGroup(child);
    else if (child.exitCode === null) child.kill('SIGKILL');
  }
});

export function dist(path) {
  return import(join(ROOT, 'dist', path));
}

/** One temp dir for the whole run; removed at the end. */
export function workDir() {
  return mkdtempSync(join(tmpdir(), 'agentd-bench-'));
}

async function freePort() {
  const server = createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

/** A small repository served by `git daemon` on 127.0.0.1; returns { url, stop }. */
export async function serveRepo(dir) {
  const base = join(dir, 'git');
  const work = join(base, 'work');
  mkdirSync(work, { recursive: true });
  const git = (args, cwd = work) =>
    run('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', ...args], { cwd });
  await git(['init', '-q', '-b', 'main']);
  writeFileSync(join(work, 'README.md'), '# bench repo\n');
  writeFileSync(join(work, 'main.sh'), 'echo hello\n');
  await git(['add', '.']);
  await git(['commit', '-q', '-m', 'initial']);
  await git(['clone', '-q', '--bare', work, join(base, 'repo.git')], base);
  const port = await freePort();
  const child = spawn(
    'git',
    [
      'daemon',
      '--export-all',
      `--base-path=${base}`,
      '--listen=127.0.0.1',
      `--port=${port}`,
      '--reuseaddr',
      base,
    ],
    // Its own process group: `git daemon` forks git-daemon, and both must go at the end.
    { stdio: 'ignore', detached: true },
  );
  track(child, true);
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) break;
    await sleep(25);
  }
  return {
    url: `git://127.0.0.1:${port}/repo.git`,
    stop: () => killGroup(child),
  };
}

/**
 * A `podman` wrapper to put first on a PATH: it appends `argv[1] argv[2]` of every invocation to logFile,
 * then runs the real podman. Returns the directory to prepend to PATH.
 */
export async function podmanCounter(dir, logFile) {
  const real = (await run('sh', ['-c', 'command -v podman'])).stdout.trim();
  const bin = join(dir, 'counting-bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'podman'),
    `#!/bin/sh\nprintf '%s %s\\n' "$1" "$2" >> '${logFile}'\nexec '${real}' "$@"\n`,
  );
  chmodSync(join(bin, 'podman'), 0o755);
  writeFileSync(logFile, '');
  return bin;
}

/** Sends one request line on the daemon socket and resolves with the first reply (or rejects). */
export function request(socketPath, message, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no reply'));
    }, timeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('connect', () => socket.write(`${JSON.stringify({ v: 1, ...message })}\n`));
    const lines = createInterface({ input: socket });
    lines.on('error', () => {});
    lines.once('line', (line) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(JSON.parse(line));
    });
  });
}

/** Resolves once the socket accepts a connection and answers `hello`; polls every `everyMs`. */
export async function untilReady(socketPath, { timeoutMs = 60_000, everyMs = 5, child } = {}) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (child && child.exitCode !== null)
      throw new Error(`daemon exited with ${child.exitCode} before ready`);
    try {
      const reply = await request(socketPath, { type: 'hello' }, 2000);
      if (reply.type === 'hello') return reply;
    } catch {
      // not yet
    }
    await sleep(everyMs);
  }
  throw new Error(`daemon on ${socketPath} not ready within ${timeoutMs} ms`);
}

/** The command of the output-heavy agent: MB megabytes of 100-byte lines on stdout. */
export function printerCommand(mb) {
  return ['sh', '-c', `yes ${'x'.repeat(99)} | head -c ${mb * 1024 * 1024}`];
}

/**
 * Writes the daemon config (JSON is YAML): agents `demo` (command true), `demo10` (the same with 10
 * credentials), `sleeper` (sleep 5) and `printer` (prints outputMb MB).
 */
export function writeConfig(dir, { maxSessions, outputMb = 50 }) {
  mkdirSync(dir, { recursive: true });
  const agent = (name, command, credentials = 1) => ({
    name,
    image: IMAGE,
    command,
    network: 'host',
    credentials: Array.from({ length: credentials }, (_, i) => ({
      name: i === 0 ? 'BENCH_TOKEN' : `BENCH_TOKEN_${i}`,
      source: `env:${TOKEN_ENV}`,
    })),
  });
  const config = {
    daemon: {
      socket: join(dir, 'run', 'agentd.sock'),
      state_dir: join(dir, 'state'),
      max_sessions: maxSessions,
      stop_grace: '2s',
    },
    agents: [
      agent('demo', ['true']),
      agent('demo10', ['true'], 10),
      agent('sleeper', ['sleep', '5']),
      agent('printer', printerCommand(outputMb)),
    ],
  };
  const file = join(dir, 'agentd.yaml');
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return { file, socket: config.daemon.socket, stateDir: config.daemon.state_dir };
}

/** The instance id the daemon derives from its socket and state dir (same function as the daemon). */
export async function instanceOf(config) {
  const { instanceIdOf } = await dist('daemon/instance-id.js');
  return instanceIdOf(config.socket, config.stateDir);
}

/**
 * Spawns `agentd start` (logs to DIR/daemon-N.log). Returns { child, pid, spawnedAt, ready, stop }.
 * `pathPrefix` goes first on the daemon's PATH (the counting podman wrapper); `nodeArgs` go to node
 * before the CLI (`--cpu-prof`).
 */
let launches = 0;
export function spawnDaemon(dir, config, { pathPrefix, nodeArgs = [] } = {}) {
  const log = openSync(join(dir, `daemon-${++launches}.log`), 'a');
  const env = { ...process.env, [TOKEN_ENV]: TOKEN };
  if (pathPrefix) env.PATH = `${pathPrefix}:${env.PATH}`;
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'start', '--config', config.file], {
    env,
    stdio: ['ignore', log, log],
  });
  track(child);
  const exited = new Promise((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    pid: child.pid,
    spawnedAt,
    exited,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(30_000).then(() => 'timeout')]);
      if (code === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Starts a daemon and waits until it answers hello. */
export async function startDaemon(dir, config, options) {
  const daemon = spawnDaemon(dir, config, options);
  await untilReady(config.socket, { child: daemon.child });
  return daemon;
}

/** VmRSS and VmHWM of a process, in bytes. */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/**
 * Removes the Podman objects this run made and nothing else: containers labelled with one of the
 * run's instance ids or its baseline label, secrets whose name starts with one of the run's prefixes.
 */
export async function cleanupPodman({ instanceIds, baselineLabel, secretPrefixes }) {
  const filters = [...instanceIds.map((id) => `label=io.agentd.instance=${id}`)];
  if (baselineLabel) filters.push(`label=io.agentd.bench=${baselineLabel}`);
  const ids = new Set();
  for (const filter of filters) {
    const out = await podman(['ps', '-a', '-q', '--filter', filter], { allowFail: true });
    for (const id of out.split('\n').filter(Boolean)) ids.add(id);
  }
  // In runs of 500 names: far below ARG_MAX. Never killed: the reconciliation bench may leave thousands of
  // secrets, whose removal takes a minute, and a `podman secret` command killed mid-write can corrupt the store.
  for (const batch of runsOf([...ids], 500))
    await podman(['rm', '-f', '--time', '0', ...batch], { allowFail: true, timeoutMs: 0 });
  const secrets = (await podman(['secret', 'ls', '--format', '{{.Name}}'], { allowFail: true }))
    .split('\n')
    .filter((n) => n && secretPrefixes.some((p) => n.startsWith(p)));
  for (const batch of runsOf(secrets, 500))
    await podman(['secret', 'rm', ...batch], { allowFail: true, timeoutMs: 0 });
  return { containers: ids.size, secrets: secrets.length };
}

function runsOf(items, size) {
  const runs = [];
  for (let i = 0; i < items.length; i += size) runs.push(items.slice(i, i + size));
  return runs;
}

export function removeDir(dir) {
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}

/**
 * Triggers a session straight on the socket (no CLI process) and follows it to its outcome.
 * Resolves with { ms, record, phases: [[phase, msSinceSend]] }.
 */
export function triggerOnSocket(socketPath, fields, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const phases = [];
    const socket = connect(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no outcome'));
    }, timeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('connect', () =>
      socket.write(`${JSON.stringify({ v: 1, type: 'trigger', follow: true, ...fields })}\n`),
    );
    const lines = createInterface({ input: socket });
    lines.on('error', () => {});
    lines.on('line', (line) => {
      const reply = JSON.parse(line);
      const at = performance.now() - started;
      if (reply.type === 'accepted' || reply.type === 'phase') phases.push([reply.phase ?? 'accepted', at]);
      if (reply.type === 'outcome' || reply.type === 'rejected' || reply.type === 'error') {
        clearTimeout(timer);
        socket.destroy();
        if (reply.type !== 'outcome') reject(new Error(`trigger failed: ${line}`));
        else resolve({ ms: at, record: reply.record, phases });
      }
    });
  });
}
