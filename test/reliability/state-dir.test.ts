/**
 * The daemon's own files under attack and under pressure: a state dir on a small tmpfs the test fills
 * (triggers rejected with a code, running sessions still reach their outcome, start on a full disk,
 * recovery without a restart, no temp file left); directories owned by someone else or open to
 * everyone; symbolic links planted where the daemon writes; a socket owned by another user; corrupt
 * records after a crash; FIFOs planted where it reads.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import {
  CLI,
  launchDaemon,
  ownInstance,
  prepareDaemon,
  runCli,
  spawnCli,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { type ScriptedDaemon, scriptedDaemon } from '../helpers/fake-daemon.js';
import { type Gate, startGate } from '../helpers/gate.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { makeTempDir, track } from '../helpers/resources.js';
import {
  afterEachTest,
  agent,
  crash,
  inspectContainer,
  killOrphans,
  recordFigures,
  waitUntil,
} from './harness.js';
import { RssSampler } from './measure.js';

const NOBODY = 65534;
let git: GitServer;
let gateA: Gate;
let gateB: Gate;
const daemons: TestDaemon[] = [];
const figures = { faultsInjected: 0, sessionsRecovered: 0, sessions: 0, objectsLeftBehind: 0 };

beforeAll(async () => {
  if (process.geteuid?.() !== 0)
    throw new Error('these tests mount a tmpfs and chown files: run them as root');
  [git, gateA, gateB] = await Promise.all([startGitServer(), startGate(), startGate()]);
});
afterAll(async () => {
  await Promise.allSettled([git?.stop(), gateA?.close(), gateB?.close()]);
  await recordFigures('state-dir', figures);
});
afterEach(async () => {
  gateA.hold();
  gateB.hold();
  await afterEachTest(figures, daemons);
});

function tracked(d: TestDaemon): TestDaemon {
  daemons.push(d);
  return d;
}

/** Mounts a tmpfs of sizeKb at dir (mode 0700, as a state dir must be); unmounted in cleanup. */
function mountTmpfs(dir: string, sizeKb: number): void {
  mkdirSync(dir, { recursive: true });
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKb}k,mode=0700`, 'tmpfs', dir]);
  if (mounted.status !== 0) throw new Error(`mount tmpfs at ${dir}: ${mounted.stderr}`);
  track.onCleanup(() => execa('umount', ['-l', dir], { reject: false }));
}

/** Fills the filesystem of dir to the last byte; returns the filler file. */
function fill(dir: string): string {
  const filler = join(dir, 'filler');
  spawnSync('sh', ['-c', `dd if=/dev/zero of=${filler} bs=64k oflag=append conv=notrunc 2>/dev/null`]);
  const probe = spawnSync('sh', ['-c', `head -c 8192 /dev/zero >> ${dir}/probe-space`]);
  rmSync(join(dir, 'probe-space'), { force: true });
  if (probe.status === 0) throw new Error(`${dir} is not full after filling it`);
  return filler;
}

function tempFiles(d: TestDaemon): string[] {
  const sessions = join(d.files.stateDir, 'sessions');
  return existsSync(sessions)
    ? readdirSync(sessions).filter((n) => n.endsWith('.tmp') || n.startsWith('.probe'))
    : [];
}

/** The daemon's state, as `status --json` says it; its exit code is the state's (0 only when ready). */
async function state(d: TestDaemon): Promise<string> {
  const result = await d.cli(['status', '--json']);
  const { state } = JSON.parse(result.stdout) as { state: string };
  expect(result.code, result.stderr).toBe(state === 'degraded' ? EXIT.degraded : EXIT.succeeded);
  return state;
}

/** A line longer than a page: appending it always needs a new page of the filesystem. */
const BIG = (tag: string) => `printf '${tag}-%05000d\\n' 0`;

describe('a full state dir', () => {
  it('rejects triggers with state_dir_full, supervises running sessions to their outcome, recovers by itself', async () => {
    const files = prepareDaemon({
      agents: [
        agent('talker', git.url(), [
          'sh',
          '-c',
          [
            'echo before',
            `git ls-remote git://127.0.0.1:${gateA.port}/gate.git >/dev/null 2>&1`,
            BIG('lost-1'),
            BIG('lost-2'),
            BIG('lost-3'),
            `git ls-remote git://127.0.0.1:${gateB.port}/gate.git >/dev/null 2>&1`,
            BIG('last'),
          ].join('; '),
        ]),
        agent('quick', git.url(), ['echo', 'quick-done']),
      ],
    });
    mountTmpfs(files.stateDir, 1024);
    const d = tracked(launchDaemon(files));
    await d.ready();

    const first = (await d.cli(['trigger', 'talker', '--detach'])).stdout.trim();
    const follower = d.spawnCli(['logs', first, '--follow']);
    await follower.waitForStdout(/before/);
    // Followers get a line at once, the log within 100 ms: the disk fills once the log holds it.
    const logFile = join(files.stateDir, 'sessions', `${first}.log`);
    await waitUntil(
      () => existsSync(logFile) && readFileSync(logFile, 'utf8').includes(' out before\n'),
      () => 'the first line in the log',
      10_000,
    );
    const filler = fill(files.stateDir);
    figures.faultsInjected++;

    // Not accepted-then-lost: rejected, with the code and the reason.
    const rejected = await d.cli(['trigger', 'quick', '--json']);
    // Retryable: exit 75, not the 3 of a trigger that will never be accepted.
    expect(rejected.code, rejected.stdout + rejected.stderr).toBe(75);
    expect(JSON.parse(rejected.stdout)).toMatchObject({ rejection: 'state_dir_full', retryable: true });
    expect(rejected.stdout + rejected.stderr).toMatch(
      /state dir full: cannot record session [0-9a-f]{16} \(ENOSPC/,
    );
    expect(await state(d)).toBe('degraded');
    // Why, where status is read: the write that failed, and the fix.
    const degraded = await d.cli(['status']);
    expect(degraded.stdout).toMatch(
      /^degraded: state dir full: cannot record session [0-9a-f]{16} \(ENOSPC on .*\); free space on that filesystem; triggers are rejected/m,
    );
    const again = await d.request({ type: 'trigger', agent: 'quick' });
    expect(again).toMatchObject({ type: 'rejected', code: 'state_dir_full' });
    expect(String(again?.reason)).toMatch(/triggers are accepted again as soon as it does/);
    expect(tempFiles(d)).toEqual([]);
    // Only the first session has a record: nothing was accepted that could not be recorded.
    expect(readdirSync(join(files.stateDir, 'sessions')).filter((n) => n.endsWith('.json'))).toEqual([
      `${first}.json`,
    ]);

    // The running session prints while nothing can be written: followers still get it live, and
    // it finishes while the disk is still full.
    gateA.open();
    await follower.waitForStdout(/lost-3-0+\n/);
    gateB.open();
    const outcome = await d.waitForOutcome(first);
    expect(outcome.outcome).toBe('succeeded');
    const followed = await follower.result;
    expect(followed.code).toBe(0);
    expect(followed.stdout).toMatch(/last-0+\n/);
    expect(d.running, 'the daemon is still up').toBe(true);
    expect(tempFiles(d)).toEqual([]);

    // Space returns: the daemon notices by itself, writes what waited, and accepts triggers again.
    rmSync(filler);
    await d.waitForLog((l) => l.event === 'daemon.state_dir_writable', 20_000);
    expect(await state(d)).toBe('ready');
    expect((await d.cli(['status'])).stdout).not.toMatch(/^degraded/m);
    const record = JSON.parse(readFileSync(join(files.stateDir, 'sessions', `${first}.json`), 'utf8'));
    expect(record).toMatchObject({ id: first, outcome: 'succeeded', phase: 'finished' });
    const log = await waitUntil(
      () => {
        const text = readFileSync(logFile, 'utf8');
        return text.includes('[agentd: ') && text;
      },
      () => 'the gap note in the log',
      10_000,
    );
    // One record per line: `SEQ TIME STREAM TEXT`.
    expect(log).toMatch(/^1 \S+ out before\n/);
    // One note per stretch of lost output (the note is written as soon as it fits): 4 lines in all.
    const notes = [
      ...log.matchAll(
        /\[agentd: (\d+) line\(s\), (\d+) bytes of output are missing here: the state dir was full \(ENOSPC\) from \S+ to \S+; followers received them live\]\n/g,
      ),
    ];
    expect(notes.length).toBeGreaterThan(0);
    expect(notes.reduce((sum, n) => sum + Number(n[1]), 0)).toBe(4);
    expect(notes.reduce((sum, n) => sum + Number(n[2]), 0)).toBe(3 * 5008 + 5006);
    expect(log).not.toMatch(/lost-|last-/);
    const ok = await d.cli(['trigger', 'quick']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/quick-done/);
    expect(tempFiles(d)).toEqual([]);
    figures.sessions += 2;
    expect(await d.stop()).toBe(0);

    // A daemon started on a full disk starts degraded, says why, and recovers without a restart.
    const filler2 = fill(files.stateDir);
    const next = tracked(launchDaemon(files));
    const ready = await next.waitForLog((l) => l.event === 'daemon.ready');
    expect(String(ready.degraded)).toMatch(/state dir full/);
    expect(await state(next)).toBe('degraded');
    const refused = await next.cli(['trigger', 'quick']);
    expect(refused.code).toBe(75);
    expect(refused.stderr).toMatch(/state dir full/);
    rmSync(filler2);
    await next.waitForLog((l) => l.event === 'daemon.state_dir_writable', 20_000);
    const accepted = await next.cli(['trigger', 'quick']);
    expect(accepted.code, accepted.stderr).toBe(0);
    figures.sessions++;
    expect(tempFiles(next)).toEqual([]);
    expect(await next.stop()).toBe(0);
  });

  it('writes the records that waited in memory when it stops on a full disk: the next start does not recover a finished session as running', async () => {
    const files = prepareDaemon({
      agents: [
        agent('slow', git.url(), [
          'sh',
          '-c',
          `git ls-remote git://127.0.0.1:${gateA.port}/gate.git >/dev/null 2>&1; echo done`,
        ]),
      ],
    });
    mountTmpfs(files.stateDir, 1024);
    const d = tracked(launchDaemon(files));
    await d.ready();
    const id = (await d.cli(['trigger', 'slow', '--detach'])).stdout.trim();
    await gateA.waitFor(1);
    const filler = fill(files.stateDir);
    figures.faultsInjected++;
    gateA.open();
    expect((await d.waitForOutcome(id)).outcome).toBe('succeeded');
    const recordFile = join(files.stateDir, 'sessions', `${id}.json`);
    // The outcome waits in memory: on disk the session is still running.
    expect(JSON.parse(readFileSync(recordFile, 'utf8'))).not.toHaveProperty('outcome');
    expect(await d.stop()).toBe(0);
    expect(d.logs().some((l) => l.event === 'daemon.records_written')).toBe(true);
    expect(JSON.parse(readFileSync(recordFile, 'utf8'))).toMatchObject({ outcome: 'succeeded' });

    // The next daemon (room again) finds it finished: no second outcome.
    rmSync(filler);
    const next = tracked(launchDaemon(files));
    await next.ready();
    const shown = await next.cli(['show', id, '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ outcome: 'succeeded' });
    expect(next.logs().filter((l) => l.session === id && l.event === 'session.outcome')).toEqual([]);
    figures.sessions++;
    expect(await next.stop()).toBe(0);
  });
});

