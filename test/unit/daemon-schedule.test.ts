import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Actor, createActor } from 'xstate';
import type { AgentConfig, ScheduleConfig } from '../../src/config/types.js';
import {
  type DaemonEmitted,
  type DaemonInput,
  type daemonMachine,
  SCHEDULE_QUEUED_MAX,
} from '../../src/machines/daemon.machine.js';
import { scheduledSessionId } from '../../src/sessions/schedule.js';
import { AGENTS, Fakes, RECONCILED, settle } from '../helpers/machine-fakes.js';

const EVERY_5S: ScheduleConfig = { cron: '*/5 * * * * *', overlap: 'skip', catchUp: 'none' };
const [DEMO, NOREPO] = AGENTS as [AgentConfig, AgentConfig];

function agent(name: string, extra: Partial<AgentConfig> = {}): AgentConfig {
  return { ...DEMO, name, ...extra };
}

interface Firing {
  kind: 'skipped' | 'missed';
  agent: string;
  firing: string;
  reason: string;
}

async function start(agents: AgentConfig[], extra: Partial<DaemonInput> = {}, recorded: string[] = []) {
  const fakes = new Fakes();
  for (const id of recorded) fakes.recorded.add(id);
  const firings: Firing[] = [];
  const machine = fakes.daemon().provide({
    actions: {
      announceFiringSkipped: (_, params) => firings.push({ kind: 'skipped', ...params }),
      announceFiringMissed: (_, params) => firings.push({ kind: 'missed', ...params }),
    },
  });
  const actor: Actor<typeof daemonMachine> = createActor(machine, {
    input: { agents, maxSessions: 4, ...extra },
  });
  const answers: DaemonEmitted[] = [];
  actor.on('*', (event) => answers.push(event));
  actor.start();
  await settle();
  return {
    actor,
    fakes,
    firings,
    answers,
    running: () =>
      Object.values(actor.getSnapshot().context.sessions).map((r) => r.getSnapshot().context.request),
    queued: () => actor.getSnapshot().context.queue.map((s) => s.request),
    schedules: () => Object.keys(actor.getSnapshot().context.schedules),
    trigger: (sessionId: string, name: string) => actor.send({ type: 'trigger', sessionId, agent: name }),
  };
}

