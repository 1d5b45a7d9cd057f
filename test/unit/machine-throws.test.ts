/**
 * An exception inside a machine's action (a record write that fails, a bug): a session actor's own is
 * that session's end, with one outcome; one that stops the daemon machine is said to every client as
 * the daemon's failure, and a trigger the machine recorded before it failed is answered as accepted
 * (its session is queued on disk, and the next start runs it), never as rejected. A schedule actor's
 * own is that schedule's end: it fires no more until a reload, and the daemon goes on.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Actor, createActor, raise } from 'xstate';
import type { AgentConfig, ScheduleConfig } from '../../src/config/types.js';
import { readiness } from '../../src/daemon/http.js';
import { gaugesOf } from '../../src/daemon/observe.js';
import { createDaemonPort, failureOf, sendEvent } from '../../src/daemon/port.js';
import { createApi } from '../../src/http/api.js';
import { Tokens } from '../../src/http/auth.js';
import type { DaemonEmitted, daemonMachine } from '../../src/machines/daemon.machine.js';
import { scheduleMachine } from '../../src/machines/schedule.machine.js';
import type { DaemonPort } from '../../src/protocol/context.js';
import { dispatch } from '../../src/protocol/dispatch.js';
import { replySchema } from '../../src/protocol/replies.js';
import { fakeConnection } from '../helpers/fake-connection.js';
import { AGENTS, Fakes, settle } from '../helpers/machine-fakes.js';

type DaemonActor = Actor<typeof daemonMachine>;

/** A daemon machine with fakes, up and ready; `machine` changes what it is provided. */
async function readyDaemon(fakes: Fakes, machine = fakes.daemon()): Promise<DaemonActor> {
  const actor = createActor(machine, { input: { agents: AGENTS, maxSessions: 2 } });
  // The daemon (main.ts) listens for the machine's failure; without a listener XState throws it again.
  actor.subscribe({ error: () => {} });
  actor.start();
  await settle();
  expect(actor.getSnapshot().value).toBe('ready');
  return actor;
}

function answersOf(actor: DaemonActor): DaemonEmitted[] {
  const answers: DaemonEmitted[] = [];
  actor.on('*', (answer) => answers.push(answer));
  return answers;
}

describe('a session actor whose own action throws', () => {
  it('ends that session with one outcome, error with the reason, and leaves the daemon ready', async () => {
    const fakes = new Fakes();
    let throws = true;
    const session = fakes.session().provide({
      actions: {
        announcePhase: ({ context }, { phase }) => {
          if (throws && phase === 'resolving') {
            throws = false;
            throw new Error("EACCES: permission denied, open 'sessions/s1.json'");
          }
          fakes.announced.push({ sessionId: context.request.sessionId, phase });
        },
      },
    });
    const actor = await readyDaemon(fakes, fakes.daemon().provide({ actors: { session } }));
    const answers = answersOf(actor);

    actor.send({ type: 'trigger', sessionId: 's1', agent: 'demo', key: 'k1' });
    await settle();
    await settle();

    expect(actor.getSnapshot().status).toBe('active');
    expect(actor.getSnapshot().value).toBe('ready');
    expect(fakes.reportsOf('s1')).toEqual([
      {
        sessionId: 's1',
        via: 'reportSettled',
        outcome: {
          outcome: 'error',
          phase: 'resolving',
          message:
            "the daemon's supervision of this session failed: EACCES: permission denied, open 'sessions/s1.json'",
        },
      },
    ]);
    expect(Object.keys(actor.getSnapshot().context.sessions)).toEqual([]);
    // Its key is that of a finished session: a retry with it is answered with s1, not left running.
    expect(actor.getSnapshot().context.keys.k1?.finishedAt).toBeTypeOf('number');

    // The daemon goes on: the next trigger runs.
    actor.send({ type: 'trigger', sessionId: 's2', agent: 'demo' });
    await settle();
    expect(answers.filter((a) => a.type === 'trigger.accepted').map((a) => a.sessionId)).toEqual([
      's1',
      's2',
    ]);
    fakes.run('s2').finish();
    await settle();
    expect(fakes.reportsOf('s2').map((r) => r.outcome.outcome)).toEqual(['succeeded']);
    expect(fakes.reportsOf('s1')).toHaveLength(1);
    actor.stop();
  });

  it('a runner whose own action throws: the session ends error once and the daemon removes what it made', async () => {
    const fakes = new Fakes();
    const abandoned: { sessionId: string; runner: boolean }[] = [];
    const session = fakes.session().provide({
      actions: {
        // As main.ts does: it reads the failed runner, still the session's child at this point.
        abandonRun: ({ context, self }) => {
          abandoned.push({
            sessionId: context.request.sessionId,
            runner: self.getSnapshot().children.runner !== undefined,
          });
        },
      },
    });
    const actor = await readyDaemon(fakes, fakes.daemon().provide({ actors: { session } }));
    actor.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });
    await settle();
    fakes.run('s1').fail(new Error('EIO: i/o error, write'));
    await settle();
    await settle();
    expect(abandoned).toEqual([{ sessionId: 's1', runner: true }]);
    expect(fakes.reportsOf('s1').map((r) => r.outcome)).toEqual([
      { outcome: 'error', phase: 'creating', message: 'runner failed: EIO: i/o error, write' },
    ]);
    expect(actor.getSnapshot().value).toBe('ready');
    actor.stop();
  });

  it('a failed child that is no session, schedule or host of its own is not absorbed: the daemon machine fails', async () => {
    const fakes = new Fakes();
    const actor = await readyDaemon(fakes);
    // main.ts logs daemon.crashed and exits.
    actor.send({ type: 'xstate.error.actor.other', error: new Error('bug') } as never);
    expect(actor.getSnapshot().status).toBe('error');
  });
});

