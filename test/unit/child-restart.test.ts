/**
 * A host or schedule actor that failed (an exception in one of its own actions) is started again by
 * itself after a capped backoff (5 s, doubling, at most 5 min; from 1 again after 10 min up), without
 * waiting for `agentd reload`; a reload restarts it at once, a shutdown cancels the retry. The sessions
 * of an earlier daemon that wait for a failed host get exactly one outcome on every path.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Actor, createActor } from 'xstate';
import type { AgentConfig, ScheduleConfig } from '../../src/config/types.js';
import { createDaemonPort } from '../../src/daemon/port.js';
import {
  type ChildRestart,
  type daemonMachine,
  type HostInfo,
  RESTART_MAX_MS,
  restartDelay,
} from '../../src/machines/daemon.machine.js';
import type { HostReconciled } from '../../src/machines/host.machine.js';
import { scheduleMachine } from '../../src/machines/schedule.machine.js';
import { AGENTS, Fakes, RECONCILED, request, settle } from '../helpers/machine-fakes.js';

type DaemonActor = Actor<typeof daemonMachine>;

const T0 = Date.parse('2026-06-01T10:00:00.000Z');

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  vi.setSystemTime(new Date(T0));
});
afterEach(() => vi.useRealTimers());

function portOver(actor: DaemonActor) {
  return createDaemonPort({
    actor,
    journal: {
      used: () => false,
      record: () => undefined,
      recent: () => [],
      waitingToSeal: () => ({ count: 0, oldest: undefined }),
    } as never,
    reload: async () => {
      throw new Error('no reload here');
    },
    version: '0.0.0-test',
    instanceId: 'test',
    socket: '/tmp/none.sock',
    log: { info() {}, warn() {}, error() {} } as never,
  });
}

/** What the daemon said of failures and restarts, as its log would: one line each. */
function logOf() {
  const failed: { name: string; attempts: number; delay: number | undefined; at: number }[] = [];
  const restarted: { kind: string; name: string; attempt: number; at: number }[] = [];
  const onFailed = (name: string, restart: ChildRestart | undefined) =>
    failed.push({
      name,
      attempts: restart?.attempts ?? 0,
      delay: restart?.retryAt === undefined ? undefined : restart.retryAt - Date.now(),
      at: Date.now() - T0,
    });
  return {
    failed,
    restarted,
    actions: {
      announceHostFailed: (_: unknown, { host, restart }: { host: string; restart?: ChildRestart }) =>
        onFailed(host, restart),
      announceScheduleFailed: (_: unknown, { agent, restart }: { agent: string; restart?: ChildRestart }) =>
        onFailed(agent, restart),
      announceRestarted: (_: unknown, params: { kind: string; name: string; attempt: number }) =>
        restarted.push({ ...params, at: Date.now() - T0 }),
    },
  };
}

describe('the backoff', () => {
  it('is 5 s, doubling per attempt, at most 5 min', () => {
    expect([1, 2, 3, 4, 6, 7, 60, 10_000].map(restartDelay)).toEqual([
      5_000,
      10_000,
      20_000,
      40_000,
      160_000,
      RESTART_MAX_MS,
      RESTART_MAX_MS,
      RESTART_MAX_MS,
    ]);
  });
});

