/**
 * `agentd stop`: it asks the daemon over its socket to shut down (the daemon machine's `shutdown` event, with
 * the mode the daemon decides in one step: graceful, or --force; plain ones, as many as the state calls for, to
 * a daemon older than the mode), then waits until the daemon's process
 * is gone, or --timeout. The wait with fakes (no clock, no socket); the command against a fake daemon on
 * a real Unix socket, whose "process" is a child this test ends.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DaemonClient } from '../../src/cli/client.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { shutdownPlan } from '../../src/cli/stop.js';
import {
  STOP_POLL_MS,
  STOP_STUCK_MS,
  type StopPorts,
  type StopProbe,
  type StopView,
  waitForStop,
} from '../../src/cli/stop-wait.js';
import { runCliInProcess as run, runEntryInProcess } from '../helpers/cli-in-process.js';
import { replyLine, type ScriptedDaemon, scriptedDaemon } from '../helpers/fake-daemon.js';
import { makeTempDir } from '../helpers/resources.js';

const ID1 = '0123456789abcdef';
const ID2 = 'fedcba9876543210';
const view = (pid: number, running: string[], state = 'shutdown.draining'): StopView => ({
  state,
  pid,
  running: running.map((id) => ({ id, agent: 'demo' })),
});

/** Ports whose looks at the daemon follow `script` (the last one repeats); time moves only by sleep. */
function fakePorts(script: StopProbe[], alive: (look: number) => boolean) {
  let clock = 0;
  let looks = 0;
  const said: string[] = [];
  const ports: StopPorts = {
    probe: async () => {
      // A wait that never ends fails instead of holding the test (and its worker) for ever.
      if (looks > 100_000) throw new Error('waitForStop looked 100,000 times: it waits for ever');
      return script[Math.min(looks++, script.length - 1)] as StopProbe;
    },
    alive: () => alive(looks),
    sleep: async (ms) => {
      clock += ms;
    },
    now: () => clock,
    say: (line) => said.push(line),
  };
  return { ports, said, looks: () => looks, clock: () => clock };
}

describe('waitForStop', () => {
  it('waits while the daemon answers, saying which sessions it still waits for, and ends when its process is gone', async () => {
    const fake = fakePorts(
      [
        { kind: 'status', status: view(42, [ID1, ID2]) },
        { kind: 'status', status: view(42, [ID2]) },
        { kind: 'status', status: view(42, [ID2]) },
        { kind: 'gone' },
        { kind: 'gone' },
        { kind: 'gone' },
      ],
      // The process outlives its socket by two looks (records, notifications).
      (looks) => looks < 6,
    );
    const result = await waitForStop(view(42, [ID1, ID2]), undefined, fake.ports);
    expect(result).toEqual({ kind: 'stopped' });
    expect(fake.looks()).toBe(6);
    expect(fake.said).toEqual([
      `waiting: 1 running session(s) to finish: ${ID2} (demo)`,
      'the daemon closed its socket; waiting for its process (pid 42) to exit',
    ]);
  });

  it('never takes a daemon that still answers for stopped, even when its pid looks dead (another pid namespace)', async () => {
    const fake = fakePorts(
      [
        { kind: 'status', status: view(42, [ID1]) },
        { kind: 'status', status: view(42, []) },
        { kind: 'gone' },
      ],
      () => false,
    );
    expect(await waitForStop(view(42, [ID1]), undefined, fake.ports)).toEqual({ kind: 'stopped' });
    expect(fake.looks()).toBe(3);
  });

  it('a new daemon on the socket (another pid) is not the one it waits for: its own pid decides', async () => {
    const fake = fakePorts([{ kind: 'status', status: view(77, [], 'ready') }], (looks) => looks < 3);
    expect(await waitForStop(view(42, []), undefined, fake.ports)).toEqual({ kind: 'stopped' });
    expect(fake.looks()).toBe(3);
  });

  it('--timeout ends the wait with what the daemon still waits for, at the deadline and not past it', async () => {
    const fake = fakePorts([{ kind: 'status', status: view(42, [ID1]) }], () => true);
    expect(await waitForStop(view(42, [ID1]), 1000, fake.ports)).toEqual({
      kind: 'timeout',
      open: true,
      running: 1,
    });
    expect(fake.clock()).toBe(1000);
    const closed = fakePorts([{ kind: 'gone' }], () => true);
    expect(await waitForStop(view(42, [ID1]), 600, closed.ports)).toEqual({
      kind: 'timeout',
      open: false,
      running: 0,
    });
    expect(closed.said).toHaveLength(1);
  });
});