describe('a host actor whose own action throws', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(new Date('2026-06-01T10:00:00.000Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('that host takes no new sessions and says why, its sessions and the others go on; a reload watches it again', async () => {
    const fakes = new Fakes({ probeIntervalMs: 1_000 });
    const failures: { host: string; reason: string }[] = [];
    const restarted: unknown[] = [];
    const abandoned: { host: string; reason?: string }[] = [];
    let throws = false;
    // Host a's probe answer is taken by an action that throws once (a bug in reading it).
    const host = fakes.host().provide({
      actions: {
        probed: ({ context }) => {
          if (throws && context.name === 'a') {
            throws = false;
            throw new Error('probe answer: bug');
          }
        },
      },
    });
    const machine = fakes.daemon().provide({
      actors: { host },
      actions: {
        announceHostFailed: (_, { host, reason }) => failures.push({ host, reason }),
        abandonWaiting: (_, params) => abandoned.push(params),
        announceRestarted: (_, params) => restarted.push(params),
      },
    });
    const actor = createActor(machine, {
      input: {
        agents: AGENTS,
        maxSessions: 10,
        hosts: [
          { name: 'a', maxSessions: 5, labels: {} },
          { name: 'b', maxSessions: 1, labels: {} },
        ],
      },
    });
    actor.subscribe({ error: () => {} });
    actor.start();
    await settle();
    const port = portOver(actor, new Set());
    const placed = () =>
      Object.fromEntries(
        Object.entries(actor.getSnapshot().context.sessions).map(([id, ref]) => [
          id,
          ref.getSnapshot().context.host,
        ]),
      );
    // s0 runs on a (the most free slots).
    port.send({ type: 'trigger', sessionId: 's0', agent: 'demo' });
    await settle();
    expect(placed()).toEqual({ s0: 'a' });

    throws = true;
    await vi.advanceTimersByTimeAsync(1_000);

    expect(actor.getSnapshot().status).toBe('active');
    expect(actor.getSnapshot().value).toBe('ready');
    expect(failures).toEqual([{ host: 'a', reason: 'probe answer: bug' }]);
    // What an earlier daemon left waiting for it waits on: the host's next actor reconciles it.
    expect(abandoned).toEqual([]);
    const a = port.hosts().find((h) => h.name === 'a');
    expect(a).toMatchObject({
      state: 'failed',
      running: 1,
      problem:
        "the daemon's supervision of this host failed: probe answer: bug; no new sessions go there, its running sessions go on: it is tried again at 10:00:06 UTC (attempt 1), or now by `agentd reload`",
    });
    expect(port.hosts().find((h) => h.name === 'b')?.state).toBe('up');
    expect(gaugesOf(actor).failedHosts).toEqual(['a']);
    // status says so too, where an operator looks first.
    expect(port.status()).toMatchObject({
      state: 'ready',
      failedHosts: [{ name: 'a', problem: a?.problem, attempts: 1, retryAt: '2026-06-01T10:00:06.000Z' }],
    });
    // New sessions go to b only (one slot): s2 waits.
    port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });
    port.send({ type: 'trigger', sessionId: 's2', agent: 'demo' });
    await settle();
    expect(placed()).toEqual({ s0: 'a', s1: 'b' });
    expect(actor.getSnapshot().context.queue.map((s) => s.request.sessionId)).toEqual(['s2']);
    // s0 runs on and ends once, as it ends.
    fakes.run('s0').finish();
    await settle();
    expect(fakes.reportsOf('s0').map((r) => r.outcome.outcome)).toEqual(['succeeded']);

    // A reload watches it again: probed, reconciled, then it takes the waiting session.
    actor.send({ type: 'reload', agents: AGENTS, maxSessions: 10 });
    await settle();
    expect(port.hosts().find((h) => h.name === 'a')?.state).toBe('down');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(fakes.reconciledHosts).toEqual(['a']);
    expect(port.hosts().find((h) => h.name === 'a')?.state).toBe('up');
    expect(port.status()).not.toHaveProperty('failedHosts');
    expect(placed()).toEqual({ s1: 'b', s2: 'a' });
    expect(failures).toHaveLength(1);
    // Its retry was cancelled by the reload: no second actor, no second reconciliation.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(restarted).toEqual([]);
    expect(fakes.reconciledHosts).toEqual(['a']);
    expect(abandoned).toEqual([]);
    actor.stop();
  });
});