describe('a schedule whose actor failed', () => {
  const EVERY_5S: ScheduleConfig = { cron: '*/5 * * * * *', overlap: 'queue', catchUp: 'none' };
  const agents: AgentConfig[] = [
    { ...(AGENTS[0] as AgentConfig), name: 'bad', schedule: EVERY_5S },
    ...AGENTS,
  ];

  it('starts again at 5, 10, 20 s, from then on (no catch-up), one log line each; 10 min up counts from 1 again', async () => {
    const fakes = new Fakes();
    let failing = true;
    const schedule = scheduleMachine.provide({
      actions: {
        recordProgress: () => {
          if (failing) throw new Error('EIO: schedules.json');
        },
      },
    });
    const log = logOf();
    const machine = fakes.daemon().provide({ actors: { schedule }, actions: log.actions });
    const actor = createActor(machine, { input: { agents, maxSessions: 10 } });
    actor.subscribe({ error: () => {} });
    actor.start();
    await settle();
    const port = portOver(actor);
    // Fails at its start (10:00:00), at each restart too, while `failing`.
    await vi.advanceTimersByTimeAsync(20_000);
    expect(port.status().schedules?.[0]).toMatchObject({
      agent: 'bad',
      attempts: 3,
      retryAt: '2026-06-01T10:00:35.000Z',
    });
    expect(port.status().schedules?.[0]?.failed).toContain(
      'it is tried again at 10:00:35 UTC (attempt 3), or now by `agentd reload`',
    );
    failing = false;
    await vi.advanceTimersByTimeAsync(20_000);

    expect(log.failed.map((f) => [f.at, f.attempts, f.delay])).toEqual([
      [0, 1, 5_000],
      [5_000, 2, 10_000],
      [15_000, 3, 20_000],
    ]);
    expect(log.restarted.map((r) => [r.at, r.kind, r.attempt])).toEqual([
      [5_000, 'schedule', 1],
      [15_000, 'schedule', 2],
      [35_000, 'schedule', 3],
    ]);
    // Up again from 10:00:35: it fires at :40, none of the firings it missed are made up.
    expect(fakes.accepted.map((r) => r.scheduledFor)).toEqual(['2026-06-01T10:00:40.000Z']);
    expect(port.status().schedules?.[0]).not.toHaveProperty('failed');

    // A failure soon after the restart counts on (attempt 4: 40 s) ...
    failing = true;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(log.failed.at(-1)).toMatchObject({ at: 45_000, attempts: 4, delay: 40_000 });
    failing = false;
    await vi.advanceTimersByTimeAsync(40_000);
    expect(log.restarted.at(-1)).toMatchObject({ at: 85_000, attempt: 4 });
    // ... one more than 10 min after it counts from 1 again.
    await vi.advanceTimersByTimeAsync(RESTART_MAX_MS * 2 + 5_000);
    failing = true;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(log.failed.at(-1)).toMatchObject({ attempts: 1, delay: 5_000 });
    expect(log.failed).toHaveLength(5);
    expect(log.restarted).toHaveLength(4);
    expect(actor.getSnapshot().value).toBe('ready');
    actor.stop();
  });
  it('is held in one place, its failed actor (why: its error), through a shutdown; a reload that drops it forgets it', async () => {
    const fakes = new Fakes();
    const schedule = scheduleMachine.provide({
      actions: {
        recordProgress: ({ context }) => {
          if (context.agent === 'bad') throw new Error('EIO: schedules.json');
        },
      },
    });
    const machine = fakes.daemon().provide({ actors: { schedule } });
    const actor = createActor(machine, { input: { agents, maxSessions: 10 } });
    actor.subscribe({ error: () => {} });
    actor.start();
    await settle();
    const port = portOver(actor);
    const { context } = actor.getSnapshot();
    // No second record of it beside its actor: the backoff alone is in restarts.
    expect(context).not.toHaveProperty('failedSchedules');
    expect(context.schedules.bad?.getSnapshot().status).toBe('error');
    expect(context.restarts['schedule:bad']).toEqual({
      kind: 'schedule',
      name: 'bad',
      attempts: 1,
      retryAt: T0 + 5_000,
    });
    const failed = (view: { failed?: string } | undefined) => view?.failed;
    expect(failed(port.status().schedules?.find((v) => v.agent === 'bad'))).toBe(
      'the schedule failed and fires no more until it starts again: EIO: schedules.json; it is tried again at 10:00:05 UTC (attempt 1), or now by `agentd reload`',
    );

    // A reload that keeps the agent but drops its schedule forgets the failed one: no view, no retry.
    const unscheduled = agents.map((a) => (a.name === 'bad' ? { ...a, schedule: undefined } : a));
    actor.send({ type: 'reload', agents: unscheduled, maxSessions: 10 });
    await settle();
    expect(actor.getSnapshot().context.schedules).toEqual({});
    expect(port.status().schedules).toEqual([]);
    expect(port.agents().find((a) => a.name === 'bad')).not.toHaveProperty('schedule');

    // Scheduled again, it fails again; a shutdown (a session keeps it draining) shows it still, unretried.
    actor.send({ type: 'reload', agents, maxSessions: 10 });
    await settle();
    port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });
    await settle();
    actor.send({ type: 'shutdown' });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'draining' });
    expect(failed(port.status().schedules?.find((v) => v.agent === 'bad'))).toBe(
      'the schedule failed and fires no more until it starts again: EIO: schedules.json; it is not tried again while the daemon shuts down; the next start starts it',
    );
    expect(actor.getSnapshot().context.schedules.bad?.getSnapshot().status).toBe('error');
    fakes.run('s1').finish();
    await settle();
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'stopped' });
  });
});