describe('waitForStop: a wait that would never end', () => {
  /** A script of `n` looks of `probe`, then those of `rest`. */
  const times = (n: number, probe: StopProbe): StopProbe[] => Array.from({ length: n }, () => probe);
  const draining = { kind: 'status', status: view(42, [ID1]) } as const;

  it.each([
    [
      'ignored',
      { kind: 'status', status: view(42, [], 'ready') },
      { why: 'ignored', state: 'ready', open: true },
    ],
    ['other', { kind: 'other' }, { why: 'other', open: true }],
    ['exiting', { kind: 'gone' }, { why: 'exiting', open: false }],
    // Another daemon's status on the socket: this one's is gone.
    ['exiting', { kind: 'status', status: view(77, [], 'ready') }, { why: 'exiting', open: false }],
  ] as const)(
    'gives up (%s) once nothing went toward the exit for STOP_STUCK_MS, without --timeout',
    async (_, probe, stuck) => {
      // Before, these waited for ever: this test never ended.
      const fake = fakePorts([probe], () => true);
      const result = await waitForStop(view(42, []), undefined, fake.ports);
      expect(result).toMatchObject({ kind: 'stuck', ...stuck });
      expect(fake.clock()).toBeGreaterThanOrEqual(STOP_STUCK_MS);
      expect(fake.clock()).toBeLessThan(STOP_STUCK_MS + 2 * STOP_POLL_MS);
    },
  );

  it('waits for a draining daemon as long as its sessions run, and a stuck stretch ended by progress counts anew', async () => {
    const looks = STOP_STUCK_MS / STOP_POLL_MS;
    const fake = fakePorts(
      [
        ...times(3 * looks, draining),
        // Most of the bound with no answer (a daemon busy for a while), then an answer again.
        ...times(looks - 10, { kind: 'other' }),
        draining,
        ...times(looks - 10, { kind: 'other' }),
        draining,
        // Its socket closed: its process outlives it for a while (records, notifications), then ends.
        ...times(looks - 10, { kind: 'gone' }),
      ],
      (look) => look <= 6 * looks - 30,
    );
    expect(await waitForStop(view(42, [ID1]), undefined, fake.ports)).toEqual({ kind: 'stopped' });
    expect(fake.clock()).toBeGreaterThan(5 * STOP_STUCK_MS);
  });

  it("a daemon's `busy` (its connections all taken) is not taken for one that does not stop", async () => {
    const looks = STOP_STUCK_MS / STOP_POLL_MS;
    const fake = fakePorts(
      [...times(3 * looks, { kind: 'busy' }), ...times(looks - 10, { kind: 'gone' })],
      (look) => look <= 4 * looks - 10,
    );
    expect(await waitForStop(view(42, [ID1]), undefined, fake.ports)).toEqual({ kind: 'stopped' });
  });

  it('--timeout earlier than the bound still ends it as a timeout', async () => {
    const fake = fakePorts([{ kind: 'other' }], () => true);
    expect(await waitForStop(view(42, []), 1000, fake.ports)).toEqual({
      kind: 'timeout',
      open: true,
      running: 0,
    });
  });
});

describe('shutdownPlan', () => {
  it('sends one shutdown to a running daemon, none to one already draining or failed; --force one more', () => {
    const sends = (state: string, force: boolean) => shutdownPlan(state, force).send;
    for (const state of ['ready', 'degraded', 'opening']) {
      expect(sends(state, false), state).toBe(1);
      // A first shutdown drains, a second cancels the running sessions: the daemon machine's rule.
      expect(sends(state, true), state).toBe(2);
    }
    expect(sends('shutdown.draining', false)).toBe(0);
    expect(sends('shutdown.draining', true)).toBe(1);
    expect(sends('failed', false)).toBe(0);
    expect(sends('failed', true)).toBe(0);
    expect(shutdownPlan('shutdown.draining', false).say(view(42, [ID1]))).toBe(
      `agentd (pid 42) is already shutting down: 1 running session(s) to finish: ${ID1} (demo); agentd stop --force cancels them`,
    );
  });
});

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function sleeper(): ChildProcess {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  return child;
}