describe('daemon machine: schedules', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(new Date('2026-06-01T10:00:02.000Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('starts the schedule of an agent whose name is also an object property (constructor)', async () => {
    const d = await start([agent('constructor', { schedule: EVERY_5S })]);
    expect(d.schedules()).toEqual(['constructor']);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(d.fakes.accepted.map((a) => a.agent)).toEqual(['constructor']);
  });

  it('turns a firing into a session of the agent, with its work unit, and skips firings while it runs', async () => {
    const d = await start([agent('nightly', { schedule: { ...EVERY_5S, workUnit: 'n-{time}' } }), NOREPO]);
    expect(d.schedules()).toEqual(['nightly']);
    await vi.advanceTimersByTimeAsync(3_000);
    const firing = '2026-06-01T10:00:05.000Z';
    const id = scheduledSessionId('nightly', firing);
    expect(d.fakes.accepted).toEqual([
      {
        sessionId: id,
        agent: 'nightly',
        repoUrl: 'https://git.example/demo.git',
        acceptedAt: expect.any(String),
        scheduledFor: firing,
        workUnit: expect.stringMatching(/^n-\d\d:00:05$/),
      },
    ]);
    expect(d.answers).toContainEqual({
      type: 'trigger.accepted',
      requestId: `schedule:nightly:${firing}`,
      sessionId: id,
      queued: false,
      position: 0,
    });
    expect(d.running().map((r) => r.sessionId)).toEqual([id]);
    // The next two firings come while the first session runs: overlap skip.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(d.firings).toEqual([
      {
        kind: 'skipped',
        agent: 'nightly',
        firing: '2026-06-01T10:00:10.000Z',
        reason: `session ${id} from the schedule is still queued or running (overlap: skip)`,
      },
      expect.objectContaining({ kind: 'skipped', firing: '2026-06-01T10:00:15.000Z' }),
    ]);
    expect(d.fakes.accepted).toHaveLength(1);
    // A triggered session of the same agent does not hold the schedule back.
    d.fakes.run(id).finish();
    await settle();
    d.trigger('manual0000000001', 'nightly');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(d.fakes.accepted.map((r) => r.scheduledFor)).toEqual([
      firing,
      undefined,
      '2026-06-01T10:00:20.000Z',
    ]);
    d.actor.stop();
  });

  it('queues a firing behind the running one with overlap: queue', async () => {
    const d = await start([
      agent('nightly', { schedule: { ...EVERY_5S, overlap: 'queue' }, maxConcurrent: 1 }),
    ]);
    await vi.advanceTimersByTimeAsync(13_000);
    expect(d.firings).toEqual([]);
    expect(d.running()).toHaveLength(1);
    expect(d.queued().map((r) => r.scheduledFor)).toEqual([
      '2026-06-01T10:00:10.000Z',
      '2026-06-01T10:00:15.000Z',
    ]);
    d.actor.stop();
  });

  it('with overlap: queue, keeps at most SCHEDULE_QUEUED_MAX of its sessions waiting, so the daemon queue stays open to others', async () => {
    // Every second, behind a session that never ends: each firing used to queue one more session until
    // the daemon's whole queue was full and every trigger of every agent was refused queue_full.
    const d = await start(
      [
        agent('tick', { schedule: { ...EVERY_5S, cron: '* * * * * *', overlap: 'queue' }, maxConcurrent: 1 }),
        agent('other'),
      ],
      { maxQueued: SCHEDULE_QUEUED_MAX + 5 },
    );
    await vi.advanceTimersByTimeAsync((SCHEDULE_QUEUED_MAX + 10) * 1_000);
    expect(d.running()).toHaveLength(1);
    expect(d.queued()).toHaveLength(SCHEDULE_QUEUED_MAX);
    expect(d.firings.length).toBeGreaterThanOrEqual(8);
    expect(d.firings[0]).toEqual({
      kind: 'skipped',
      agent: 'tick',
      firing: expect.any(String),
      reason: `${SCHEDULE_QUEUED_MAX} sessions from the schedule are queued already, the most one schedule keeps waiting (overlap: queue); it fires faster than its sessions end`,
    });
    d.trigger('manual0000000001', 'other');
    await settle();
    expect(d.answers).toContainEqual(
      expect.objectContaining({ type: 'trigger.accepted', sessionId: 'manual0000000001' }),
    );
    // Once one of them runs, the next firing queues again.
    const first = d.running()[0]?.sessionId as string;
    d.fakes.run(first).finish();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(d.queued().filter((r) => r.agent === 'tick')).toHaveLength(SCHEDULE_QUEUED_MAX);
    expect(d.fakes.accepted.at(-1)?.scheduledFor).toBeDefined();
    d.actor.stop();
  });

  it('says a firing was missed while degraded, and keeps the schedule running', async () => {
    const d = await start([agent('nightly', { schedule: EVERY_5S })]);
    d.actor.send({ type: 'stateDir.unwritable', code: 'state_dir_full', reason: 'state dir full' });
    expect(d.actor.getSnapshot().value).toBe('degraded');
    await vi.advanceTimersByTimeAsync(3_000);
    expect(d.firings).toEqual([
      { kind: 'missed', agent: 'nightly', firing: '2026-06-01T10:00:05.000Z', reason: 'state dir full' },
    ]);
    d.actor.send({ type: 'stateDir.writable' });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(d.fakes.accepted.map((r) => r.scheduledFor)).toEqual(['2026-06-01T10:00:10.000Z']);
    expect(d.schedules()).toEqual(['nightly']);
    d.actor.stop();
  });

  it('catches up the newest missed firing once with catch_up: latest, with the firing’s session id', async () => {
    const schedule: ScheduleConfig = { ...EVERY_5S, cron: '0 * * * *', catchUp: 'latest' };
    const d = await start([agent('hourly', { schedule })], {
      scheduleSince: { hourly: '2026-06-01T07:30:00.000Z' },
    });
    expect(d.fakes.accepted.map((r) => [r.sessionId, r.scheduledFor])).toEqual([
      [scheduledSessionId('hourly', '2026-06-01T10:00:00.000Z'), '2026-06-01T10:00:00.000Z'],
    ]);
    // A firing whose session id has a record already (it ran before a restart) is not run again.
    const again = await start(
      [agent('hourly', { schedule })],
      { scheduleSince: { hourly: '2026-06-01T07:30:00.000Z' } },
      [scheduledSessionId('hourly', '2026-06-01T10:00:00.000Z')],
    );
    expect(again.fakes.accepted).toEqual([]);
    expect(again.answers).toContainEqual(
      expect.objectContaining({ type: 'trigger.rejected', code: 'duplicate_session' }),
    );
    again.actor.stop();
    d.actor.stop();
  });

  it('a schedule a reload changes while the daemon starts starts afresh: no catch-up from the old one', async () => {
    const schedule: ScheduleConfig = { ...EVERY_5S, cron: '0 * * * *', catchUp: 'latest' };
    const since = { hourly: '2026-06-01T07:30:00.000Z', same: '2026-06-01T07:30:00.000Z' };
    const fakes = new Fakes({ reconcile: 'manual' });
    const actor = createActor(fakes.daemon(), {
      input: {
        agents: [agent('hourly', { schedule }), agent('same', { schedule })],
        maxSessions: 4,
        scheduleSince: since,
      },
    });
    actor.start();
    actor.send({
      type: 'reload',
      agents: [
        agent('hourly', { schedule: { ...schedule, cron: '*/15 * * * *' } }),
        agent('same', { schedule }),
      ],
      maxSessions: 4,
    });
    fakes.reconcile.resolve(RECONCILED);
    await settle();
    // Only the unchanged schedule catches up its missed 10:00.
    expect(fakes.accepted.map((r) => [r.agent, r.scheduledFor])).toEqual([
      ['same', '2026-06-01T10:00:00.000Z'],
    ]);
    actor.stop();
  });

  it('follows reloads: a changed schedule restarts, an unchanged one keeps its actor, a removed one stops', async () => {
    const d = await start([agent('a', { schedule: EVERY_5S }), agent('b', { schedule: EVERY_5S })]);
    const [refA, refB] = ['a', 'b'].map((n) => d.actor.getSnapshot().context.schedules[n]);
    d.actor.send({
      type: 'reload',
      agents: [
        agent('a', { schedule: EVERY_5S }),
        agent('c', { schedule: { ...EVERY_5S, cron: '0 * * * *' } }),
      ],
      maxSessions: 4,
    });
    const { schedules } = d.actor.getSnapshot().context;
    expect(Object.keys(schedules).sort()).toEqual(['a', 'c']);
    expect(schedules.a).toBe(refA);
    expect(refB?.getSnapshot().status).toBe('stopped');
    expect(schedules.c?.getSnapshot().context.next).toBe('2026-06-01T11:00:00.000Z');
    d.actor.send({
      type: 'reload',
      agents: [agent('a', { schedule: { ...EVERY_5S, cron: '*/7 * * * * *' } })],
      maxSessions: 4,
    });
    expect(d.actor.getSnapshot().context.schedules.a).not.toBe(refA);
    expect(d.actor.getSnapshot().context.schedules.a?.getSnapshot().context.schedule.cron).toBe(
      '*/7 * * * * *',
    );
    d.actor.stop();
  });

  it('stops every schedule on shutdown', async () => {
    const d = await start([agent('nightly', { schedule: EVERY_5S })]);
    const ref = d.actor.getSnapshot().context.schedules.nightly;
    d.actor.send({ type: 'shutdown' });
    expect(d.actor.getSnapshot().value).toEqual({ shutdown: 'stopped' });
    expect(ref?.getSnapshot().status).toBe('stopped');
    await vi.advanceTimersByTimeAsync(20_000);
    expect(d.fakes.accepted).toEqual([]);
  });
});

