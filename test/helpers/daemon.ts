import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { constants as osConstants } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { afterAll, beforeAll } from 'vitest';
import { stringify } from 'yaml';
import { instanceIdOf } from '../../src/daemon/instance-id.js';
import { instanceSecretPrefix } from '../../src/runner/names.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import { type Gate, startGate } from './gate.js';
import { type GitServer, startGitServer } from './git-server.js';
import { listAgentdContainers, listSecrets, listVolumes, TEST_IMAGE } from './podman.js';
import { cleanupAll, endProcessGroup, makeTempDir, track } from './resources.js';
import { recordInstance } from './run-instances.js';
import { RUN_MARKER } from './run-processes.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
/**
 * The built CLI as bin/agentd runs it: dist/cli/index.js in one CommonJS file (scripts/bundle-cli.mjs).
 * The vitest globalSetup builds dist/ before any test file runs.
 */
export const CLI = join(ROOT, 'dist', 'cli', 'agentd.cjs');

/** One JSON line of the daemon's log (pino). */
export interface LogLine {
  level: number;
  time: number;
  msg: string;
  event?: string;
  [key: string]: unknown;
}

export interface CliResult {
  /** Exit code; 128 + signal number when the process was killed by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Added to (or, when undefined, removed from) the environment. */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed; stdin is empty otherwise. */
  input?: string;
}

/** A CLI process running in the background. */
export interface CliProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout matches; rejects when the process exits first or after timeoutMs. */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Same for stderr. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  signal(signal: NodeJS.Signals): void;
  readonly result: Promise<CliResult>;
}

/** The files of one test daemon, all inside one tracked temp dir. */
export interface DaemonFiles {
  dir: string;
  configPath: string;
  /** In a subdirectory that does not exist until the daemon makes it (so its mode can be checked). */
  socketPath: string;
  stateDir: string;
  pidFile: string;
  /** What the daemon will derive from socket path and state dir. */
  instanceId: string;
  /** `agentd-<first 8 of instanceId>-`: every container and secret of this instance starts with it. */
  prefix: string;
}

export interface DaemonConfig {
  /** Agents as written in the YAML file. */
  agents: Record<string, unknown>[];
  /** Merged over { socket, state_dir, stop_grace: 2s }. */
  daemon?: Record<string, unknown>;
  /** `hosts:` as written in the YAML file. */
  hosts?: Record<string, unknown>[];
}

export interface LaunchOptions {
  /** Added to (or, when undefined, removed from) the daemon's environment. */
  env?: Record<string, string | undefined>;
  /** Extra arguments after `start --config FILE`. */
  args?: string[];
  /** The daemon's working directory (the test's by default). */
  cwd?: string;
}

/**
 * Writes a daemon's config file with its socket and state dir: a new instance's, or an existing one's
 * rewritten in place (the same instance, another configuration).
 */
export function writeDaemonConfig(
  files: Pick<DaemonFiles, 'configPath' | 'socketPath' | 'stateDir'>,
  config: DaemonConfig,
): void {
  const yaml = {
    daemon: { socket: files.socketPath, state_dir: files.stateDir, stop_grace: '2s', ...config.daemon },
    ...(config.hosts === undefined ? {} : { hosts: config.hosts }),
    agents: config.agents,
  };
  writeFileSync(files.configPath, stringify(yaml));
}

/** Writes the config file of a new daemon instance into a fresh tracked temp dir. */
export function prepareDaemon(config: DaemonConfig): DaemonFiles {
  const dir = makeTempDir('agentd-e2e-daemon-');
  const socketPath = join(dir, 'run', 'agentd.sock');
  const stateDir = join(dir, 'state');
  const configPath = join(dir, 'agentd.yaml');
  writeDaemonConfig({ configPath, socketPath, stateDir }, config);
  const instanceId = instanceIdOf(socketPath, stateDir);
  return {
    dir,
    configPath,
    socketPath,
    stateDir,
    pidFile: join(stateDir, 'agentd.pid'),
    instanceId,
    prefix: instanceSecretPrefix(instanceId),
  };
}

/**
 * For a daemon a test spawns itself on prepared files, what launchDaemon does for its own: the instance
 * noted for the run's teardown check, and its containers and secrets removed at cleanup whatever happens.
 * Call it before registering the callback that kills the daemon (callbacks run last registered first).
 */
export function ownInstance(files: Pick<DaemonFiles, 'prefix'>): void {
  recordInstance(files.prefix);
  track.onCleanup(() => removeInstanceObjects(files.prefix));
}