/** A daemon on a Unix socket: answers `status` as `state()` says, and takes events; its process is `pid`. */
async function fakeDaemon(
  pid: number,
  state: () => string,
  onEvent: (daemon: ScriptedDaemon) => void,
  /** Answers nothing (true), or nothing to events only (`events`: it answers status, then goes silent). */
  silent: boolean | 'events' = false,
  /** A daemon older than the shutdown event's mode: it refuses the field, as the real one did. */
  older = false,
): Promise<ScriptedDaemon> {
  const daemon = await scriptedDaemon((request, socket) => {
    if (silent === true) return;
    const base = { id: request.id };
    if (request.type === 'status') {
      const status = {
        ...base,
        type: 'status',
        state: state(),
        pid,
        version: '0.0.0',
        instanceId: 'fake',
        socket: daemon.path,
        uptimeMs: 1,
        maxSessions: 4,
        running: [
          {
            id: ID1,
            agent: 'demo',
            repo: 'git://x/y.git',
            phase: 'running',
            startedAt: new Date(0).toISOString(),
            elapsedMs: 1,
          },
        ],
        queued: [],
        recent: [],
      };
      socket.write(replyLine(status));
    } else if (request.type === 'event') {
      if (silent === 'events') return;
      const event = request.event;
      if (older && typeof event === 'object' && event !== null && 'mode' in event) {
        const refusal = {
          ...base,
          type: 'error',
          code: 'bad_request',
          message: 'invalid request',
          problems: [{ path: 'event.mode', message: 'unknown field' }],
          retryable: false,
        };
        socket.write(replyLine(refusal));
        return;
      }
      socket.write(replyLine({ ...base, type: 'event.result', event, answers: [], state: state() }));
      onEvent(daemon);
    }
  });
  cleanups.push(() => daemon.close());
  return daemon;
}