describe('daemon machine: max_concurrent', () => {
  it('holds an agent to its max_concurrent under a burst, FIFO, while others use the free slots', async () => {
    const d = await start([agent('one', { maxConcurrent: 1 }), agent('two', { maxConcurrent: 2 })]);
    const burst = ['o1', 'o2', 't1', 'o3', 't2', 't3', 't4'];
    for (const id of burst) d.trigger(id.padEnd(16, '0'), id.startsWith('o') ? 'one' : 'two');
    const ids = (rs: { sessionId: string }[]) => rs.map((r) => r.sessionId.slice(0, 2));
    expect(ids(d.running())).toEqual(['o1', 't1', 't2']);
    expect(ids(d.queued())).toEqual(['o2', 'o3', 't3', 't4']);
    const accepted = d.answers.filter((a) => a.type === 'trigger.accepted');
    expect(accepted.map((a) => (a.type === 'trigger.accepted' ? [a.queued, a.position] : []))).toEqual([
      [false, 0],
      [true, 1],
      [false, 0],
      [true, 2],
      [false, 0],
      [true, 3],
      [true, 4],
    ]);
    await settle();
    // t1 ends: t3 (the oldest of "two" waiting) starts; "one" still waits for o1.
    d.fakes.run('t1'.padEnd(16, '0')).finish();
    await settle();
    expect(ids(d.running())).toEqual(['o1', 't2', 't3']);
    // o1 ends: o2 starts (max_sessions 4 allows t4 too, but "two" is at its limit).
    d.fakes.run('o1'.padEnd(16, '0')).finish();
    await settle();
    expect(ids(d.running())).toEqual(['t2', 't3', 'o2']);
    expect(ids(d.queued())).toEqual(['o3', 't4']);
    // A reload raises "two"'s limit: t4 starts at once; max_sessions (4) still holds.
    d.actor.send({
      type: 'reload',
      agents: [agent('one', { maxConcurrent: 1 }), agent('two', { maxConcurrent: 5 })],
      maxSessions: 4,
    });
    expect(ids(d.running())).toEqual(['t2', 't3', 'o2', 't4']);
    expect(ids(d.queued())).toEqual(['o3']);
    d.actor.stop();
  });

  it('keeps max_sessions over every agent when max_concurrent would allow more', async () => {
    const d = await start([agent('many', { maxConcurrent: 10 })], { maxSessions: 2 });
    for (const id of ['a', 'b', 'c']) d.trigger(id.padEnd(16, '0'), 'many');
    expect(d.running()).toHaveLength(2);
    expect(d.queued()).toHaveLength(1);
    d.actor.stop();
  });
});