/** Writes a config, starts `agentd start` on it and waits until its socket accepts. */
export async function startDaemon(config: DaemonConfig, options: LaunchOptions = {}): Promise<TestDaemon> {
  const daemon = launchDaemon(prepareDaemon(config), options);
  await daemon.ready();
  return daemon;
}

/** Starts `agentd start --config FILE` without waiting for it (for daemons expected to fail). */
export function launchDaemon(files: DaemonFiles, options: LaunchOptions = {}): TestDaemon {
  return new TestDaemon(files, options);
}

/** Every daemon launched by this test file. */
const launched: TestDaemon[] = [];
/** Objects a test planted on purpose under an instance prefix; they are not leaks. */
const planted = new Set<string>();

/** Marks a planted object (container or secret name) so leftoversOfDaemons() does not report it. */
export function allowLeftover(name: string): void {
  planted.add(name);
}

/**
 * What the daemons of this test file left in Podman under their instance prefixes, as
 * `container NAME (state)` / `secret NAME` lines. Call it in afterEach before cleanupAll(), so a leak
 * fails the test instead of being cleaned away unseen.
 */
export async function leftoversOfDaemons(): Promise<string[]> {
  const prefixes = [...new Set(launched.map((d) => d.prefix))];
  const out: string[] = [];
  for (const prefix of prefixes) {
    const [containers, secrets] = await Promise.all([listAgentdContainers(prefix), listSecrets(prefix)]);
    for (const c of containers) if (!planted.has(c.name)) out.push(`container ${c.name} (${c.state})`);
    for (const s of secrets) if (!planted.has(s)) out.push(`secret ${s}`);
  }
  return out;
}

/**
 * What the daemons of this test file left in Podman (leftoversOfDaemons), read before cleanupAll()
 * removes it with everything else the file tracked. In afterEach:
 * `expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([])`.
 */
export async function leftoversAfterCleanup(): Promise<string[]> {
  const left = await leftoversOfDaemons();
  await cleanupAll();
  return left;
}

/** The git server and gate of a test file (gitAndGate), and its agents' definitions over them. */
export interface GitAndGate {
  /** Serves the agents' repository on 127.0.0.1 (git://). */
  readonly git: GitServer;
  /** What gated agents wait at (gate.command) until the test opens it. */
  readonly gate: Gate;
  /** An agent as written in the YAML config: the test image, the git server's repository, host network. */
  agent(name: string, command: string[], extra?: Record<string, unknown>): Record<string, unknown>;
}

/**
 * For a test file whose daemons' agents clone from a local git server and wait at a gate: starts both
 * in a beforeAll and stops them in an afterAll. Call once at the file's top level, before its own hooks:
 * `git` and `gate` can be used from its own beforeAll on, and its own afterAll runs before they stop.
 */
export function gitAndGate(): GitAndGate {
  let git: GitServer | undefined;
  let gate: Gate | undefined;
  beforeAll(async () => {
    [git, gate] = await Promise.all([startGitServer(), startGate()]);
  });
  afterAll(async () => {
    await Promise.allSettled([git?.stop(), gate?.close()]);
  });
  const started = <T extends object>(name: string, get: () => T | undefined): T =>
    new Proxy({} as T, {
      get: (_, key) => {
        const value = get();
        if (value === undefined)
          throw new Error(`the ${name} is started in beforeAll: use it in a hook or test`);
        return Reflect.get(value, key);
      },
    });
  const gitServer = started('git server', () => git);
  return {
    git: gitServer,
    gate: started('gate', () => gate),
    agent: (name, command, extra = {}) => ({
      name,
      image: TEST_IMAGE,
      command,
      repo: gitServer.url(),
      network: 'host',
      ...extra,
    }),
  };
}

/**
 * After a test of a file whose tests share one daemon (and a gate): ends the CLI processes still
 * running, opens the gate and cancels whatever is still queued or running, waiting for its outcomes
 * (a test that failed halfway may leave sessions behind), reads what the file's daemons left in Podman
 * and removes this daemon's objects, and holds the gate again, so the next test starts clean. Returns
 * the ids it had to cancel (`busy`) and the leftovers (`left`), for the file's afterEach to assert empty.
 */
export async function settleSharedDaemon(
  d: TestDaemon,
  gate: Gate,
): Promise<{ busy: string[]; left: string[] }> {
  await stopCliProcesses();
  gate.open();
  const busy = await quiesce(d);
  const left = await leftoversOfDaemons();
  await removeInstanceObjects(d.prefix);
  gate.hold();
  return { busy, left };
}