describe('agentd status of a degraded daemon', () => {
  it('exits 10 while the state dir is full, with the reason and the whole status with --json, and 0 once it takes writes again', async () => {
    const files = prepareDaemon({ agents: [agent('quick', git.url(), ['echo', 'quick-done'])] });
    mountTmpfs(files.stateDir, 1024);
    const d = tracked(launchDaemon(files));
    await d.ready();
    const ready = await d.cli(['status']);
    expect(ready.code, ready.stderr).toBe(EXIT.succeeded);
    const filler = fill(files.stateDir);
    figures.faultsInjected++;
    // The daemon finds the disk full at its next write: the record of a trigger.
    expect((await d.cli(['trigger', 'quick'])).code).toBe(EXIT.retry);

    // Before, both exited 0: a health check could not tell this daemon from a ready one.
    const text = await d.cli(['status']);
    expect(text.code, text.stderr).toBe(EXIT.degraded);
    expect(text.stderr).toBe('');
    expect(text.stdout).toMatch(new RegExp(`^agentd \\S+: degraded, pid ${d.pid}, `));
    expect(text.stdout).toMatch(/^degraded: state dir full: cannot record session [0-9a-f]{16} \(ENOSPC/m);
    const json = await d.cli(['status', '--json']);
    expect(json.code, json.stderr).toBe(EXIT.degraded);
    expect(JSON.parse(json.stdout)).toMatchObject({
      state: 'degraded',
      degraded: expect.stringMatching(/^state dir full: /),
      pid: d.pid,
      running: [],
      queued: [],
    });

    rmSync(filler);
    await d.waitForLog((l) => l.event === 'daemon.state_dir_writable', 20_000);
    const again = await d.cli(['status', '--json']);
    expect(again.code, again.stderr).toBe(EXIT.succeeded);
    expect(JSON.parse(again.stdout)).toMatchObject({ state: 'ready' });
    expect(await d.stop()).toBe(0);
  });

  it('exits 10 while its own log cannot be written (stderr a file on a full disk), naming the log, and 0 once it can', async () => {
    // Before, status said ready and exited 0 while every log line was held or dropped: an operator whose
    // log went silent could not tell.
    const files = prepareDaemon({ agents: [agent('quick', git.url(), ['echo', 'quick-done'])] });
    ownInstance(files);
    const logDir = makeTempDir('agentd-rel-log-');
    mountTmpfs(logDir, 256);
    const logFile = join(logDir, 'agentd.log');
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, [CLI, 'start', '--config', files.configPath], {
      stdio: ['ignore', 'ignore', fd],
    });
    closeSync(fd);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    track.onCleanup(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const cli = (args: string[]) => runCli([...args, '--socket', files.socketPath]);
    await waitUntil(
      async () => (await cli(['status'])).code === EXIT.succeeded,
      () => 'the daemon to be ready',
    );
    const filler = fill(logDir);
    figures.faultsInjected++;
    // Each reload logs two lines: more than the last page of the log file holds.
    for (let i = 0; i < 30; i++) expect((await cli(['reload'])).code).toBe(0);
    const degraded = await waitUntil(
      async () => {
        const r = await cli(['status', '--json']);
        return r.code === EXIT.degraded ? r : undefined;
      },
      () => 'status to exit 10',
      10_000,
    );
    expect(JSON.parse(degraded.stdout)).toMatchObject({
      state: 'ready',
      degraded: expect.stringMatching(
        /^the daemon's log could not be written since \S+: no line lost yet, \d+ bytes held to write once it can \(ENOSPC\); free space on the filesystem stderr is written to$/,
      ),
    });
    const text = await cli(['status']);
    expect(text.code).toBe(EXIT.degraded);
    expect(text.stdout).toMatch(/^degraded: the daemon's log could not be written since /m);

    rmSync(filler);
    await waitUntil(
      async () => (await cli(['status'])).code === EXIT.succeeded,
      () => 'status to exit 0 once the log takes writes',
      10_000,
    );
    // What was held was written, in order.
    expect(readFileSync(logFile, 'utf8').match(/"event":"daemon.reloaded"/g)?.length).toBe(30);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});

describe('directories the daemon does not own', () => {
  const quick = () => agent('quick', git.url(), ['true']);

  it.each([
    ['state dir', 'mode 0777', (files: { stateDir: string }) => files.stateDir, 0o777, 0],
    ['state dir', 'owned by nobody', (files: { stateDir: string }) => files.stateDir, 0o700, NOBODY],
    [
      'sessions directory',
      'mode 0777',
      (files: { stateDir: string }) => join(files.stateDir, 'sessions'),
      0o777,
      0,
    ],
    [
      'socket directory',
      'owned by nobody',
      (files: { socketPath: string }) => join(files.socketPath, '..'),
      0o700,
      NOBODY,
    ],
    [
      'socket directory',
      'mode 0777',
      (files: { socketPath: string }) => join(files.socketPath, '..'),
      0o777,
      0,
    ],
  ])(
    'refuses to start when the %s is %s, naming path, owner, mode and fix',
    async (what, _how, pathOf, mode, owner) => {
      const files = prepareDaemon({ agents: [quick()] });
      const dir = pathOf(files);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, mode);
      chownSync(dir, owner, owner);
      const d = tracked(launchDaemon(files));
      expect(await d.waitForExit()).toBe(1);
      const owned = owner === NOBODY ? 'uid 65534 \\(nobody\\)' : 'uid 0 \\(root\\)';
      expect(d.stderr()).toMatch(
        new RegExp(
          `agentd: could not start: ${what} ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is owned by ${owned} with mode 0${mode.toString(8)}`,
        ),
      );
      expect(d.stderr()).toMatch(owner === NOBODY ? /Fix: chown 0 .* && chmod 700/ : /Fix: chmod 700/);
      expect(d.stderr()).not.toMatch(/\n\s+at /);
      expect(existsSync(files.socketPath)).toBe(false);
    },
  );

  it('refuses the default socket directory of a non-root user when another user made it first', async () => {
    const fake = `/tmp/agentd-${NOBODY}`;
    if (existsSync(fake)) throw new Error(`${fake} exists already; remove it to run this test`);
    mkdirSync(fake, { mode: 0o777 });
    chmodSync(fake, 0o777);
    track.onCleanup(() => rmSync(fake, { recursive: true, force: true }));
    // Podman run as nobody (the start's checks ask its version) makes its rootless dirs under /tmp.
    for (const dir of [`/tmp/podman-run-${NOBODY}`, `/tmp/containers-user-${NOBODY}`]) {
      if (!existsSync(dir)) track.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    }
    const home = makeTempDir('agentd-rel-nobody-');
    chmodSync(home, 0o755);
    const stateDir = join(home, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    chownSync(stateDir, NOBODY, NOBODY);
    const config = join(home, 'agentd.yaml');
    writeFileSync(
      config,
      `daemon:\n  state_dir: ${stateDir}\nagents:\n  - name: quick\n    image: x\n    command: ['true']\n`,
    );
    chmodSync(config, 0o644);
    const env = { PATH: process.env.PATH ?? '', HOME: home };
    const asNobody = (args: string[]) =>
      execa(
        'setpriv',
        [
          '--reuid',
          String(NOBODY),
          '--regid',
          String(NOBODY),
          '--clear-groups',
          process.execPath,
          CLI,
          ...args,
        ],
        {
          env,
          extendEnv: false,
          reject: false,
          timeout: 30_000,
        },
      );
    const started = await asNobody(['start', '--config', config]);
    expect(started.exitCode).toBe(1);
    expect(started.stderr).toMatch(
      /agentd: could not start: socket directory \/tmp\/agentd-65534 is owned by uid 0 \(root\) with mode 0777, but agentd runs as uid 65534 \(nobody\)/,
    );
    // A socket planted there by root (in a directory anyone may write) is not trusted by nobody's CLI.
    const server = await listenAt(join(fake, 'agentd.sock'));
    const status = await asNobody(['status']);
    expect(status.exitCode).toBe(69);
    expect(status.stderr).toMatch(
      /not connecting to \/tmp\/agentd-65534\/agentd.sock: the socket's directory \/tmp\/agentd-65534 is owned by uid 0 \(root\) with mode 0777/,
    );
    expect(server.connections.length).toBe(0);
    await server.close();
  });
});

/** A Unix socket server that closes every connection and answers nothing; `connections` are counted. */
function listenAt(path: string): Promise<ScriptedDaemon> {
  return scriptedDaemon(() => {}, { path, onConnection: (socket) => socket.destroy() });
}

describe('the CLI checks the socket before sending anything', () => {
  it('refuses a socket owned by another non-root user, and says so', async () => {
    const dir = join(makeTempDir('agentd-rel-sock-'), 'run');
    mkdirSync(dir, { mode: 0o700 });
    const path = join(dir, 'agentd.sock');
    const server = await listenAt(path);
    chownSync(path, NOBODY, NOBODY);
    const result = await runCli(['status'], { env: { AGENTD_SOCKET: path } });
    expect(result.code).toBe(69);
    expect(result.stderr).toMatch(
      new RegExp(
        `not connecting to ${path}: socket ${path} is owned by uid 65534 \\(nobody\\), not by you \\(uid 0 \\(root\\)\\) or root`,
      ),
    );
    const trigger = await runCli(['trigger', 'x', '--socket', path]);
    expect(trigger.code).toBe(69);
    expect(server.connections.length).toBe(0);
    // The same socket owned by the caller is used.
    chownSync(path, 0, 0);
    const trusted = spawnCli(['status'], { env: { AGENTD_SOCKET: path } });
    await trusted.result;
    expect(server.connections.length).toBe(1);
    await server.close();
  });
});

describe('planted symbolic links', () => {
  it('are never written through: the record, its temp file and the log', async () => {
    const d = tracked(
      await startDaemon({
        agents: [agent('printer', git.url(), ['sh', '-c', 'echo agent-controlled-text'])],
      }),
    );
    const sessions = join(d.files.stateDir, 'sessions');
    const victim = join(makeTempDir('agentd-rel-victim-'), 'victim');
    writeFileSync(victim, 'original\n');
    const send = (sessionId: string) =>
      d.cli(['send', JSON.stringify({ type: 'trigger', sessionId, agent: 'printer' })]);

    // The record: the trigger is refused (it could not be recorded), the target is unchanged.
    const recordId = 'aaaaaaaaaaaaaaa1';
    symlinkSync(victim, join(sessions, `${recordId}.json`));
    const refused = await send(recordId);
    expect(refused.stdout).toMatch(/state_dir_unwritable/);
    expect(refused.stdout).toMatch(/symbolic link or an unexpected file that agentd did not make/);
    // A temp file name is unguessable, and the old predictable one is never opened.
    const tempId = 'aaaaaaaaaaaaaaa2';
    symlinkSync(victim, join(sessions, `${tempId}.json.${d.pid}.tmp`));
    await waitUntil(
      async () => (await state(d)) === 'ready',
      () => 'the daemon to be ready again',
    );
    const viaTemp = await send(tempId);
    expect(viaTemp.stdout, viaTemp.stderr).toMatch(/trigger\.accepted/);
    await d.waitForOutcome(tempId);
    // The log: the session runs to its outcome, its output reaches nobody's file.
    const logId = 'aaaaaaaaaaaaaaa3';
    symlinkSync(victim, join(sessions, `${logId}.log`));
    const viaLog = await send(logId);
    expect(viaLog.stdout, viaLog.stderr).toMatch(/trigger\.accepted/);
    const outcome = await d.waitForOutcome(logId);
    expect(outcome.outcome).toBe('succeeded');
    const logs = await d.cli(['logs', logId]);
    expect(logs.stdout).not.toMatch(/original/);

    expect(readFileSync(victim, 'utf8')).toBe('original\n');
    expect(d.running).toBe(true);
    figures.sessions += 2;
    expect(await d.stop()).toBe(0);
  });
});

describe('corrupt records after a crash', () => {
  it('are quarantined; their sessions are adopted when running, else settled abandoned and removed', async () => {
    const d = tracked(
      await startDaemon({
        agents: [
          agent('waiter', git.url(), [
            'sh',
            '-c',
            `echo started; git ls-remote git://127.0.0.1:${gateA.port}/gate.git >/dev/null 2>&1; echo finished`,
          ]),
          agent('brief', git.url(), [
            'sh',
            '-c',
            `echo started; git ls-remote git://127.0.0.1:${gateB.port}/gate.git >/dev/null 2>&1; exit 3`,
          ]),
        ],
      }),
    );
    const running = (await d.cli(['trigger', 'waiter', '--detach'])).stdout.trim();
    const exited = (await d.cli(['trigger', 'brief', '--detach'])).stdout.trim();
    await gateA.waitFor(1);
    await gateB.waitFor(1);
    const exitedContainer = d.record(exited)?.container ?? '';
    // The record directory's copy is written in the background.
    const runningJson = join(d.files.stateDir, 'records', 'waiter', running, 'session.json');
    await waitUntil(
      () => existsSync(runningJson),
      () => `${runningJson} to be written`,
    );
    await crash(d);
    await killOrphans(d);
    figures.faultsInjected++;
    // One session's container finishes while no daemon watches.
    gateB.open();
    await waitUntil(
      async () =>
        ((await inspectContainer(exitedContainer))?.State as { Status?: string })?.Status === 'exited',
      () => `${exitedContainer} to exit`,
    );
    const sessions = join(d.files.stateDir, 'sessions');
    writeFileSync(join(sessions, `${running}.json`), '{"version":1,"id":"trunc');
    writeFileSync(join(sessions, `${exited}.json`), '[]');
    rmSync(join(d.files.stateDir, 'records', 'brief', exited), { recursive: true, force: true });
    writeFileSync(join(sessions, 'cccccccccccccccc.json'), '\x00\x01garbage');

    const next = tracked(launchDaemon(d.files));
    await next.ready();
    const quarantined = next.logs().filter((l) => l.event === 'daemon.record_quarantined');
    expect(quarantined.map((l) => String(l.file).split('/').pop()).sort()).toEqual(
      [`${running}.json`, `${exited}.json`, 'cccccccccccccccc.json'].sort(),
    );
    expect(readdirSync(join(sessions, 'quarantine'))).toHaveLength(3);

    // The running one is rebuilt from its record directory (written while it ran); the exited one, whose
    // record directory went too, from its container's labels.
    const rebuilt = next.logs().filter((l) => l.event === 'daemon.record_rebuilt');
    expect(rebuilt.map((l) => [l.session, l.from === undefined ? 'labels' : 'record dir'])).toEqual([
      [running, 'record dir'],
      [exited, 'labels'],
    ]);
    // The exited one: settled abandoned with the reason, its container removed.
    const settled = await next.waitForOutcome(exited);
    expect(settled.outcome).toBe('abandoned');
    expect(String(settled.message)).toMatch(/record could not be read .* had exited with exit code 3/);
    expect(await inspectContainer(exitedContainer)).toBeUndefined();
    // The running one: adopted, known to status, logs and cancel again.
    await next.waitForLog((l) => l.event === 'session.adopted' && l.session === running);
    const status = JSON.parse((await next.cli(['status', '--json'])).stdout) as { running: { id: string }[] };
    expect(status.running.map((r) => r.id)).toEqual([running]);
    const logs = next.spawnCli(['logs', running, '--follow']);
    gateA.open();
    const outcome = await next.waitForOutcome(running);
    expect(outcome.outcome).toBe('succeeded');
    expect((await logs.result).code).toBe(0);
    figures.sessionsRecovered += 2;
    figures.sessions += 2;
    expect(await next.stop()).toBe(0);
  });
});

describe('a lost record whose container is gone too', () => {
  it('is rebuilt from its open record directory and settled abandoned: wait returns, the record is sealed', async () => {
    const d = tracked(
      await startDaemon({
        agents: [
          agent('lost', git.url(), [
            'sh',
            '-c',
            `echo started; git ls-remote git://127.0.0.1:${gateA.port}/gate.git >/dev/null 2>&1; echo finished`,
          ]),
        ],
      }),
    );
    const id = (await d.cli(['trigger', 'lost', '--detach'])).stdout.trim();
    await gateA.waitFor(1);
    await d.waitForPhase(id, 'running');
    const recordDir = join(d.files.stateDir, 'records', 'lost', id);
    // Its record directory's copy is written in the background: wait until it says running.
    await waitUntil(
      () =>
        existsSync(join(recordDir, 'session.json')) &&
        readFileSync(join(recordDir, 'session.json'), 'utf8').includes('"running"'),
      () => `${recordDir}/session.json to say running`,
    );
    const container = d.record(id)?.container ?? '';
    await crash(d);
    await killOrphans(d);
    figures.faultsInjected++;
    // Its container removed by hand, its state-dir record cut short.
    await execa('podman', ['rm', '--force', '--time', '0', container]);
    writeFileSync(join(d.files.stateDir, 'sessions', `${id}.json`), '{"version":1,"id":"trunc');

    const next = tracked(launchDaemon(d.files));
    await next.ready();
    expect(
      next
        .logs()
        .filter((l) => l.event === 'daemon.record_rebuilt')
        .map((l) => l.session),
    ).toEqual([id]);
    const settled = await next.waitForOutcome(id);
    expect(settled.outcome).toBe('abandoned');
    expect(String(settled.message)).toMatch(/container is gone/);
    // A script waiting for it is answered (before: it followed a session nobody would finish).
    const waited = await within(next.cli(['wait', id, '--json']), 20_000, 'wait');
    expect(JSON.parse(waited.stdout)).toMatchObject({ sessionId: id, outcome: 'abandoned' });
    await waitUntil(
      () => (lstatSync(recordDir).mode & 0o777) === 0o555,
      () => `${recordDir} to be sealed`,
    );
    figures.sessionsRecovered++;
    figures.sessions++;
    expect(await next.stop()).toBe(0);
  });
});

/** What promise gives, or a failure naming what did not come within ms (a daemon that hangs). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe('a FIFO planted in the state dir', () => {
  it('in place of a record is quarantined at start; in place of a log, logs answers at once and so does everyone else', async () => {
    const d = tracked(await startDaemon({ agents: [agent('quick', git.url(), ['echo', 'quick-done'])] }));
    const id = (await d.cli(['trigger', 'quick', '--detach'])).stdout.trim();
    expect((await d.waitForOutcome(id)).outcome).toBe('succeeded');
    expect(await d.stop()).toBe(0);
    const sessions = join(d.files.stateDir, 'sessions');
    const record = join(sessions, 'dddddddddddddddd.json');
    const log = join(sessions, `${id}.log`);
    rmSync(log);
    for (const fifo of [record, log]) expect(spawnSync('mkfifo', ['-m', '0600', fifo]).status).toBe(0);
    figures.faultsInjected += 2;

    // A blocking open of the FIFO record would hold the start before ready for ever.
    const next = tracked(launchDaemon(d.files));
    await next.ready(20_000);
    const quarantined = next.logs().filter((l) => l.event === 'daemon.record_quarantined');
    expect(quarantined.map((l) => [l.file, l.reason])).toEqual([
      [record, 'it is a FIFO, not a regular file'],
    ]);
    expect(readdirSync(join(sessions, 'quarantine'))).toEqual([expect.stringMatching(/^d{16}\.json\.\d+$/)]);
    expect(existsSync(record)).toBe(false);

    // A blocking open of the FIFO log would hold the event loop: no client answered any more.
    const logs = next.spawnCli(['logs', id]);
    // Time for logs to connect and ask first (a blocked daemon would then answer nobody).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const hello = await within(next.request({ type: 'hello', client: 'e2e' }), 5000, 'hello');
    expect(hello?.type).toBe('hello');
    const shown = await within(logs.result, 5000, `agentd logs ${id}`);
    expect(shown.stdout).not.toMatch(/quick-done/);
    expect((await next.cli(['history', '--json'])).stdout).toContain(id);
    expect(next.running).toBe(true);
    figures.sessions += 1;
    expect(await next.stop()).toBe(0);
    rmSync(log);
  });
});

describe('a record whose agent is not an agent name', () => {
  it('is quarantined, naming its agent; nothing is written where the name leads, outside records_dir', async () => {
    const d = tracked(await startDaemon({ agents: [agent('quick', git.url(), ['echo', 'quick-done'])] }));
    const id = (await d.cli(['trigger', 'quick', '--detach'])).stdout.trim();
    expect((await d.waitForOutcome(id)).outcome).toBe('succeeded');
    expect(await d.stop()).toBe(0);
    // records_dir is <state_dir>/records: two levels up is the state dir's parent.
    const outside = join(d.files.stateDir, '..', 'outside');
    const planted = 'eeeeeeeeeeeeeeee';
    const at = new Date().toISOString();
    writeFileSync(
      join(d.files.stateDir, 'sessions', `${planted}.json`),
      JSON.stringify({
        version: 1,
        id: planted,
        agent: '../../outside',
        repo: git.url(),
        acceptedAt: at,
        phase: 'queued',
        phases: [{ phase: 'queued', at }],
        recordDir: join(d.files.stateDir, 'records', 'quick', planted),
      }),
    );
    figures.faultsInjected++;

    // The old daemon settled it abandoned (no such agent) and sealed it at <state_dir>/../outside/<id>.
    const next = tracked(launchDaemon(d.files));
    await next.ready();
    const quarantined = next.logs().filter((l) => l.event === 'daemon.record_quarantined');
    expect(quarantined.map((l) => l.reason)).toEqual([
      'it is not a session record: its agent "../../outside" is not an agent name (lowercase letters, digits, _ and -, at most 32)',
    ]);
    expect(existsSync(outside)).toBe(false);
    expect((await next.cli(['history', '--json'])).stdout).toContain(id);
    expect(next.running).toBe(true);
    figures.sessions += 1;
    expect(await next.stop()).toBe(0);
  });
});

describe('a 1 GiB record and schedules.json (sparse files: no disk taken)', () => {
  it('are refused by their size at start, never read: the daemon starts as small as ever', async () => {
    const d = tracked(await startDaemon({ agents: [agent('quick', git.url(), ['echo', 'quick-done'])] }));
    const id = (await d.cli(['trigger', 'quick', '--detach'])).stdout.trim();
    expect((await d.waitForOutcome(id)).outcome).toBe('succeeded');
    expect(await d.stop()).toBe(0);
    const GIB = 1024 * 1024 * 1024;
    const record = join(d.files.stateDir, 'sessions', 'ffffffffffffffff.json');
    const schedules = join(d.files.stateDir, 'schedules.json');
    for (const file of [record, schedules]) {
      writeFileSync(file, '');
      truncateSync(file, GIB);
    }
    figures.faultsInjected += 2;

    // The old daemon read both whole: 1.1 GB RSS, 3.4 s longer to start.
    const next = tracked(launchDaemon(d.files));
    const rss = new RssSampler(next.pid, 50);
    await next.ready();
    const peakKb = rss.stop();
    const quarantined = next.logs().filter((l) => l.event === 'daemon.record_quarantined');
    expect(quarantined.map((l) => [l.file, l.reason])).toEqual([
      [record, `it is ${GIB} bytes, more than any session record agentd writes (at most 1048576)`],
    ]);
    const ignored = next.logs().find((l) => l.event === 'daemon.schedules_unreadable');
    expect(String(ignored?.reason)).toMatch(/is 1073741824 bytes, more than agentd writes there/);
    expect(peakKb).toBeLessThan(300 * 1024);
    expect((await next.cli(['history', '--json'])).stdout).toContain(id);
    figures.sessions += 1;
    expect(await next.stop()).toBe(0);
  });
});

describe('a running session whose record says it started at no time', () => {
  it('is quarantined and adopted from its record directory with its timeout, not stopped at once as timed out', async () => {
    const d = tracked(
      await startDaemon({
        agents: [
          agent(
            'waiter',
            git.url(),
            [
              'sh',
              '-c',
              `echo started; git ls-remote git://127.0.0.1:${gateA.port}/gate.git >/dev/null 2>&1; echo finished`,
            ],
            { timeout: '10m' },
          ),
        ],
      }),
    );
    const id = (await d.cli(['trigger', 'waiter', '--detach'])).stdout.trim();
    await gateA.waitFor(1);
    const copy = join(d.files.stateDir, 'records', 'waiter', id, 'session.json');
    await waitUntil(
      () => existsSync(copy) && JSON.parse(readFileSync(copy, 'utf8')).phase === 'running',
      () => `${copy} to say running`,
    );
    await crash(d);
    await killOrphans(d);
    const file = join(d.files.stateDir, 'sessions', `${id}.json`);
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), startedAt: 'garbage' }));
    figures.faultsInjected++;

    // The old daemon counted its deadline from no time (NaN): timed_out within a second of its adoption.
    const next = tracked(launchDaemon(d.files));
    await next.ready();
    const quarantined = next.logs().filter((l) => l.event === 'daemon.record_quarantined');
    expect(quarantined.map((l) => l.reason)).toEqual([
      'it is not a session record: its startedAt "garbage" is not a time',
    ]);
    await next.waitForLog((l) => l.event === 'session.adopted' && l.session === id);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(next.logs().filter((l) => l.event === 'session.outcome')).toEqual([]);
    gateA.open();
    expect((await next.waitForOutcome(id)).outcome).toBe('succeeded');
    figures.sessionsRecovered += 1;
    figures.sessions += 1;
    expect(await next.stop()).toBe(0);
  });
});

describe('a record whose id is not a session id', () => {
  it('is quarantined; the running session of its agent is sealed with its log and outcome', async () => {
    const d = tracked(
      await startDaemon({
        agents: [
          agent('waiter', git.url(), [
            'sh',
            '-c',
            `echo started; git ls-remote git://127.0.0.1:${gateA.port}/gate.git >/dev/null 2>&1; echo finished`,
          ]),
        ],
      }),
    );
    const id = (await d.cli(['trigger', 'waiter', '--detach'])).stdout.trim();
    await gateA.waitFor(1);
    const dir = join(d.files.stateDir, 'records', 'waiter', id);
    await waitUntil(
      () => existsSync(join(dir, 'session.json')),
      () => `${dir}/session.json to be written`,
    );
    await crash(d);
    await killOrphans(d);
    const at = new Date().toISOString();
    writeFileSync(
      join(d.files.stateDir, 'sessions', '..json'),
      JSON.stringify({
        version: 1,
        id: '.',
        agent: 'waiter',
        repo: git.url(),
        acceptedAt: at,
        startedAt: at,
        phase: 'running',
        phases: [{ phase: 'running', at }],
        recordDir: join(d.files.stateDir, 'records', 'waiter', '.'),
      }),
    );
    figures.faultsInjected++;

    // The old daemon settled '.' abandoned and sealed <records_dir>/waiter/. : the agent's directory and
    // the running session's open record made 0555, so its own seal kept none of its log or outcome.
    const next = tracked(launchDaemon(d.files));
    await next.ready();
    const quarantined = next.logs().filter((l) => l.event === 'daemon.record_quarantined');
    expect(quarantined.map((l) => l.reason)).toEqual([
      'it is not a session record: its id "." is not a session id (16 lowercase hex characters)',
    ]);
    expect(lstatSync(join(d.files.stateDir, 'records', 'waiter')).mode & 0o200).not.toBe(0);
    await next.waitForLog((l) => l.event === 'session.adopted' && l.session === id);
    gateA.open();
    expect((await next.waitForOutcome(id)).outcome).toBe('succeeded');
    await waitUntil(
      () => (lstatSync(dir).mode & 0o222) === 0,
      () => `${dir} to be sealed`,
    );
    const sealed = JSON.parse(readFileSync(join(dir, 'session.json'), 'utf8')) as { outcome?: string };
    expect(sealed.outcome).toBe('succeeded');
    expect(readFileSync(join(dir, 'session.log'), 'utf8')).toMatch(/finished/);
    figures.sessionsRecovered += 1;
    figures.sessions += 1;
    expect(await next.stop()).toBe(0);
  });
});

describe('a session log of 1 GiB with no newline (a sparse file: no disk taken)', () => {
  it('is read past its bytes that are no record: logs shows the lines and the daemon keeps answering', async () => {
    const d = tracked(await startDaemon({ agents: [agent('quick', git.url(), ['echo', 'quick-done'])] }));
    const id = (await d.cli(['trigger', 'quick', '--detach'])).stdout.trim();
    expect((await d.waitForOutcome(id)).outcome).toBe('succeeded');
    const log = join(d.files.stateDir, 'sessions', `${id}.log`);
    truncateSync(log, lstatSync(log).size + 1024 * 1024 * 1024);
    figures.faultsInjected++;

    // The old reader copied what it had read at every 64 KiB block, waiting for a newline: one `logs`
    // held the event loop for more than ten minutes, `status` unanswered, RSS 600 MB.
    const rss = new RssSampler(d.pid, 100);
    const shown = await within(d.cli(['logs', id]), 60_000, `agentd logs ${id}`);
    expect(shown.stdout).toMatch(/quick-done/);
    const hello = await within(d.request({ type: 'hello', client: 'e2e' }), 5000, 'hello');
    expect(hello?.type).toBe('hello');
    expect(rss.stop()).toBeLessThan(300 * 1024);
    figures.sessions += 1;
    expect(await d.stop()).toBe(0);
  });
});