describe('a schedule actor whose own action throws', () => {
  const EVERY_5S: ScheduleConfig = { cron: '*/5 * * * * *', overlap: 'queue', catchUp: 'none' };
  const scheduled = (name: string): AgentConfig => ({
    ...(AGENTS[0] as AgentConfig),
    name,
    schedule: EVERY_5S,
  });
  const agents = [scheduled('bad'), scheduled('good'), ...AGENTS];

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(new Date('2026-06-01T10:00:02.000Z'));
  });
  afterEach(() => vi.useRealTimers());

  /**
   * The daemon with agents `bad` and `good` on a schedule; bad's recordProgress (the schedule log's
   * write, in main.ts) throws at the call `throwAt` (1: the schedule's start, 2: its first firing).
   */
  async function scheduledDaemon(throwAt: number) {
    const fakes = new Fakes();
    const failures: { agent: string; reason: string }[] = [];
    let calls = 0;
    const schedule = scheduleMachine.provide({
      actions: {
        recordProgress: (_, { agent }) => {
          if (agent === 'bad' && ++calls === throwAt)
            throw new Error("EIO: i/o error, open 'schedules.json'");
        },
      },
    });
    const machine = fakes.daemon().provide({
      actors: { schedule },
      actions: { announceScheduleFailed: (_, { agent, reason }) => failures.push({ agent, reason }) },
    });
    const actor = createActor(machine, { input: { agents, maxSessions: 10 } });
    actor.subscribe({ error: () => {} });
    actor.start();
    await settle();
    return { fakes, failures, actor, port: portOver(actor, new Set()) };
  }

  const reason = "EIO: i/o error, open 'schedules.json'";
  const firedBy = (fakes: Fakes, agent: string) =>
    fakes.accepted.filter((r) => r.agent === agent).map((r) => r.scheduledFor);

  for (const [when, throwAt] of [
    ['at its start', 1],
    ['at a firing', 2],
  ] as const) {
    it(`${when}: that schedule stops, says why in status, the daemon and the others go on; a reload starts it again`, async () => {
      const { fakes, failures, actor, port } = await scheduledDaemon(throwAt);
      await vi.advanceTimersByTimeAsync(3_000);

      expect(actor.getSnapshot().status).toBe('active');
      expect(actor.getSnapshot().value).toBe('ready');
      expect(failures).toEqual([{ agent: 'bad', reason }]);
      // Its failed actor is where the failure is held (why: its error), as a failed host's is.
      const { schedules, restarts } = actor.getSnapshot().context;
      expect(Object.entries(schedules).map(([name, ref]) => [name, ref.getSnapshot().status])).toEqual([
        ['bad', 'error'],
        ['good', 'active'],
      ]);
      expect(schedules.bad?.getSnapshot().error).toEqual(new Error(reason));
      expect(actor.getSnapshot().context).not.toHaveProperty('failedSchedules');
      expect(Object.values(restarts).map((r) => Object.keys(r).sort())).toEqual([
        ['attempts', 'kind', 'name', 'retryAt'],
      ]);
      // The other schedule fires on, and a client's trigger is accepted.
      expect(firedBy(fakes, 'good')).toEqual(['2026-06-01T10:00:05.000Z']);
      expect(firedBy(fakes, 'bad')).toEqual([]);
      expect(port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' })).toMatchObject([
        { type: 'trigger.accepted', sessionId: 's1' },
      ]);
      const views = port.status().schedules ?? [];
      expect(views.map((s) => [s.agent, s.failed === undefined, s.next !== undefined])).toEqual([
        ['bad', false, false],
        ['good', true, true],
      ]);
      // Tried again 5 s after it failed (at its start, 10:00:02, or at its first firing, 10:00:05).
      const retryAt = throwAt === 1 ? '10:00:07' : '10:00:10';
      expect(views[0]?.failed).toBe(
        `the schedule failed and fires no more until it starts again: ${reason}; it is tried again at ${retryAt} UTC (attempt 1), or now by \`agentd reload\``,
      );
      expect(views[0]).toMatchObject({ attempts: 1, retryAt: `2026-06-01T${retryAt}.000Z` });

      expect(
        gaugesOf(actor)
          .schedules.filter((g) => g.failed !== undefined)
          .map((g) => g.agent),
      ).toEqual(['bad']);
      // `agentd agents` says so too, not "next never".
      const bad = port.agents().find((a) => a.name === 'bad')?.schedule;
      expect(bad?.failed).toBe(views[0]?.failed);
      expect(bad).not.toHaveProperty('next');

      // A reload starts it again, from the reload.
      actor.send({ type: 'reload', agents, maxSessions: 10 });
      await settle();
      expect(Object.keys(actor.getSnapshot().context.schedules).sort()).toEqual(['bad', 'good']);
      expect(port.status().schedules?.every((s) => s.failed === undefined)).toBe(true);
      await vi.advanceTimersByTimeAsync(5_000);
      expect(firedBy(fakes, 'bad')).toEqual(['2026-06-01T10:00:10.000Z']);
      expect(failures).toHaveLength(1);
      // The retry the reload cancelled starts no second actor.
      expect(actor.getSnapshot().context.restarts).toEqual({});
      actor.stop();
    });
  }

  it('a drain holds across it: a failed host takes none, the reload brings it back drained', async () => {
    const fakes = new Fakes({ probeIntervalMs: 1_000 });
    let throws = false;
    const host = fakes.host().provide({
      actions: {
        probed: ({ context }) => {
          if (throws && context.name === 'a') {
            throws = false;
            throw new Error('probe answer: bug');
          }
        },
      },
    });
    const actor = createActor(fakes.daemon().provide({ actors: { host } }), {
      input: {
        agents: AGENTS,
        maxSessions: 10,
        hosts: [
          { name: 'a', maxSessions: 5, labels: {} },
          { name: 'b', maxSessions: 5, labels: {} },
        ],
      },
    });
    actor.subscribe({ error: () => {} });
    actor.start();
    await settle();
    const port = portOver(actor, new Set());
    expect(port.send({ type: 'drain', host: 'a' })).toMatchObject([
      { type: 'drain.applied', host: 'a', drained: true },
    ]);
    throws = true;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(port.hosts().find((h) => h.name === 'a')).toMatchObject({ state: 'failed', drained: true });

    // Its actor takes nothing: the operator is told so, not that it was undrained.
    expect(port.send({ type: 'undrain', host: 'a' })).toMatchObject([
      {
        type: 'drain.rejected',
        host: 'a',
        reason:
          "the daemon's supervision of host a failed: it takes no new sessions; `agentd reload` (or a restart) watches it again, drain or undrain it then",
      },
    ]);

    actor.send({ type: 'reload', agents: AGENTS, maxSessions: 10 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(port.hosts().find((h) => h.name === 'a')).toMatchObject({ state: 'up', drained: true });
    port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });
    await settle();
    expect(actor.getSnapshot().context.sessions.s1?.getSnapshot().context.host).toBe('b');
    actor.stop();
  });
});