/** Cancels whatever is still queued or running and waits for its outcome; returns those ids. */
async function quiesce(daemon: TestDaemon): Promise<string[]> {
  if (!daemon?.running) return [];
  const status = (await daemon.request({ type: 'status' })) as
    | { running: { id: string }[]; queued: { id: string }[] }
    | undefined;
  const ids = [...(status?.running ?? []), ...(status?.queued ?? [])].map((s) => s.id);
  for (const id of ids) await daemon.request({ type: 'cancel', sessionId: id });
  await Promise.all(ids.map((id) => daemon.waitForOutcome(id, 60_000)));
  return ids;
}

/** A real daemon process (`node dist/cli/agentd.cjs start`) and the CLI pointed at it. */
export class TestDaemon {
  readonly files: DaemonFiles;
  readonly child: ChildProcess;
  /** Resolves when the process has exited and its output is read. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly lines: LogLine[] = [];
  private stderrText = '';
  private stdoutText = '';
  private readonly waiters = new Set<() => void>();
  private helloInstanceId: string | undefined;
  /** Set once the process exited and all its output was read. */
  private finished = false;

  constructor(files: DaemonFiles, options: LaunchOptions) {
    this.files = files;
    recordInstance(files.prefix);
    const env = mergeEnv(withoutAgentdEnv(process.env), options.env ?? {});
    this.child = track.process(
      spawn(process.execPath, [CLI, 'start', '--config', files.configPath, ...(options.args ?? [])], {
        // Its own process group, so cleanup can kill it with every podman child it started.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env,
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      }),
    );
    launched.push(this);
    // Whatever happens to the test, this instance's containers and secrets go (after the kill).
    track.onCleanup(() => removeInstanceObjects(files.prefix));
    const stdoutDone = new Promise<void>((resolve) => {
      this.child.stdout?.on('data', (chunk: Buffer) => {
        this.stdoutText += chunk.toString();
      });
      this.child.stdout?.on('close', resolve);
    });
    const stderrDone = new Promise<void>((resolve) => {
      const reader = createInterface({ input: this.child.stderr as NodeJS.ReadableStream });
      reader.on('line', (line) => {
        this.stderrText += `${line}\n`;
        try {
          const parsed = JSON.parse(line) as LogLine;
          if (typeof parsed === 'object' && parsed !== null) this.lines.push(parsed);
        } catch {
          // Not a log line (e.g. the plain `agentd: ...` message on a failed start): kept in stderr().
        }
        this.notify();
      });
      reader.on('close', resolve);
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        void Promise.all([stdoutDone, stderrDone]).then(() => {
          this.finished = true;
          resolve({ code, signal });
          this.notify();
        });
      });
    });
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get socketPath(): string {
    return this.files.socketPath;
  }

  get prefix(): string {
    return this.files.prefix;
  }

  /** The instance id the daemon reported (hello reply), or the derived one before it is ready. */
  get instanceId(): string {
    return this.helloInstanceId ?? this.files.instanceId;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Parsed JSON log lines so far. */
  logs(): LogLine[] {
    return [...this.lines];
  }

  /** Everything written to stderr so far. */
  stderr(): string {
    return this.stderrText;
  }

  stdout(): string {
    return this.stdoutText;
  }

  /** Waits for the `daemon.ready` log line, then asks `hello` on the socket. */
  async ready(timeoutMs = 60_000): Promise<void> {
    const line = await this.waitForLog((l) => l.event === 'daemon.ready', timeoutMs);
    const hello = await this.request({ type: 'hello', client: 'e2e' });
    if (hello?.type !== 'hello') throw new Error(`hello got ${JSON.stringify(hello)}`);
    if (hello.instanceId !== line.instanceId) {
      throw new Error(`hello says instance ${String(hello.instanceId)}, the log ${String(line.instanceId)}`);
    }
    this.helloInstanceId = String(hello.instanceId);
  }

  /** The first log line (already written or still to come) for which match is true. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs = 60_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.lines.find(match);
        if (found) {
          done();
          resolve(found);
        } else if (this.finished) {
          done();
          reject(new Error(`the daemon exited (${this.child.exitCode}) first; stderr:\n${this.stderrText}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr:\n${this.stderrText}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** The `session.outcome` log line of a session, once it is written. */
  waitForOutcome(sessionId: string, timeoutMs = 60_000): Promise<LogLine> {
    return this.waitForLog((l) => l.event === 'session.outcome' && l.session === sessionId, timeoutMs);
  }

  /** The `session.phase` log line of a session entering phase. */
  waitForPhase(sessionId: string, phase: string, timeoutMs = 60_000): Promise<LogLine> {
    return this.waitForLog(
      (l) => l.event === 'session.phase' && l.session === sessionId && l.phase === phase,
      timeoutMs,
    );
  }

  /** Runs the built CLI with AGENTD_SOCKET pointing at this daemon and waits for it. */
  cli(args: string[], options: CliOptions = {}): Promise<CliResult> {
    return this.spawnCli(args, options).result;
  }

  /** Starts the built CLI with AGENTD_SOCKET pointing at this daemon, in the background. */
  spawnCli(args: string[], options: CliOptions = {}): CliProcess {
    return spawnCli(args, { ...options, env: { AGENTD_SOCKET: this.files.socketPath, ...options.env } });
  }

  /** One request on the socket (the protocol, not the CLI); resolves with the first reply line. */
  async request(message: Record<string, unknown>): Promise<Record<string, unknown> | undefined> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.files.socketPath);
      const reader = createInterface({ input: socket });
      reader.once('line', (line) => {
        socket.destroy();
        resolve(JSON.parse(line) as Record<string, unknown>);
      });
      reader.once('close', () => resolve(undefined));
      socket.once('error', reject);
      socket.write(`${JSON.stringify({ v: 1, ...message })}\n`);
    });
  }

  /** Sends a signal to the daemon process (not its group). */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Resolves with the exit code once the process exited; rejects after timeoutMs (the test fails, cleanup kills it). */
  async waitForExit(timeoutMs = 60_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`the daemon did not exit within ${timeoutMs} ms; stderr:\n${this.stderrText}`)),
        timeoutMs,
      );
    });
    try {
      return (await Promise.race([this.exited, timeout])).code;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends signal and waits for the exit; after timeoutMs ends the group (podman secret commands are
   * let finish: see endProcessGroup). Resolves with the exit code.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 60_000): Promise<number | null> {
    if (this.running) this.signal(signal);
    const timer = setTimeout(() => void endProcessGroup(this.pid), timeoutMs);
    const { code } = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** The session records in the state dir. */
  records(): SessionRecord[] {
    const dir = join(this.files.stateDir, 'sessions');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((name) => name.endsWith('.json'))
      .map((name) => JSON.parse(readFileSync(join(dir, name), 'utf8')) as SessionRecord);
  }

  record(sessionId: string): SessionRecord | undefined {
    return this.records().find((r) => r.id === sessionId);
  }

  /** Every file of the state dir (records, logs, pid file) concatenated: for "never written" checks. */
  stateDirText(): string {
    const out: string[] = [];
    const walk = (dir: string) => {
      if (!existsSync(dir)) return;
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.isFile()) out.push(readFileSync(path, 'utf8'));
      }
    };
    walk(this.files.stateDir);
    return out.join('\n');
  }

  /** This instance's containers and secrets as podman lists them now. */
  async leftovers(): Promise<{ containers: string[]; secrets: string[] }> {
    const [containers, secrets] = await Promise.all([
      listAgentdContainers(this.files.prefix),
      listSecrets(this.files.prefix),
    ]);
    return { containers: containers.map((c) => `${c.name} (${c.state})`), secrets };
  }

  private notify(): void {
    for (const check of [...this.waiters]) check();
  }
}

