import type { Logger } from 'pino';
import { MAX_WAIT_MS } from '../machines/delivery.machine.js';

/** How often the wall clock's progress is compared with the steady clock's. */
export const CLOCK_WATCH_MS = 60_000;
/** A difference past this between the two is a step of the wall clock (timers running late are not one). */
export const CLOCK_STEP_MS = 5_000;

export interface ClockWatchOptions {
  everyMs?: number;
  stepMs?: number;
  /** The wall clock (Date.now) and the steady one (performance.now), for tests. */
  wall?: () => number;
  steady?: () => number;
}

/**
 * Warns `daemon.clock_stepped` when the system clock is set (an NTP step, a bad RTC or NTP source, by
 * hand) or the host was suspended: the wall clock moved that much more or less than the steady clock
 * since the last look. Once per step: each look compares from the one before. The daemon times what
 * it must (retention of sealed records, stalled HTTP clients, notifications' waits between attempts) on
 * the steady clock; the warning says what follows the new time (session times, history, schedules), and
 * what a restart would read by it (record ages; notifications' due times, which waitLeft in notifier.ts
 * bounds by MAX_WAIT_MS). Stop it at shutdown; its timer never holds the process up.
 */
export function watchClock(log: Logger, options: ClockWatchOptions = {}): { stop: () => void } {
  const {
    everyMs = CLOCK_WATCH_MS,
    stepMs = CLOCK_STEP_MS,
    wall = () => Date.now(),
    steady = () => performance.now(),
  } = options;
  let lastWall = wall();
  let lastSteady = steady();
  const timer = setInterval(() => {
    const nowWall = wall();
    const nowSteady = steady();
    const step = nowWall - lastWall - (nowSteady - lastSteady);
    lastWall = nowWall;
    lastSteady = nowSteady;
    if (Math.abs(step) <= stepMs) return;
    const forward = step > 0;
    log.warn(
      {
        event: 'daemon.clock_stepped',
        direction: forward ? 'forward' : 'backward',
        stepMs: Math.round(Math.abs(step)),
        now: new Date(nowWall).toISOString(),
      },
      `the system clock was set ${forward ? 'forward' : 'back'} by ${stepText(Math.abs(step))}${forward ? ' (or the host was suspended that long)' : ''}, to ${new Date(nowWall).toISOString()}: ` +
        'session times (acceptedAt, finishedAt), the order of history and its --since, and schedules follow the new time; ' +
        "this daemon keeps ages of sealed records (daemon.records_max_age), HTTP time limits and notifications' waits between attempts on its steady clock, " +
        `but a restart reads record ages, and the next attempts of notifications in the outbox (at most ${MAX_WAIT_MS / 60_000} min off), by the clock it finds: ` +
        'if the new time is wrong, correct it (timedatectl; chronyc tracking) before restarting agentd, or records may be removed as too old',
    );
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** A step's size in the unit that reads best: 7.2s, 12m, 2.0h, 3650.0d. */
function stepText(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)}m`;
  if (ms < 86_400_000) return `${(ms / 3_600_000).toFixed(1)}h`;
  return `${(ms / 86_400_000).toFixed(1)}d`;
}