describe('a host whose actor failed', () => {
  const HOSTS: HostInfo[] = [
    { name: 'a', maxSessions: 2, labels: {} },
    { name: 'b', maxSessions: 2, labels: {} },
  ];

  function hostDaemon(options: {
    failing: () => boolean;
    on: 'probed' | 'probeFailed';
    downGraceMs?: number;
  }) {
    const fakes = new Fakes({ probeIntervalMs: 1_000, downGraceMs: options.downGraceMs ?? 3_600_000 });
    const host = fakes.host().provide({
      actions: {
        [options.on]: ({ context }: { context: { name: string } }) => {
          if (context.name === 'a' && options.failing()) throw new Error('bug');
        },
      },
    });
    const log = logOf();
    const machine = fakes.daemon().provide({ actors: { host }, actions: log.actions });
    return { fakes, log, machine };
  }

  it('gets a new actor at 5, 10, 20 s, probed and reconciled before it takes sessions, still drained', async () => {
    let failing = true;
    const { fakes, log, machine } = hostDaemon({ failing: () => failing, on: 'probed' });
    const actor = createActor(machine, { input: { agents: AGENTS, maxSessions: 10, hosts: HOSTS } });
    actor.subscribe({ error: () => {} });
    actor.start();
    await settle();
    const port = portOver(actor);
    port.send({ type: 'drain', host: 'a' });
    // Its first probe (at 1 s) fails it; each new actor's first probe (1 s after it starts) too.
    await vi.advanceTimersByTimeAsync(25_000);
    expect(port.status().failedHosts).toEqual([
      expect.objectContaining({ name: 'a', attempts: 3, retryAt: '2026-06-01T10:00:38.000Z' }),
    ]);
    // Failed, it is still exit 15's: status says when it is tried again.
    expect(port.status().failedHosts?.[0]?.problem).toContain(
      'it is tried again at 10:00:38 UTC (attempt 3), or now by `agentd reload`',
    );
    // Why it failed is its failed actor's error alone, as for a schedule: the backoff is in restarts.
    expect(actor.getSnapshot().context.restarts['host-a']).not.toHaveProperty('reason');
    failing = false;
    await vi.advanceTimersByTimeAsync(15_000);

    expect(log.failed.map((f) => [f.at, f.attempts, f.delay])).toEqual([
      [1_000, 1, 5_000],
      [7_000, 2, 10_000],
      [18_000, 3, 20_000],
    ]);
    expect(log.restarted.map((r) => [r.at, r.kind, r.attempt])).toEqual([
      [6_000, 'host', 1],
      [17_000, 'host', 2],
      [38_000, 'host', 3],
    ]);
    expect(fakes.reconciledHosts).toEqual(['a']);
    expect(port.hosts().find((h) => h.name === 'a')).toMatchObject({ state: 'up', drained: true });
    expect(port.status()).not.toHaveProperty('failedHosts');
    actor.stop();
  });

  it('is not started again during a shutdown: the shutdown cancels its retry', async () => {
    let failing = false;
    const { fakes, log, machine } = hostDaemon({ failing: () => failing, on: 'probed' });
    const actor = createActor(machine, { input: { agents: AGENTS, maxSessions: 10, hosts: HOSTS } });
    actor.subscribe({ error: () => {} });
    actor.start();
    await settle();
    const port = portOver(actor);
    // A session on b keeps the daemon draining.
    port.send({ type: 'drain', host: 'a' });
    port.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });
    await settle();
    failing = true;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(log.failed).toHaveLength(1);
    port.send({ type: 'shutdown' });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'draining' });
    expect(log.restarted).toEqual([]);
    expect(port.status().failedHosts?.[0]?.problem).toContain(
      'it is not tried again while the daemon shuts down; the next start starts it',
    );
    expect(port.status().failedHosts?.[0]).not.toHaveProperty('retryAt');
    fakes.run('s1').finish();
    await settle();
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'stopped' });
  });
});

/** What reconciling host b finds of w1: its container exited 3. */
const RECOVERED_W1: HostReconciled = {
  summary: { removedContainers: 1, removedSecrets: 0, runningContainers: 0 },
  adopted: [],
  finished: [{ request: request('w1'), outcome: { outcome: 'failed', phase: 'running', exitCode: 3 } }],
};