/** CLI processes started by spawnCli that may still run. */
const cliProcesses = new Set<ChildProcess>();

/**
 * Kills the CLI processes still running (a test that failed halfway) and waits for them, so a test
 * file sharing one daemon between tests can clean up after each test without stopping the daemon.
 */
export async function stopCliProcesses(): Promise<void> {
  const running = [...cliProcesses].filter((c) => c.exitCode === null && c.signalCode === null);
  cliProcesses.clear();
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          // A CLI may run podman (doctor): its secret commands are let finish.
          void endProcessGroup(child.pid as number).then(() => {
            if (child.exitCode !== null || child.signalCode !== null) resolve();
          });
        }),
    ),
  );
}

/** Starts the built CLI in the background (no daemon implied: set AGENTD_SOCKET in env or pass --socket). */
export function spawnCli(args: string[], options: CliOptions = {}): CliProcess {
  const env = mergeEnv(withoutAgentdEnv(process.env), options.env ?? {});
  const child = track.process(
    spawn(process.execPath, [CLI, ...args], { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env }),
  );
  cliProcesses.add(child);
  child.once('exit', () => cliProcesses.delete(child));
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const check of [...waiters]) check();
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    notify();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    notify();
  });
  child.stdin?.on('error', () => {});
  child.stdin?.end(options.input ?? '');
  let closed = false;
  const result = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      closed = true;
      notify();
      resolve({ code: exitCodeOf(code, signal), stdout, stderr });
    });
  });
  const waitFor =
    (stream: 'stdout' | 'stderr') =>
    (pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> =>
      new Promise((resolve, reject) => {
        const text = () => (stream === 'stdout' ? stdout : stderr);
        const check = () => {
          const match = text().match(pattern);
          if (match) {
            done();
            resolve(match);
          } else if (closed) {
            done();
            reject(
              new Error(`the CLI exited before printing ${pattern}; stdout:\n${stdout}\nstderr:\n${stderr}`),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `no ${pattern} on ${stream} within ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    result,
    signal: (signal) => child.kill(signal),
    waitForStdout: waitFor('stdout'),
    waitForStderr: waitFor('stderr'),
  };
}

/** Runs the built CLI without a daemon and waits for it. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return spawnCli(args, options).result;
}

/** Container and secret names starting with prefix, removed in two batched podman calls. */
export async function removeInstanceObjects(prefix: string): Promise<void> {
  const [containers, secrets] = await Promise.all([listAgentdContainers(prefix), listSecrets(prefix)]);
  if (containers.length > 0) {
    await execa('podman', ['rm', '--force', '--ignore', '--time', '0', ...containers.map((c) => c.name)], {
      reject: false,
    });
  }
  if (secrets.length > 0) await execa('podman', ['secret', 'rm', ...secrets], { reject: false });
  // Cache volumes outlive sessions and daemons by design: they are not leaks, but tests remove them.
  const volumes = await listVolumes(prefix);
  if (volumes.length > 0) await execa('podman', ['volume', 'rm', '--force', ...volumes], { reject: false });
}

/** Creates a secret the way agentd does (value on stdin, through a real pipe); tracked for cleanup. */
export async function plantSecret(
  name: string,
  value: string,
  labels: Record<string, string>,
): Promise<void> {
  track.secret(name);
  // Podman reads `-` only from a real pipe, and Node gives children a socket: `cat` bridges the two.
  await execa(
    'sh',
    ['-c', 'cat | exec podman "$@"', 'podman', 'secret', 'create', ...labelArgs(labels), name, '-'],
    {
      input: value,
    },
  );
}

/** Creates a container of the test image; `exited` also runs it to completion. Tracked for cleanup. */
export async function plantContainer(
  name: string,
  labels: Record<string, string>,
  state: 'created' | 'exited' = 'created',
): Promise<void> {
  track.container(name);
  await execa('podman', [
    'create',
    '--name',
    name,
    ...labelArgs(labels),
    '--pull',
    'never',
    TEST_IMAGE,
    'true',
  ]);
  if (state === 'exited') await execa('podman', ['start', '--attach', name]);
}

/** Names of the containers whose name starts with prefix that podman made, started or removed since `since`. */
export async function containerEventsSince(since: Date, prefix: string): Promise<string[]> {
  const result = await execa('podman', [
    'events',
    '--stream=false',
    '--since',
    since.toISOString(),
    '--filter',
    'type=container',
    '--format',
    '{{.Status}} {{.Name}}',
  ]);
  return result.stdout.split('\n').filter((line) => line.split(' ')[1]?.startsWith(prefix) ?? false);
}

function labelArgs(labels: Record<string, string>): string[] {
  return Object.entries(labels).flatMap(([key, value]) => ['--label', `${key}=${value}`]);
}

/** A regular file at path (e.g. where a socket should go), creating its directory. */
export function writeFileAt(path: string, content: string): void {
  mkdirSync(resolve(path, '..'), { recursive: true });
  writeFileSync(path, content);
}

/**
 * The user's own agentd settings must not leak into a test (AGENTD_SOCKET, AGENTD_CONFIG). The run's
 * marker stays: the run's teardown finds the processes the tests left running by it (run-processes.ts).
 */
function withoutAgentdEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(([key]) => !key.startsWith('AGENTD_') || key === RUN_MARKER),
  );
}

function mergeEnv(base: NodeJS.ProcessEnv, extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** The shell's convention for a process killed by a signal: 128 + its number; -1 when unknown. */
function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return signal === null ? -1 : 128 + osConstants.signals[signal];
}
