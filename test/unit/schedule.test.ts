import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cli } from 'clipanion';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor, setup } from 'xstate';
import { buildCli } from '../../src/cli/cli.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';
import type { ScheduleConfig } from '../../src/config/types.js';
import { type ScheduleFiredEvent, scheduleMachine } from '../../src/machines/schedule.machine.js';
import {
  latestFiring,
  missedFiring,
  nextFiring,
  scheduledSessionId,
  workUnitFor,
} from '../../src/sessions/schedule.js';
import { processTimeZone } from '../../src/time-zone.js';
import { makeTempDir } from '../helpers/resources.js';

const FILE = '/etc/agentd/agentd.yaml';

function parse(agentLines: string) {
  const text = `agents:\n  - name: nightly\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${agentLines}`;
  return parseConfig(text, FILE, { HOME: '/home/u' }, 1000);
}

function problems(agentLines: string): { path: string; message: string; line?: number }[] {
  try {
    parse(agentLines);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the configuration to be rejected');
}

const REPO = '    repo: https://git.example/x.git\n';

describe('schedule: configuration', () => {
  it('takes a bare cron expression with the defaults', () => {
    const [agent] = parse(`${REPO}    schedule: "0 3 * * *"\n`).agents;
    expect(agent?.schedule).toEqual({ cron: '0 3 * * *', overlap: 'skip', catchUp: 'none' });
    expect(agent?.maxConcurrent).toBeUndefined();
  });

  it('takes the mapping with a time zone, a work unit template, overlap and catch_up; and max_concurrent', () => {
    const [agent] = parse(
      `${REPO}    max_concurrent: 2\n    schedule:\n      cron: "*/10 * * * * *"\n      timezone: Europe/Berlin\n      work_unit: "nightly-{date}"\n      overlap: queue\n      catch_up: latest\n`,
    ).agents;
    expect(agent?.schedule).toEqual({
      cron: '*/10 * * * * *',
      timezone: 'Europe/Berlin',
      workUnit: 'nightly-{date}',
      overlap: 'queue',
      catchUp: 'latest',
    });
    expect(agent?.maxConcurrent).toBe(2);
  });

  it.each([
    ['* * * *', 'exactly five, six, or seven'],
    ['61 * * * *', 'Invalid value for minute: 61'],
    ['0 0 1 1 * 2030', 'dayOfWeek'],
    ['* * * * * * *', '5 or 6 parts'],
  ])('rejects %j, saying what croner found and what to write', (cron, reason) => {
    const [problem] = problems(`${REPO}    schedule: "${cron}"\n`);
    expect(problem?.path).toBe('agents[0].schedule.cron');
    expect(problem?.message).toContain(reason);
    expect(problem?.message).toContain('write five fields');
    expect(problem?.line).toBe(6);
  });

  it('rejects an unknown time zone, an unknown placeholder, an unknown overlap and unknown keys', () => {
    const found = problems(
      `${REPO}    schedule:\n      cron: "0 3 * * *"\n      timezone: Mars/Base\n      work_unit: "x-{hour}"\n      overlap: wait\n      catchup: latest\n`,
    );
    const byPath = Object.fromEntries(found.map((p) => [p.path, p.message]));
    expect(byPath['agents[0].schedule.timezone']).toContain('not a time zone');
    expect(byPath['agents[0].schedule.work_unit']).toContain('{hour}');
    expect(byPath['agents[0].schedule.overlap']).toContain('one of skip, queue');
    expect(byPath['agents[0].schedule.catchup']).toContain('did you mean "catch_up"');
  });

  it.each([
    ['UTC+1', 'for a fixed UTC+1 all year write Etc/GMT-1 (these names invert the sign)'],
    ['GMT-05:00', 'for a fixed UTC-5 all year write Etc/GMT+5 (these names invert the sign)'],
    ['"+14"', 'for a fixed UTC+14 all year write Etc/GMT-14'],
    ['Etc/GMT+14', 'use an IANA name like UTC, Europe/Berlin'],
    ['+05:30', 'use an IANA name like UTC, Europe/Berlin'],
    ['""', 'use an IANA name like UTC, Europe/Berlin'],
  ])('refuses the time zone %s, saying what to write instead', (zone, hint) => {
    const [problem] = problems(`${REPO}    schedule:\n      cron: "0 3 * * *"\n      timezone: ${zone}\n`);
    expect(problem?.path).toBe('agents[0].schedule.timezone');
    expect(problem?.message).toContain('is not a time zone;');
    expect(problem?.message).toContain(hint);
  });

  it('takes a time zone name in any case, and fires by it', () => {
    const [agent] = parse(
      `${REPO}    schedule:\n      cron: "0 3 * * *"\n      timezone: europe/berlin\n`,
    ).agents;
    const schedule = agent?.schedule as ScheduleConfig;
    expect(nextFiring(schedule, new Date('2026-01-15T00:00:00.000Z'))?.toISOString()).toBe(
      '2026-01-15T02:00:00.000Z',
    );
    expect(
      workUnitFor({ ...schedule, workUnit: '{date} {time}' }, 'x', new Date('2026-01-15T02:00:00.000Z')),
    ).toBe('2026-01-15 03:00:00');
  });

  it('rejects a work unit template whose expansion could pass 256 characters, or with a control character', () => {
    // 160 characters, but 20 × {agent} can become 640.
    const long = problems(
      `${REPO}    schedule:\n      cron: "0 3 * * *"\n      work_unit: "${'{agent}'.repeat(20)}"\n`,
    );
    expect(long).toEqual([
      expect.objectContaining({
        path: 'agents[0].schedule.work_unit',
        message: expect.stringMatching(/can expand to 640 characters .*at most 256: shorten the template/),
      }),
    ]);
    const tab = problems(`${REPO}    schedule:\n      cron: "0 3 * * *"\n      work_unit: "a\\tb-{date}"\n`);
    expect(tab[0]?.message).toContain('control character at position 2');
    // The longest a 256-character work unit allows: taken, and its firing's work unit passes the trigger's check.
    const fits = `${'{agent}'.repeat(7)}${'{firing}'}${'x'.repeat(256 - 7 * 32 - 27)}`;
    const config = parse(`${REPO}    schedule:\n      cron: "0 3 * * *"\n      work_unit: "${fits}"\n`);
    const schedule = config.agents[0]?.schedule as ScheduleConfig;
    expect(workUnitFor(schedule, 'a'.repeat(32), new Date('2026-12-04T03:00:00Z'))?.length).toBe(253);
  });

  it("takes the agent-level schedule_work_unit as the schedule's work unit, once, and only with a schedule", () => {
    const [agent] = parse(
      `${REPO}    schedule: "0 3 * * *"\n    schedule_work_unit: "nightly-{date}"\n`,
    ).agents;
    expect(agent?.schedule?.workUnit).toBe('nightly-{date}');
    const twice = problems(
      `${REPO}    schedule:\n      cron: "0 3 * * *"\n      work_unit: a\n    schedule_work_unit: b\n`,
    );
    expect(twice[0]).toMatchObject({ path: 'agents[0].schedule_work_unit' });
    expect(twice[0]?.message).toContain('keep one of them');
    const alone = problems(`${REPO}    schedule_work_unit: "nightly-{date}"\n`);
    expect(alone[0]?.message).toContain('no schedule:');
    expect(
      problems(`${REPO}    schedule: "0 3 * * *"\n    schedule_work_unit: "x-{hour}"\n`)[0]?.message,
    ).toContain('{hour}');
  });

  it('wants a repo for a scheduled agent, and max_concurrent of at least 1', () => {
    expect(problems('    schedule: "0 3 * * *"\n')[0]?.message).toContain('set repo: or remove schedule:');
    expect(problems(`${REPO}    max_concurrent: 0\n`)[0]?.path).toBe('agents[0].max_concurrent');
  });
});

const EVERY_5S: ScheduleConfig = { cron: '*/5 * * * * *', overlap: 'skip', catchUp: 'none' };
const DAILY_3AM_BERLIN: ScheduleConfig = {
  cron: '0 3 * * *',
  timezone: 'Europe/Berlin',
  workUnit: '{agent}-{date}-{time}',
  overlap: 'skip',
  catchUp: 'latest',
};

describe('schedule: firings', () => {
  it('computes the next and the latest firing, in the schedule’s time zone', () => {
    const at = new Date('2026-06-01T10:00:02.500Z');
    expect(nextFiring(EVERY_5S, at)?.toISOString()).toBe('2026-06-01T10:00:05.000Z');
    expect(latestFiring(EVERY_5S, at)?.toISOString()).toBe('2026-06-01T10:00:00.000Z');
    expect(latestFiring(EVERY_5S, new Date('2026-06-01T10:00:05.000Z'))?.toISOString()).toBe(
      '2026-06-01T10:00:05.000Z',
    );
    // 03:00 in Berlin is 01:00 UTC in summer.
    expect(nextFiring(DAILY_3AM_BERLIN, at)?.toISOString()).toBe('2026-06-02T01:00:00.000Z');
  });

  it('finds the newest missed firing after `since`, and none when nothing was missed', () => {
    const since = new Date('2026-06-01T00:30:00Z');
    expect(missedFiring(DAILY_3AM_BERLIN, since, new Date('2026-06-03T12:00:00Z'))?.toISOString()).toBe(
      '2026-06-03T01:00:00.000Z',
    );
    expect(missedFiring(DAILY_3AM_BERLIN, since, new Date('2026-06-01T00:59:00Z'))).toBeUndefined();
  });

  it('fires a list or range of fixed times once a day across daylight saving changes, as cron does', () => {
    /** Every firing from `from` to `to`, in UTC. */
    const firings = (cron: string, from: string, to: string) => {
      const schedule: ScheduleConfig = { cron, timezone: 'Europe/Berlin', overlap: 'skip', catchUp: 'none' };
      const all: string[] = [];
      for (let at = nextFiring(schedule, new Date(from)); at !== undefined && at < new Date(to); ) {
        all.push(at.toISOString());
        at = nextFiring(schedule, at);
      }
      return all;
    };
    // 2026-10-25 in Berlin: 02:00-02:59 comes twice (CEST, then CET). Each time fires once, the first time.
    const back = ['2026-10-24T22:00:00Z', '2026-10-25T14:00:00Z'] as const;
    expect(firings('0 2,14 * * *', ...back)).toEqual([
      '2026-10-25T00:00:00.000Z',
      '2026-10-25T13:00:00.000Z',
    ]);
    expect(firings('0,30 2 * * *', ...back)).toEqual([
      '2026-10-25T00:00:00.000Z',
      '2026-10-25T00:30:00.000Z',
    ]);
    expect(firings('0 2 * * *', ...back)).toEqual(['2026-10-25T00:00:00.000Z']);
    // 2026-03-29 in Berlin: 02:00-02:59 does not exist. The firing runs after the gap, at 03:00 CEST.
    const forward = ['2026-03-28T23:00:00Z', '2026-03-29T13:00:00Z'] as const;
    expect(firings('0 2,14 * * *', ...forward)).toEqual([
      '2026-03-29T01:00:00.000Z',
      '2026-03-29T12:00:00.000Z',
    ]);
    expect(firings('0 2 * * *', ...forward)).toEqual(['2026-03-29T01:00:00.000Z']);
    // An interval keeps its pace through the repeated hour: every hour of it, both times.
    expect(firings('0 * * * *', '2026-10-24T23:30:00Z', '2026-10-25T02:30:00Z')).toHaveLength(3);
  });

  it('gives one firing one session id, and fills the work unit template', () => {
    const id = scheduledSessionId('nightly', '2026-06-02T01:00:00.000Z');
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(scheduledSessionId('nightly', '2026-06-02T01:00:00.000Z')).toBe(id);
    expect(scheduledSessionId('nightly', '2026-06-03T01:00:00.000Z')).not.toBe(id);
    expect(scheduledSessionId('other', '2026-06-02T01:00:00.000Z')).not.toBe(id);
    expect(workUnitFor(DAILY_3AM_BERLIN, 'nightly', new Date('2026-06-02T01:00:00Z'))).toBe(
      'nightly-2026-06-02-03:00:00',
    );
    expect(workUnitFor({ ...EVERY_5S, workUnit: 'at {firing}' }, 'x', new Date('2026-06-02T01:00:05Z'))).toBe(
      'at 2026-06-02T01:00:05.000Z',
    );
    expect(workUnitFor(EVERY_5S, 'x', new Date())).toBeUndefined();
  });
});

/** The schedule machine under a parent that records what it is told. */
function scheduleUnderParent(input: { schedule: ScheduleConfig; since?: string }) {
  const fired: ScheduleFiredEvent[] = [];
  const progress: string[] = [];
  const warned: { agent: string; lastFired: string; now: string }[] = [];
  const child = scheduleMachine.provide({
    actions: {
      recordProgress: (_, { since }) => progress.push(since),
      warnClockBehind: (_, params) => warned.push(params),
    },
  });
  const parent = setup({ actors: { child } }).createMachine({
    invoke: { id: 'schedule', src: 'child', input: { agent: 'nightly', ...input } },
    on: { '*': { actions: ({ event }) => fired.push(event as ScheduleFiredEvent) } },
  });
  const actor = createActor(parent).start();
  const schedule = () => actor.getSnapshot().children.schedule?.getSnapshot();
  return { actor, fired, progress, warned, schedule };
}

describe('schedule machine', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(new Date('2026-06-01T10:00:02.000Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('fires at each firing time and says when the next one is', async () => {
    const s = scheduleUnderParent({ schedule: EVERY_5S });
    expect(s.schedule()?.value).toBe('waiting');
    expect(s.schedule()?.context.next).toBe('2026-06-01T10:00:05.000Z');
    expect(s.progress).toEqual(['2026-06-01T10:00:02.000Z']);
    await vi.advanceTimersByTimeAsync(2_999);
    expect(s.fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.fired).toEqual([
      { type: 'schedule.fired', agent: 'nightly', firing: '2026-06-01T10:00:05.000Z', catchUp: false },
    ]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(s.fired.map((f) => f.firing)).toEqual([
      '2026-06-01T10:00:05.000Z',
      '2026-06-01T10:00:10.000Z',
      '2026-06-01T10:00:15.000Z',
    ]);
    expect(s.schedule()?.context.next).toBe('2026-06-01T10:00:20.000Z');
    expect(s.progress.at(-1)).toBe('2026-06-01T10:00:15.000Z');
    s.actor.stop();
  });

  it('waits at most a minute at a time, so a far firing is re-planned from the clock', async () => {
    const s = scheduleUnderParent({ schedule: DAILY_3AM_BERLIN });
    await vi.advanceTimersByTimeAsync(60 * 60_000);
    expect(s.fired).toEqual([]);
    // The clock jumps two days (a suspended host wakes): the due firing comes within the next wait,
    // once, and it is the newest missed one (2026-06-03), as with cron, not the oldest (2026-06-02),
    // which this test used to expect: its {date} was a day off, and the newest firing never ran.
    vi.setSystemTime(new Date('2026-06-03T05:00:00.000Z'));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(s.fired.map((f) => f.firing)).toEqual(['2026-06-03T01:00:00.000Z']);
    expect(s.schedule()?.context.next).toBe('2026-06-04T01:00:00.000Z');
    expect(s.progress.at(-1)).toBe('2026-06-03T01:00:00.000Z');
    s.actor.stop();
  });

  it('after a pause, fires once for the newest missed firing, whatever catch_up says; a firing a little late runs as itself', async () => {
    // Timers late by half a minute (a loaded machine): the firing runs as its own time, then the next.
    const jittery = scheduleUnderParent({ schedule: EVERY_5S });
    vi.setSystemTime(new Date('2026-06-01T10:00:32.000Z'));
    await vi.advanceTimersByTimeAsync(3_000);
    expect(jittery.fired.map((f) => f.firing)).toEqual(['2026-06-01T10:00:05.000Z']);
    expect(jittery.schedule()?.context.next).toBe('2026-06-01T10:00:40.000Z');
    jittery.actor.stop();

    // Suspended from Friday to Monday: Monday's firing runs, once, with Monday in its work unit.
    vi.setSystemTime(new Date('2026-05-29T10:00:00.000Z'));
    const schedule: ScheduleConfig = { ...DAILY_3AM_BERLIN, catchUp: 'none' };
    const paused = scheduleUnderParent({ schedule });
    expect(paused.schedule()?.context.next).toBe('2026-05-30T01:00:00.000Z');
    vi.setSystemTime(new Date('2026-06-01T05:00:00.000Z'));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(paused.fired).toEqual([
      { type: 'schedule.fired', agent: 'nightly', firing: '2026-06-01T01:00:00.000Z', catchUp: false },
    ]);
    expect(workUnitFor(schedule, 'nightly', new Date('2026-06-01T01:00:00.000Z'))).toBe(
      'nightly-2026-06-01-03:00:00',
    );
    expect(paused.progress.at(-1)).toBe('2026-06-01T01:00:00.000Z');
    expect(paused.schedule()?.context.next).toBe('2026-06-02T01:00:00.000Z');
    paused.actor.stop();
  });

  it('does not replay a missed firing unless catch_up is latest, and then only the newest one', async () => {
    const since = '2026-05-29T12:00:00.000Z';
    const none = scheduleUnderParent({ schedule: { ...DAILY_3AM_BERLIN, catchUp: 'none' }, since });
    expect(none.fired).toEqual([]);
    expect(none.progress).toEqual([since]);
    none.actor.stop();
    const latest = scheduleUnderParent({ schedule: DAILY_3AM_BERLIN, since });
    expect(latest.fired).toEqual([
      { type: 'schedule.fired', agent: 'nightly', firing: '2026-06-01T01:00:00.000Z', catchUp: true },
    ]);
    expect(latest.progress).toEqual(['2026-06-01T10:00:02.000Z']);
    latest.actor.stop();
    const unknown = scheduleUnderParent({ schedule: DAILY_3AM_BERLIN });
    expect(unknown.fired).toEqual([]);
    unknown.actor.stop();
  });

  it('fires nothing twice after the clock steps back, and its progress never goes back', async () => {
    const hourly: ScheduleConfig = { cron: '0 * * * *', overlap: 'skip', catchUp: 'none' };
    vi.setSystemTime(new Date('2026-06-01T09:59:30.000Z'));
    const s = scheduleUnderParent({ schedule: hourly });
    await vi.advanceTimersByTimeAsync(31_000);
    expect(s.fired.map((f) => f.firing)).toEqual(['2026-06-01T10:00:00.000Z']);
    // The clock steps back two hours (NTP, an operator): 09:00 and 10:00 come round again by it.
    vi.setSystemTime(new Date('2026-06-01T08:00:31.000Z'));
    await vi.advanceTimersByTimeAsync(3 * 3_600_000);
    expect(s.fired.map((f) => f.firing)).toEqual(['2026-06-01T10:00:00.000Z', '2026-06-01T11:00:00.000Z']);
    const times = s.progress.map((at) => Date.parse(at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(s.progress.at(-1)).toBe('2026-06-01T11:00:00.000Z');
    s.actor.stop();
  });

  it('after a restart, does not fire again a firing at or before its recorded progress', async () => {
    const hourly: ScheduleConfig = { cron: '0 * * * *', overlap: 'skip', catchUp: 'none' };
    vi.setSystemTime(new Date('2026-06-01T08:30:00.000Z'));
    const s = scheduleUnderParent({ schedule: hourly, since: '2026-06-01T10:00:00.000Z' });
    expect(s.schedule()?.context.next).toBe('2026-06-01T11:00:00.000Z');
    expect(s.progress).toEqual(['2026-06-01T10:00:00.000Z']);
    s.actor.stop();
  });

  it('takes a clock over a day behind the last firing as set right, with a warning, and goes on from it', async () => {
    const hourly: ScheduleConfig = { cron: '0 * * * *', overlap: 'skip', catchUp: 'none' };
    vi.setSystemTime(new Date('2026-06-01T08:30:00.000Z'));
    // A firing recorded at a bogus time a year ahead must not hold the schedule back for a year.
    const s = scheduleUnderParent({ schedule: hourly, since: '2027-06-01T10:00:00.000Z' });
    expect(s.schedule()?.context.next).toBe('2026-06-01T09:00:00.000Z');
    expect(s.warned).toEqual([
      { agent: 'nightly', lastFired: '2027-06-01T10:00:00.000Z', now: '2026-06-01T08:30:00.000Z' },
    ]);
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(s.fired.map((f) => f.firing)).toEqual(['2026-06-01T09:00:00.000Z']);
    expect(s.warned).toHaveLength(1);
    s.actor.stop();
  });

  it('ends in exhausted when the expression never fires again', () => {
    // February 30th never comes.
    const s = scheduleUnderParent({ schedule: { ...EVERY_5S, cron: '0 0 30 2 *' } });
    expect(s.schedule()?.value).toBe('exhausted');
    expect(s.schedule()?.context.next).toBeUndefined();
    s.actor.stop();
  });
});

describe('schedule: the time zone without `timezone:`', () => {
  async function validate(schedule = '"0 3 * * *"', flags: string[] = []): Promise<string> {
    const dir = makeTempDir('agentd-unit-validate-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(
      file,
      `daemon:\n  state_dir: ${join(dir, 'state')}\nagents:\n  - name: nightly\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${REPO}    schedule: ${schedule}\n`,
    );
    const stdout = new PassThrough();
    let text = '';
    stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    const argv = ['validate', '--config', file, ...flags];
    const code = await (await buildCli(argv[0])).run(argv, {
      ...Cli.defaultContext,
      stdout,
      stderr: new PassThrough(),
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(code).toBe(0);
    return text;
  }

  const tz = process.env.TZ;
  afterEach(() => {
    // Node applies an assignment to process.env.TZ to this process's local time at once.
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  });

  it("validate names the zone it read the schedule in (its own process's), with its offset, and says the daemon uses its own", async () => {
    process.env.TZ = 'Asia/Kolkata';
    const text = await validate();
    expect(text).toContain(
      `schedule "0 3 * * *" in this process's time zone (Asia/Kolkata, now UTC+05:30; the daemon uses its own, as at its start),`,
    );
    expect(text).not.toContain('warning');
  });

  it.each([
    [
      'europe/berlin',
      '"europe/berlin" is not read as that zone (UTC+01:00 on 2026-01-15); this process keeps UTC+00:00',
    ],
    [
      'CET-1CEST,M3.5.0,M10.5.0/3',
      '"CET-1CEST,M3.5.0,M10.5.0/3" is not a time zone; this process keeps UTC+00:00',
    ],
  ])(
    'validate warns when TZ=%s leaves this process at another offset than the zone it names',
    async (zone, problem) => {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(new Date('2026-01-15T12:00:00.000Z'));
      try {
        process.env.TZ = zone;
        const text = await validate();
        // V8 keeps UTC for a TZ it cannot read (the C library's `date` reads the POSIX rule): 03:00 UTC.
        expect(text).toContain(`(${zone}, now UTC+00:00;`);
        expect(text).toContain('next firing 2026-01-16T03:00:00.000Z');
        expect(text).toContain(
          `warning: agents[0].schedule: has no timezone: and follows this process's time zone (TZ, else /etc/localtime): ${problem}; set TZ to a zone name as in /usr/share/zoneinfo (case matters), or give the schedule a timezone:`,
        );
        const json = JSON.parse(await validate(undefined, ['--json'])) as { warnings: unknown[] };
        expect(json.warnings).toEqual([
          {
            path: 'agents[0].schedule',
            agent: 'nightly',
            message: `has no timezone: and follows this process's time zone (TZ, else /etc/localtime): ${problem}`,
            fix: 'set TZ to a zone name as in /usr/share/zoneinfo (case matters), or give the schedule a timezone:',
          },
        ]);
        // A schedule with its own timezone: does not depend on it.
        expect(await validate('{cron: "0 3 * * *", timezone: Europe/Berlin}')).not.toContain('warning');
      } finally {
        vi.useRealTimers();
      }
    },
  );
});

describe('processTimeZone', () => {
  const sources = (env: NodeJS.ProcessEnv, link?: string, file?: string) => ({
    env,
    readLink: () => {
      if (link === undefined) throw Object.assign(new Error('not a link'), { code: 'EINVAL' });
      return link;
    },
    readFile: () => {
      if (file === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
      return file;
    },
  });

  it('reads TZ first, with or without its colon, a zone file path as its zone', () => {
    expect(processTimeZone(sources({ TZ: 'Europe/Berlin' }, '/usr/share/zoneinfo/Etc/UTC'))).toBe(
      'Europe/Berlin',
    );
    expect(processTimeZone(sources({ TZ: ':Asia/Tokyo' }))).toBe('Asia/Tokyo');
    expect(processTimeZone(sources({ TZ: '/usr/share/zoneinfo/America/New_York' }))).toBe('America/New_York');
  });

  it('else the zone /etc/localtime links to, else /etc/timezone, else UTC', () => {
    expect(processTimeZone(sources({}, '../usr/share/zoneinfo/posix/Europe/Paris', 'Etc/UTC\n'))).toBe(
      'Europe/Paris',
    );
    expect(processTimeZone(sources({ TZ: '' }, undefined, 'Europe/Lisbon\n'))).toBe('Europe/Lisbon');
    expect(processTimeZone(sources({}, '/somewhere/else', ' \n'))).toBe('UTC');
  });

  it('names the zone ICU finds for this process (its canonical name may differ: Etc/UTC is UTC)', () => {
    const canonical = (zone: string) =>
      new Intl.DateTimeFormat('en', { timeZone: zone }).resolvedOptions().timeZone;
    expect(canonical(processTimeZone())).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone);
  });
});