describe('daemon machine: a reload of many scheduled agents', () => {
  it('does work in proportion to the agents: each schedule is looked up by name', async () => {
    const DAILY: ScheduleConfig = { cron: '0 3 * * *', overlap: 'skip', catchUp: 'none' };
    // Work counted as reads of an agent's name during the reload (not timed: a loaded machine's clock
    // made a ratio of times fail in CI): a search of the agents for each schedule reads them n² times.
    const reloadReads = async (count: number) => {
      let reads = 0;
      const agents = Array.from({ length: count }, (_, i) => {
        const plain = agent(`agent-${i}`, { schedule: DAILY });
        const name = plain.name;
        return Object.defineProperty(plain, 'name', {
          enumerable: true,
          get: () => {
            reads++;
            return name;
          },
        });
      });
      const d = await start(agents);
      expect(d.schedules()).toHaveLength(count);
      reads = 0;
      // The same file again: every schedule is kept, after it is found among the agents.
      d.actor.send({ type: 'reload', agents: [...agents], maxSessions: 4 });
      const counted = reads;
      expect(d.schedules()).toHaveLength(count);
      d.actor.stop();
      return counted;
    };
    const ratio = (await reloadReads(2_000)) / (await reloadReads(250));
    // 8 times the agents: 8 times the reads; a search for each schedule made it some 60 times.
    expect(ratio).toBeLessThan(16);
  }, 120_000);
});