/** The daemon machine whose recordAccepted throws: after the session's record was written, or before. */
function throwingDaemon(fakes: Fakes, recorded: Set<string>, when: 'after' | 'before') {
  return fakes.daemon().provide({
    actions: {
      recordAccepted: raise((_, { session }) => {
        if (when === 'after') recorded.add(session.request.sessionId);
        // As pino did on a full disk, or any write after the record.
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }),
    },
  });
}

function portOver(actor: DaemonActor, recorded: Set<string>): DaemonPort {
  const journal = {
    used: (id: string) => recorded.has(id),
    record: () => undefined,
    recent: () => [],
    waitingToSeal: () => ({ count: 0, oldest: undefined }),
    followAll: () => () => {},
  };
  return createDaemonPort({
    actor,
    journal: journal as never,
    reload: async () => {
      throw new Error('no reload here');
    },
    version: '0.0.0-test',
    instanceId: 'test',
    socket: '/tmp/none.sock',
    log: { info() {}, warn() {}, error() {} } as never,
  });
}

describe('a daemon machine stopped by an exception in an action', () => {
  it('a trigger recorded before the exception is answered accepted: its session is queued on disk', async () => {
    const fakes = new Fakes();
    const recorded = new Set<string>();
    const actor = await readyDaemon(fakes, throwingDaemon(fakes, recorded, 'after'));
    const port = portOver(actor, recorded);

    const answers = port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });

    expect(actor.getSnapshot().status).toBe('error');
    expect(answers).toEqual([{ type: 'trigger.accepted', sessionId: 's1', queued: true, position: 1 }]);
  });

  it('a client watching the state (subscribe) learns of it, and the failure is not rethrown as an uncaught exception', async () => {
    const fakes = new Fakes();
    const actor = await readyDaemon(fakes, throwingDaemon(fakes, new Set(), 'before'));
    const port = portOver(actor, new Set());
    const uncaught: unknown[] = [];
    // XState rethrows (in a timer) a failure that one of the actor's subscribers has no error listener
    // for; main.ts would never log daemon.crashed and exit as it should, the process would die of it.
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.prependListener('uncaughtException', onUncaught);
    try {
      const states: string[] = [];
      const unwatch = port.watch(() => states.push(port.state()));

      port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });
      await new Promise((resolve) => setTimeout(resolve, 50));

      expect(actor.getSnapshot().status).toBe('error');
      expect(uncaught).toEqual([]);
      expect(states.at(-1)).toBe('failed');
      unwatch();
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
  });

  it('one it did not record is rejected with why, and so is every later one; status says failed', async () => {
    const fakes = new Fakes();
    const recorded = new Set<string>(['old']);
    const actor = await readyDaemon(fakes, throwingDaemon(fakes, recorded, 'before'));
    const port = portOver(actor, recorded);
    const failed = 'the daemon failed: ENOSPC: no space left on device, write; it is exiting, restart it';

    expect(port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' })).toEqual([
      { type: 'trigger.rejected', sessionId: 's1', code: 'not_accepting', reason: failed },
    ]);
    // A later one, with the id of a recorded session: still the failure, never "accepted".
    expect(
      sendEvent(actor, { type: 'trigger', sessionId: 'old', agent: 'demo' }, (id) => recorded.has(id)),
    ).toEqual([{ type: 'trigger.rejected', sessionId: 'old', code: 'not_accepting', reason: failed }]);
    expect(port.send({ type: 'cancel', sessionId: 'old' })).toEqual([
      { type: 'cancel.rejected', sessionId: 'old', reason: failed },
    ]);
    expect(failureOf(actor)).toBe(failed);
    // The machine's value is still `ready`: clients are told `failed`, and why.
    expect(actor.getSnapshot().value).toBe('ready');
    expect(port.state()).toBe('failed');
    expect(port.status()).toMatchObject({ state: 'failed', failed });
  });

  it('/healthz says failed (503) and /readyz not ready from the machine itself, for as long as the process takes to exit', async () => {
    const fakes = new Fakes();
    const actor = await readyDaemon(fakes, throwingDaemon(fakes, new Set(), 'before'));
    const port = portOver(actor, new Set());
    const app = createApi({
      daemon: port,
      tokens: await Tokens.resolve([], {}),
      metrics: { text: async () => '', contentType: 'text/plain', httpRequest: () => {} },
      readiness: async () => readiness(port),
      log: { info() {}, debug() {}, warn() {}, error() {} } as never,
      bodyLimitBytes: 1024,
    });
    expect((await app.request('/healthz')).status).toBe(200);
    port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });
    expect(actor.getSnapshot().status).toBe('error');
    // Before, 200 `alive` until the HTTP server closed: after the stop's sweeps, up to some 15 s.
    const health = await app.request('/healthz');
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({
      status: 'failed',
      reason: expect.stringContaining('restart it'),
    });
    const ready = await app.request('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'not_ready', state: 'failed' });
  });

  it('POST /v1/shutdown to a failed machine answers 503 `failed` as /healthz does, not 202 as if it would drain', async () => {
    const fakes = new Fakes();
    const actor = await readyDaemon(fakes, throwingDaemon(fakes, new Set(), 'before'));
    const port = portOver(actor, new Set());
    const shutdowns: (string | undefined)[] = [];
    const sent = port.send;
    port.send = (event) => {
      if (event.type === 'shutdown') shutdowns.push(event.mode);
      return sent(event);
    };
    const env = { T_ADMIN: 'admin-token-0123456789' };
    const app = createApi({
      daemon: port,
      tokens: await Tokens.resolve(
        [{ name: 'ops', source: { kind: 'env', name: 'T_ADMIN', raw: 'env:T_ADMIN' }, scopes: ['admin'] }],
        env,
      ),
      metrics: { text: async () => '', contentType: 'text/plain', httpRequest: () => {} },
      readiness: async () => readiness(port),
      log: { info() {}, debug() {}, warn() {}, error() {} } as never,
      bodyLimitBytes: 1024,
    });
    port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });
    expect(actor.getSnapshot().status).toBe('error');
    shutdowns.length = 0;
    const health = await app.request('/healthz');
    expect(health.status).toBe(503);
    for (const query of ['', '?mode=force']) {
      // Before: 202 {"mode":"graceful","state":"failed"}, as if the daemon would drain and exit 0.
      const answer = await app.request(`/v1/shutdown${query}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${env.T_ADMIN}` },
      });
      expect(answer.status, query).toBe(503);
      expect(await answer.json(), query).toEqual({
        type: 'error',
        code: 'failed',
        message: expect.stringContaining('restart it'),
        problems: [],
        retryable: false,
      });
    }
    // Nothing sent: a failed machine takes no event, and no shutdown is logged as asked.
    expect(shutdowns).toEqual([]);
  });

  it('POST /v1/sessions/{id}/cancel of a session the failed machine still holds answers 503 `failed`, not 404 (no such session)', async () => {
    const fakes = new Fakes();
    // The first trigger is recorded; the second one's record throws and stops the machine.
    const machine = fakes.daemon().provide({
      actions: {
        recordAccepted: raise((_, { session, requestId }) => {
          if (session.request.sessionId === 's2')
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return {
            type: 'trigger.recorded' as const,
            session,
            ...(requestId === undefined ? {} : { requestId }),
          };
        }),
      },
    });
    const actor = await readyDaemon(fakes, machine);
    const port = portOver(actor, new Set());
    const env = { T_OPS: 'ops-token-0123456789' };
    const app = createApi({
      daemon: port,
      tokens: await Tokens.resolve(
        [{ name: 'ops', source: { kind: 'env', name: 'T_OPS', raw: 'env:T_OPS' }, scopes: ['cancel'] }],
        env,
      ),
      metrics: { text: async () => '', contentType: 'text/plain', httpRequest: () => {} },
      readiness: async () => readiness(port),
      log: { info() {}, debug() {}, warn() {}, error() {} } as never,
      bodyLimitBytes: 1024,
    });
    const s1 = '0123456789abcdef';
    expect(port.send({ type: 'trigger', sessionId: s1, agent: 'demo' })).toMatchObject([
      { type: 'trigger.accepted' },
    ]);
    port.send({ type: 'trigger', sessionId: 's2', agent: 'demo' });
    expect(actor.getSnapshot().status).toBe('error');
    const answer = await app.request(`/v1/sessions/${s1}/cancel`, {
      method: 'POST',
      headers: { authorization: `Bearer ${env.T_OPS}` },
    });
    // Before: 404 unknown_session, while the session's container goes on until the next start adopts it.
    expect(answer.status).toBe(503);
    expect(await answer.json()).toMatchObject({ code: 'failed', retryable: false });
  });

  it('the socket: cancel, drain, undrain and reload of a failed daemon answer `failed` (not retryable), not unknown_session / unknown_host', async () => {
    const fakes = new Fakes();
    const machine = fakes.daemon().provide({
      actions: {
        recordAccepted: raise((_, { session, requestId }) => {
          if (session.request.sessionId === 's2')
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return {
            type: 'trigger.recorded' as const,
            session,
            ...(requestId === undefined ? {} : { requestId }),
          };
        }),
      },
    });
    const actor = await readyDaemon(fakes, machine);
    const port = portOver(actor, new Set());
    const s1 = '0123456789abcdef';
    const { connection, sent } = fakeConnection();
    const ask = (request: object) => {
      sent.length = 0;
      dispatch(JSON.stringify({ v: 2, id: 'r', ...request }), connection, port);
      expect(sent).toHaveLength(1);
      return sent[0];
    };
    expect(port.send({ type: 'trigger', sessionId: s1, agent: 'demo' })).toMatchObject([
      { type: 'trigger.accepted' },
    ]);
    // Before the failure, a host that is not configured is unknown_host, as it stays on a running daemon.
    expect(ask({ type: 'drain', host: 'nope' })).toMatchObject({ type: 'error', code: 'unknown_host' });
    port.send({ type: 'trigger', sessionId: 's2', agent: 'demo' });
    expect(actor.getSnapshot().status).toBe('error');
    const failed = {
      v: 2,
      id: 'r',
      type: 'error',
      code: 'failed',
      message: expect.stringMatching(/^the daemon failed: ENOSPC: .*restart it$/),
      problems: [],
      retryable: false,
    };
    // Before: unknown_session, so `agentd cancel` said "no such session" (exit 6) while s1 ran on.
    expect(ask({ type: 'cancel', sessionId: s1 })).toEqual(failed);
    expect(ask({ type: 'drain', host: 'local' })).toEqual(failed);
    expect(ask({ type: 'undrain', host: 'local' })).toEqual(failed);
    // Before: the reloader's reload_failed ("the daemon did not answer", main.ts), which `agentd reload` prints
    // as a file it kept the old configuration for (exit 1). Now the file is not read at all.
    let reloads = 0;
    port.reload = async () => {
      reloads++;
      return {
        type: 'reload_failed',
        file: '/etc/agentd.yaml',
        message: 'reload not applied: the daemon did not answer',
      };
    };
    expect(ask({ type: 'reload' })).toEqual(failed);
    expect(reloads).toBe(0);
    // The reply is one the protocol's schema takes.
    expect(replySchema.safeParse(ask({ type: 'cancel', sessionId: s1 })).success).toBe(true);
  });

  it('the socket: a reload during which the machine fails answers `failed`, not reload_failed', async () => {
    const fakes = new Fakes();
    const actor = await readyDaemon(fakes, throwingDaemon(fakes, new Set(), 'before'));
    const port = portOver(actor, new Set());
    // The machine fails while the file is read (a trigger's record throws ENOSPC); the reload is then not
    // applied, and main.ts answers reload_failed "the daemon did not answer".
    port.reload = async () => {
      port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });
      return {
        type: 'reload_failed',
        file: '/etc/agentd.yaml',
        message: 'reload not applied: the daemon did not answer',
      };
    };
    const { connection, sent, owed } = fakeConnection();
    dispatch(JSON.stringify({ v: 2, id: 'r', type: 'reload' }), connection, port);
    await settle();
    expect(actor.getSnapshot().status).toBe('error');
    expect(sent).toEqual([
      {
        v: 2,
        id: 'r',
        type: 'error',
        code: 'failed',
        message: expect.stringMatching(/^the daemon failed: ENOSPC: .*restart it$/),
        problems: [],
        retryable: false,
      },
    ]);
    expect(owed()).toBe(0);
  });

  it('a machine that runs is answered by the machine alone', async () => {
    const fakes = new Fakes();
    const actor = await readyDaemon(fakes);
    const port = portOver(actor, new Set());
    expect(port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' })).toMatchObject([
      { type: 'trigger.accepted', sessionId: 's1' },
    ]);
    expect(failureOf(actor)).toBeUndefined();
    expect(port.status()).not.toHaveProperty('failed');
    expect(port.state()).toBe('ready');
    actor.stop();
  });
});
