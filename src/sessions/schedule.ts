import { createHash } from 'node:crypto';
import { Cron } from 'croner';
import { CRON_OPTIONS } from '../config/schedule.js';
import type { ScheduleConfig } from '../config/types.js';

/**
 * When a schedule fires, computed by croner (the expression was checked when the configuration was
 * read). Pure apart from croner's reading of time zones; no timer runs here: the schedule machine
 * waits with a delayed transition.
 */

function cronOf(schedule: ScheduleConfig): Cron {
  return new Cron(schedule.cron, {
    ...CRON_OPTIONS,
    paused: true,
    ...(schedule.timezone === undefined ? {} : { timezone: schedule.timezone }),
  });
}

/** The first firing strictly after `after`; undefined when the schedule never fires again. */
export function nextFiring(schedule: ScheduleConfig, after: Date): Date | undefined {
  return cronOf(schedule).nextRun(after) ?? undefined;
}

/** The newest firing at or before `at`. */
export function latestFiring(schedule: ScheduleConfig, at: Date): Date | undefined {
  // previousRuns looks strictly before its reference; firings fall on whole seconds.
  return cronOf(schedule).previousRuns(1, new Date(at.getTime() + 1))[0];
}

/** The newest firing after `since` and at or before `now`: the one a catch-up runs. */
export function missedFiring(schedule: ScheduleConfig, since: Date, now: Date): Date | undefined {
  const latest = latestFiring(schedule, now);
  return latest !== undefined && latest.getTime() > since.getTime() ? latest : undefined;
}

/**
 * A firing's session id: the same for the same agent and firing time, so one firing never makes two
 * sessions (a catch-up after a restart, say): the daemon refuses a session id it has a record of.
 */
export function scheduledSessionId(agent: string, firing: string): string {
  return createHash('sha256').update(`schedule\0${agent}\0${firing}`).digest('hex').slice(0, 16);
}

/** The work unit of a firing's session: the template with {agent}, {date}, {time}, {firing} replaced. */
export function workUnitFor(schedule: ScheduleConfig, agent: string, firing: Date): string | undefined {
  if (schedule.workUnit === undefined) return undefined;
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', {
      ...(schedule.timezone === undefined ? {} : { timeZone: schedule.timezone }),
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(firing)
      .map((p) => [p.type, p.value]),
  );
  const values: Record<string, string> = {
    agent,
    date: `${parts.year}-${parts.month}-${parts.day}`,
    time: `${parts.hour}:${parts.minute}:${parts.second}`,
    firing: firing.toISOString(),
  };
  return schedule.workUnit.replace(/\{([a-z]+)\}/g, (whole, name: string) => values[name] ?? whole);
}
