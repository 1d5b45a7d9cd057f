import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { SessionRecord } from '../../src/sessions/records.js';
import {
  gitAndGate,
  type LogLine,
  launchDaemon,
  leftoversAfterCleanup,
  prepareDaemon,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { listAgentdContainers } from '../helpers/podman.js';

const { gate, agent } = gitAndGate();

afterEach(async () => {
  gate.hold();
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

/** Resolves once `count` log lines match; rejects after timeoutMs. */
async function waitForLogs(d: TestDaemon, match: (l: LogLine) => boolean, count: number, timeoutMs = 60_000) {
  await d.waitForLog(() => d.logs().filter(match).length >= count, timeoutMs);
  return d.logs().filter(match);
}

const scheduled = (d: TestDaemon, agentName: string): SessionRecord[] =>
  d
    .records()
    .filter((r) => r.agent === agentName && r.scheduledFor !== undefined)
    .sort((a, b) => (a.scheduledFor ?? '').localeCompare(b.scheduledFor ?? ''));

/** When a session left the queue: its first phase after `queued`. */
function startedAt(record: SessionRecord): number {
  const at = record.phases.find((p) => p.phase !== 'queued')?.at;
  if (at === undefined) throw new Error(`session ${record.id} never started: ${JSON.stringify(record)}`);
  return Date.parse(at);
}

function finishedAt(record: SessionRecord): number {
  if (record.finishedAt === undefined) throw new Error(`session ${record.id} has not finished`);
  return Date.parse(record.finishedAt);
}

describe('schedules', () => {
  it('a schedule firing every 2 s runs sessions and skips the firings that overlap one', async () => {
    const d = await startDaemon({
      agents: [
        agent('tick', gate.command, { schedule: { cron: '*/2 * * * * *', work_unit: 'tick-{time}' } }),
      ],
    });
    // The first firing's session waits at the gate: firings go on, and each is skipped.
    await gate.waitFor(1);
    const skipped = await waitForLogs(d, (l) => l.event === 'schedule.skipped', 2);
    const containers = await listAgentdContainers(d.prefix);
    expect(containers.map((c) => c.state)).toEqual(['running']);
    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as {
      running: { id: string }[];
      queued: unknown[];
      schedules: { agent: string; cron: string; next: string; overlap: string }[];
    };
    expect(status.running).toHaveLength(1);
    expect(status.queued).toEqual([]);
    expect(status.schedules).toEqual([
      { agent: 'tick', cron: '*/2 * * * * *', overlap: 'skip', catchUp: 'none', next: expect.any(String) },
    ]);
    expect(Date.parse(status.schedules[0]?.next ?? '')).toBeGreaterThan(Date.now() - 2_000);
    const agents = JSON.parse((await d.cli(['agents', '--json'])).stdout) as {
      agents: { name: string; schedule?: { cron: string; next?: string } }[];
    };
    expect(agents.agents[0]?.schedule).toMatchObject({ cron: '*/2 * * * * *', next: expect.any(String) });
    expect((await d.cli(['agents'])).stdout).toMatch(
      /schedule "\*\/2 \* \* \* \* \*", overlap skip, catch_up none; next \S+/,
    );
    expect((await d.cli(['status'])).stdout).toMatch(
      /SCHEDULES\n {2}tick {2}"\*\/2 \* \* \* \* \*" {2}next \S+/,
    );

    gate.open();
    const fired = await waitForLogs(d, (l) => l.event === 'schedule.fired', 2);
    await d.waitForOutcome(String(fired[1]?.session));
    expect(await d.stop()).toBe(0);

    const records = scheduled(d, 'tick');
    expect(records.length).toBeGreaterThanOrEqual(2);
    const [first, second] = records as [SessionRecord, SessionRecord];
    for (const r of [first, second]) {
      expect(r.outcome).toBe('succeeded');
      expect(new Date(r.scheduledFor as string).getUTCSeconds() % 2).toBe(0);
      expect(r.workUnit).toMatch(/^tick-\d\d:\d\d:\d\d$/);
    }
    // The skipped firings fell while the first session ran, and never made a session of their own.
    for (const line of skipped) {
      const at = Date.parse(String(line.firing));
      expect(at).toBeGreaterThan(Date.parse(first.scheduledFor as string));
      expect(at).toBeLessThan(finishedAt(first));
      expect(records.map((r) => r.scheduledFor)).not.toContain(line.firing);
    }
    // No two scheduled sessions of the agent ran at once.
    expect(startedAt(second)).toBeGreaterThanOrEqual(finishedAt(first));
  });

  it('after a restart no missed firing is replayed; catch_up: latest runs the newest one once', async () => {
    const files = prepareDaemon({
      agents: [
        agent('plain', ['true'], { schedule: '*/3 * * * * *' }),
        agent('catchup', ['true'], { schedule: { cron: '*/3 * * * * *', catch_up: 'latest' } }),
      ],
    });
    const first = launchDaemon(files);
    await first.ready();
    await waitForLogs(first, (l) => l.event === 'schedule.fired', 2);
    expect(await first.stop()).toBe(0);
    const stoppedAt = Date.now();
    // Down for long enough to miss at least two firings of each schedule.
    await sleep(7_000);
    const second = launchDaemon(files);
    await second.ready();
    const readyAt = (await second.waitForLog((l) => l.event === 'daemon.ready')).time;
    const caughtUp = await second.waitForLog((l) => l.event === 'schedule.fired' && l.agent === 'catchup');
    await second.waitForOutcome(String(caughtUp.session));
    expect(await second.stop()).toBe(0);

    const missed = (r: SessionRecord) => {
      const at = Date.parse(r.scheduledFor as string);
      return at > stoppedAt && at < readyAt;
    };
    expect(scheduled(second, 'plain').filter(missed)).toEqual([]);
    const replayed = scheduled(second, 'catchup').filter(missed);
    expect(replayed).toHaveLength(1);
    expect(replayed[0]?.id).toBe(caughtUp.session);
    expect(replayed[0]?.outcome).toBe('succeeded');
    // The newest missed firing: the one before the daemon was ready, not an older one.
    expect(Date.parse(replayed[0]?.scheduledFor as string)).toBeGreaterThan(readyAt - 3_000);
  });
});

describe('schedules.json', () => {
  it('an entry whose since is no time is ignored with a warning: the daemon starts and the schedule fires', async () => {
    const files = prepareDaemon({
      agents: [agent('tick', ['true'], { schedule: { cron: '*/2 * * * * *', catch_up: 'latest' } })],
    });
    mkdirSync(files.stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(
      join(files.stateDir, 'schedules.json'),
      JSON.stringify({ version: 1, agents: { tick: { cron: '*/2 * * * * *', since: 'garbage' } } }),
    );
    // The old daemon logged daemon.ready, then crashed on it (CronDate: Invalid date), at every start.
    const d = launchDaemon(files);
    await d.ready();
    const warned = await d.waitForLog((l) => l.event === 'daemon.schedules_unreadable');
    expect(warned.agent).toBe('tick');
    const fired = await d.waitForLog((l) => l.event === 'schedule.fired' && l.agent === 'tick');
    await d.waitForOutcome(String(fired.session));
    expect(await d.stop()).toBe(0);
    expect(d.logs().filter((l) => l.event === 'daemon.crashed')).toEqual([]);
    // The zone schedules without timezone: follow, and the offset it had (b2f6641).
    expect(d.logs().find((l) => l.event === 'daemon.starting')).toMatchObject({
      timezone: expect.any(String),
      utcOffset: expect.stringMatching(/^[+-]\d\d:\d\d$/),
    });
  });
});

describe('schedules and reloads', () => {
  it('a schedule added by a reload fires; one removed by a reload stops', async () => {
    const tick = agent('tick', ['true']);
    const d = await startDaemon({ agents: [tick] });
    const rewrite = (agents: Record<string, unknown>[]) =>
      writeFileSync(
        d.files.configPath,
        stringify({
          daemon: { socket: d.files.socketPath, state_dir: d.files.stateDir, stop_grace: '2s' },
          agents,
        }),
      );
    const reloads = () => d.logs().filter((l) => l.event === 'daemon.reloaded').length;
    rewrite([{ ...tick, schedule: '*/2 * * * * *' }]);
    d.signal('SIGHUP');
    const fired = await d.waitForLog((l) => l.event === 'schedule.fired' && l.agent === 'tick');
    await d.waitForOutcome(String(fired.session));
    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as {
      schedules: { agent: string }[];
    };
    expect(status.schedules.map((s) => s.agent)).toEqual(['tick']);
    rewrite([tick]);
    d.signal('SIGHUP');
    await waitForLogs(d, (l) => l.event === 'daemon.reloaded', 2);
    expect(reloads()).toBe(2);
    const firedBefore = d.logs().filter((l) => l.event === 'schedule.fired').length;
    // Three periods of the removed schedule go by without a firing.
    await sleep(6_000);
    expect(d.logs().filter((l) => l.event === 'schedule.fired').length).toBe(firedBefore);
    const after = JSON.parse((await d.cli(['status', '--json'])).stdout) as { schedules: unknown[] };
    expect(after.schedules).toEqual([]);
    expect(await d.stop()).toBe(0);
  });
});

describe('max_concurrent', () => {
  it('max_concurrent: 1 holds under a burst, in order, while another agent uses the free slots', async () => {
    const d = await startDaemon({
      agents: [
        agent('solo', ['sh', '-c', 'sleep 0.5'], { max_concurrent: 1 }),
        agent('free', ['sh', '-c', 'sleep 2']),
      ],
      daemon: { max_sessions: 4 },
    });
    const burst = ['solo', 'solo', 'free', 'solo', 'free', 'solo', 'solo'];
    const replies = await Promise.all(burst.map((name) => d.request({ type: 'trigger', agent: name })));
    const ids = replies.map((reply) => {
      expect(reply?.type, JSON.stringify(reply)).toBe('accepted');
      return String(reply?.sessionId);
    });
    for (const id of ids) expect((await d.waitForOutcome(id)).outcome).toBe('succeeded');
    expect(await d.stop()).toBe(0);

    const records = ids.map((id) => d.record(id) as SessionRecord);
    const solo = records
      .filter((r) => r.agent === 'solo')
      .sort((a, b) => a.acceptedAt.localeCompare(b.acceptedAt) || startedAt(a) - startedAt(b));
    expect(solo).toHaveLength(5);
    // One at a time: each solo session started after the one before it finished, in acceptance order.
    for (let i = 1; i < solo.length; i++) {
      expect(startedAt(solo[i] as SessionRecord)).toBeGreaterThanOrEqual(
        finishedAt(solo[i - 1] as SessionRecord),
      );
    }
    // max_sessions still lets the other agent run beside it: both free sessions overlapped a solo one.
    for (const free of records.filter((r) => r.agent === 'free')) {
      const beside = solo.filter((s) => startedAt(s) < finishedAt(free) && startedAt(free) < finishedAt(s));
      expect(beside.length, `free session ${free.id} ran beside no solo session`).toBeGreaterThan(0);
    }
  });
});

/** overlap: skip across a daemon that dies: the session its schedule made, adopted, still holds it back. */
describe('a scheduled session adopted after the daemon died', () => {
  it('holds its schedule back (overlap: skip): the firings while it runs make no session', async () => {
    const files = prepareDaemon({
      agents: [agent('tick', ['sh', '-c', 'sleep 12'], { schedule: '*/2 * * * * *' })],
    });
    const first = launchDaemon(files);
    await first.ready();
    const running = await first.waitForLog((l) => l.event === 'session.phase' && l.phase === 'running');
    first.signal('SIGKILL');
    await first.waitForExit();

    const second = launchDaemon(files);
    await second.ready();
    await second.waitForOutcome(String(running.session));
    // The old code forgot the adopted session came from the schedule, and the next firing made another.
    expect(second.logs().filter((l) => l.event === 'session.accepted')).toEqual([]);
    const skipped = second.logs().filter((l) => l.event === 'schedule.skipped');
    expect(skipped.length).toBeGreaterThan(0);
    expect(String(skipped[0]?.reason)).toContain(String(running.session));
    expect(await second.stop()).toBe(0);
  }, 120_000);
});