describe('a session of an earlier daemon waiting for a host whose actor failed', () => {
  const HOSTS: HostInfo[] = [
    { name: 'a', maxSessions: 2, labels: {} },
    { name: 'b', maxSessions: 2, labels: {} },
  ];

  /** Host b was down at start, with w1 waiting for it; its actor fails at its first retry (1 s). */
  async function waitingDaemon(downGraceMs = 3_600_000, abandonedBefore: string[] = []) {
    const down = [{ host: 'b', reason: 'connection refused' }];
    const fakes = new Fakes({ probeIntervalMs: 1_000, downGraceMs, reconcile: { ...RECONCILED, down } });
    fakes.unreachable.set('b', 'connection refused');
    fakes.hostRecovery.set('b', RECOVERED_W1);
    let throws = true;
    const host = fakes.host().provide({
      actions: {
        probeFailed: ({ context }) => {
          if (throws && context.name === 'b') {
            throws = false;
            throw new Error('bug');
          }
        },
      },
    });
    const log = logOf();
    const machine = fakes.daemon().provide({ actors: { host }, actions: log.actions });
    const actor = createActor(machine, { input: { agents: AGENTS, maxSessions: 10, hosts: HOSTS } });
    actor.subscribe({ error: () => {} });
    actor.start();
    await settle();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(log.failed.map((f) => f.name)).toEqual(['b']);
    // Not abandoned at the failure: the host's next actor reconciles it (or its grace abandons it).
    expect(fakes.abandonedHosts).toEqual(abandonedBefore);
    return { fakes, log, actor, port: portOver(actor) };
  }

  const outcomesOf = (fakes: Fakes) => [
    ...fakes.reportsOf('w1').map((r) => r.outcome.outcome),
    ...fakes.abandonedHosts.map((h) => `abandoned (${h})`),
  ];

  it('gets its outcome from the reconciliation of the host once its actor is started again', async () => {
    const { fakes, log, actor } = await waitingDaemon();
    fakes.unreachable.delete('b');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(log.restarted.map((r) => r.at)).toEqual([6_000]);
    expect(fakes.reconciledHosts).toEqual(['b']);
    expect(outcomesOf(fakes)).toEqual(['failed']);
    actor.stop();
  });

  it('gets it from the reconciliation after a reload during the backoff, once', async () => {
    const { fakes, log, actor } = await waitingDaemon();
    fakes.unreachable.delete('b');
    actor.send({ type: 'reload', agents: AGENTS, maxSessions: 10 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(log.restarted).toEqual([]);
    expect(fakes.reconciledHosts).toEqual(['b']);
    expect(outcomesOf(fakes)).toEqual(['failed']);
    actor.stop();
  });

  it('is left to the next start by a shutdown during the backoff, as for any host down then', async () => {
    const { fakes, log, actor } = await waitingDaemon();
    actor.send({ type: 'shutdown' });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'stopped' });
    expect(log.restarted).toEqual([]);
    expect(outcomesOf(fakes)).toEqual([]);
  });

  it('is abandoned once, when host_down_grace (counted from when the host went down) ends during the backoff', async () => {
    const { fakes, log, actor } = await waitingDaemon(3_000);
    // It went down at 0 and failed at 1 s: the grace ends at 3 s, during the backoff (retry at 6 s).
    await vi.advanceTimersByTimeAsync(1_999);
    expect(outcomesOf(fakes)).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(outcomesOf(fakes)).toEqual(['abandoned (b)']);
    expect(log.restarted).toEqual([]);
    // The new actor (at 6 s) finds the grace over: it abandons nothing a second time.
    await vi.advanceTimersByTimeAsync(3_500);
    expect(log.restarted.map((r) => r.at)).toEqual([6_000]);
    expect(outcomesOf(fakes)).toEqual(['abandoned (b)']);
    // Back later, it is reconciled; what waited is not settled a second time by the machine.
    fakes.hostRecovery.set('b', { ...RECOVERED_W1, finished: [] });
    fakes.unreachable.delete('b');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fakes.reconciledHosts).toEqual(['b']);
    expect(outcomesOf(fakes)).toEqual(['abandoned (b)']);
    actor.stop();
  });

  it('is abandoned once when the grace ends during the backoff and a reload then starts the host again', async () => {
    const { fakes, log, actor } = await waitingDaemon(3_000);
    await vi.advanceTimersByTimeAsync(2_500);
    expect(outcomesOf(fakes)).toEqual(['abandoned (b)']);
    actor.send({ type: 'reload', agents: AGENTS, maxSessions: 10 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(log.restarted).toEqual([]);
    expect(outcomesOf(fakes)).toEqual(['abandoned (b)']);
    actor.stop();
  });

  it('is not abandoned again by the next actor when the grace had ended before the failure', async () => {
    // The grace (0.5 s) ends before the failure (1 s): abandoned then, by the actor that fails after.
    const { fakes, log, actor } = await waitingDaemon(500, ['b']);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(log.restarted.map((r) => r.at)).toEqual([6_000]);
    expect(outcomesOf(fakes)).toEqual(['abandoned (b)']);
    actor.stop();
  });

  it('a reload before the grace ends leaves the grace to the new actor: abandoned once, when it ends', async () => {
    const { fakes, actor } = await waitingDaemon(3_000);
    actor.send({ type: 'reload', agents: AGENTS, maxSessions: 10 });
    await vi.advanceTimersByTimeAsync(1_999);
    expect(outcomesOf(fakes)).toEqual([]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(outcomesOf(fakes)).toEqual(['abandoned (b)']);
    actor.stop();
  });
});