describe('agentd stop', () => {
  it('sends one shutdown, waits until the socket is gone and the process has exited, then exits 0', async () => {
    const child = sleeper();
    const pid = child.pid as number;
    let state = 'ready';
    let events = 0;
    const daemon = await fakeDaemon(
      pid,
      () => state,
      (d) => {
        state = 'shutdown.draining';
        events++;
        // Drains for a moment, closes its socket, and its process ends a moment later.
        setTimeout(() => {
          void d.close().then(() => setTimeout(() => child.kill('SIGKILL'), 300));
        }, 300);
      },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const result = await run(['stop', '--socket', daemon.path]);
    expect(result.code, result.stderr).toBe(EXIT.succeeded);
    expect(events).toBe(1);
    // Not before the process had gone: the socket closing alone is not the end.
    expect(child.exitCode !== null || child.signalCode !== null).toBe(true);
    await exited;
    expect(result.stdout).toMatch(
      new RegExp(
        `^asked agentd \\(pid ${pid}\\) to shut down: 1 running session\\(s\\) to finish: ${ID1} \\(demo\\); agentd stop --force cancels them\n`,
      ),
    );
    expect(result.stdout).toMatch(new RegExp(`agentd \\(pid ${pid}\\) stopped after \\S+\n$`));
    expect(result.stderr).toBe('');
  });

  it('sends one graceful shutdown, or one forced, and lets the daemon decide: no second plain one, whatever the state it read', async () => {
    const child = sleeper();
    for (const state of ['ready', 'shutdown.draining']) {
      const daemon = await fakeDaemon(
        child.pid as number,
        () => state,
        () => {},
      );
      const graceful = await run(['stop', '--socket', daemon.path, '--timeout', '200ms', '--quiet']);
      expect(graceful.code, state).toBe(EXIT.stillRunning);
      const forced = await run(['stop', '--socket', daemon.path, '--timeout', '200ms', '--force', '--quiet']);
      expect(forced.code, state).toBe(EXIT.stillRunning);
      expect(
        daemon.requests.filter((r) => r.type === 'event').map((r) => r.event),
        state,
      ).toEqual([
        { type: 'shutdown', mode: 'graceful' },
        { type: 'shutdown', mode: 'force' },
      ]);
    }
  });

  it('a daemon older than the mode (it refuses the field): plain shutdowns as its state calls for, none more to one already draining unless --force', async () => {
    const child = sleeper();
    const daemon = await fakeDaemon(
      child.pid as number,
      () => 'shutdown.draining',
      () => {},
      false,
      true,
    );
    const waited = await run(['stop', '--socket', daemon.path, '--timeout', '300ms', '--json']);
    expect(waited.code, waited.stderr).toBe(EXIT.stillRunning);
    expect(JSON.parse(waited.stdout)).toMatchObject({
      error: 'still_running',
      pid: child.pid,
      running: 1,
      code: EXIT.stillRunning,
    });
    expect(daemon.requests.filter((r) => r.type === 'event').map((r) => r.event)).toEqual([
      { type: 'shutdown', mode: 'graceful' },
    ]);
    const forced = await run(['stop', '--socket', daemon.path, '--timeout', '300ms', '--force', '--quiet']);
    expect(forced.code).toBe(EXIT.stillRunning);
    expect(forced.stdout).toBe('');
    expect(daemon.requests.filter((r) => r.type === 'event').map((r) => r.event)).toEqual([
      { type: 'shutdown', mode: 'graceful' },
      { type: 'shutdown', mode: 'force' },
      { type: 'shutdown' },
    ]);
  });

  it('--force on a ready daemon older than the mode sends two plain shutdowns: the second cancels the running sessions', async () => {
    const child = sleeper();
    const daemon = await fakeDaemon(
      child.pid as number,
      () => 'ready',
      () => {},
      false,
      true,
    );
    const result = await run(['stop', '--socket', daemon.path, '--timeout', '200ms', '--force', '--json']);
    expect(result.code).toBe(EXIT.stillRunning);
    expect(daemon.requests.filter((r) => r.type === 'event').map((r) => r.event)).toEqual([
      { type: 'shutdown', mode: 'force' },
      { type: 'shutdown' },
      { type: 'shutdown' },
    ]);
  });

  it('a daemon that takes the connection and never answers holds it no longer than --timeout (not 120 s)', async () => {
    const daemon = await fakeDaemon(
      process.pid,
      () => 'ready',
      () => {},
      true,
    );
    // Before, the status request waited ANSWER_TIMEOUT_MS (120 s) whatever --timeout said: this test timed out.
    const result = await run(['stop', '--socket', daemon.path, '--timeout', '300ms', '--json']);
    expect(result.code).toBe(EXIT.infrastructure);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: 'no_answer', code: EXIT.infrastructure });
    expect(daemon.requests.map((r) => r.type)).toEqual(['status']);
  });

  it('--timeout that runs out before the daemon answers says so, with whether the stop was asked (not "did not answer within 0 s")', async () => {
    // Asked: the shutdown went out and its answer did not come in time. Before: exit 4, "the daemon took the
    // connection but did not answer within 0 s; look at its log", while a real daemon had taken it and stopped.
    const asked = await fakeDaemon(
      process.pid,
      () => 'ready',
      () => {},
      'events',
    );
    const json = await run(['stop', '--socket', asked.path, '--timeout', '1500ms', '--json']);
    expect(json.code).toBe(EXIT.stillRunning);
    expect(JSON.parse(json.stdout)).toEqual({
      error: 'still_running',
      pid: process.pid,
      running: 1,
      message: `--timeout 1500ms ran out before agentd (pid ${process.pid}) answered the shutdown request, which it may have taken: it then goes on shutting down; see agentd status, or wait with agentd stop`,
      code: EXIT.stillRunning,
    });
    expect(asked.requests.map((r) => r.type)).toEqual(['status', 'event']);
    // Not asked: the status itself did not come in time. Still no_answer (4), in words that name --timeout.
    const silent = await fakeDaemon(
      process.pid,
      () => 'ready',
      () => {},
      true,
    );
    const text = await run(['stop', '--socket', silent.path, '--timeout', '1ms']);
    expect(text.code).toBe(EXIT.infrastructure);
    expect(text.stderr).toMatch(
      /^agentd: --timeout 1ms ran out before the daemon answered stop's first request \(its status\): it was not asked to stop; give a longer --timeout/,
    );
    expect(text.stderr).not.toContain('0 s');
  });

  it("a request's own answer bound is named as set (1ms), never rounded to 0 s", async () => {
    const silent = await fakeDaemon(
      process.pid,
      () => 'ready',
      () => {},
      true,
    );
    const client = await DaemonClient.connect(silent.path);
    try {
      const reply = await client.request({ type: 'status' }, 1);
      expect(reply).toEqual({
        type: 'error',
        code: 'no_answer',
        message:
          'the daemon took the connection but did not answer within 1ms; look at its log (journalctl -u agentd)',
      });
    } finally {
      client.close();
    }
  });

  it('something on the socket that answers as a daemon but never shuts down: gives up after STOP_STUCK_MS, naming the pid and what to do (7)', async () => {
    const child = sleeper();
    const pid = child.pid as number;
    // Takes the shutdown and answers it, and stays `ready`: not an agentd daemon, or one that ignores it.
    const daemon = await fakeDaemon(
      pid,
      () => 'ready',
      () => {},
    );
    // The steady clock alone is fake (sockets and sleeps are real): moved on while `stop` waits. Before,
    // it waited for ever without --timeout: this test timed out.
    vi.useFakeTimers({ toFake: ['performance'] });
    cleanups.push(() => {
      vi.useRealTimers();
    });
    let done = false;
    const running = run(['stop', '--socket', daemon.path, '--json']).finally(() => {
      done = true;
    });
    for (let i = 0; i < 200 && !done; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      vi.advanceTimersByTime(1000);
    }
    const result = await running;
    expect(result.code, result.stderr).toBe(EXIT.stillRunning);
    expect(JSON.parse(result.stdout)).toMatchObject({
      error: 'not_stopping',
      why: 'ignored',
      state: 'ready',
      pid,
      code: EXIT.stillRunning,
    });
    expect(result.stderr).toContain(`after it was asked to shut down`);
    expect(result.stderr).toContain(`agentd stop --force, or end it with kill ${pid}`);
    expect(result.stderr).toContain(daemon.path);
    expect(daemon.requests.filter((r) => r.type === 'event')).toHaveLength(1);
    // It looked again and again before it gave up, and the process was never touched.
    expect(daemon.requests.filter((r) => r.type === 'status').length).toBeGreaterThan(2);
    expect(child.exitCode).toBeNull();
  }, 30_000);

  it.each([-1, 0, 1.5])(
    'a status whose pid is %s (no process id) is a bad reply, and no shutdown is sent',
    async (pid) => {
      const daemon = await fakeDaemon(
        pid,
        () => 'ready',
        () => {},
      );
      // Before, `stop` sent the shutdown and waited on kill(-1, 0), which always finds a process: for ever.
      const result = await run(['stop', '--socket', daemon.path, '--json', '--timeout', '1s']);
      expect(result.code).toBe(EXIT.infrastructure);
      expect(JSON.parse(result.stdout)).toMatchObject({ error: 'bad_reply', code: EXIT.infrastructure });
      expect(result.stderr).toMatch(/is no process id/);
      expect(daemon.requests.map((r) => r.type)).toEqual(['status']);
    },
  );

  it('a daemon still starting (no socket yet, its marker holds its pid): 11, naming the pid and how to stop it', async () => {
    const socket = join(makeTempDir('agentd-unit-stop-'), 'agentd.sock');
    writeFileSync(`${socket}.starting`, `${process.pid}\n`, { mode: 0o600 });
    const result = await run(['stop', '--socket', socket, '--json']);
    expect(result.code).toBe(EXIT.notReady);
    expect(JSON.parse(result.stdout)).toMatchObject({
      error: 'starting',
      pid: process.pid,
      code: EXIT.notReady,
    });
    expect(result.stderr).toContain(`kill ${process.pid}`);
  });

  it('no daemon: 69, as every client command', async () => {
    const path = join(makeTempDir('agentd-unit-stop-'), 'agentd.sock');
    const result = await run(['stop', '--socket', path]);
    expect(result.code).toBe(EXIT.unreachable);
    expect(result.stderr).toMatch(/^agentd: no agentd daemon answers on /);
  });

  it('refuses a --timeout that is no duration (usage, 2) before it asks anything', async () => {
    const result = await runEntryInProcess([
      'stop',
      '--timeout',
      'soon',
      '--socket',
      '/nonexistent/agentd.sock',
    ]);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toMatch(/--timeout/);
  });
});
