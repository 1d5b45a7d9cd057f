/**
 * The clock watch (src/daemon/clock-watch.ts): a step of the wall clock against the steady clock is
 * warned of once, with its size and direction; time that both clocks see pass (timers late on a loaded
 * machine) is not a step. Fake timers and clocks; no daemon.
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CLOCK_WATCH_MS, watchClock } from '../../src/daemon/clock-watch.js';

afterEach(() => {
  vi.useRealTimers();
});

const YEARS_10 = 3650 * 86_400_000;

function watched() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  let wall = 1_800_000_000_000;
  let steady = 1000;
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  const watch = watchClock(log, { wall: () => wall, steady: () => steady });
  /** A minute passes on both clocks, plus `step` on the wall clock alone; the watch looks. */
  const minute = (step = 0, late = 0) => {
    wall += CLOCK_WATCH_MS + late + step;
    steady += CLOCK_WATCH_MS + late;
    vi.advanceTimersByTime(CLOCK_WATCH_MS);
  };
  const stepped = () => lines.filter((l) => l.event === 'daemon.clock_stepped');
  return { watch, minute, stepped };
}

describe('the clock watch', () => {
  it('warns once of a step 10 years forward, with its size, direction and what it affects', () => {
    const { watch, minute, stepped } = watched();
    minute();
    minute(YEARS_10);
    minute();
    minute();
    expect(stepped()).toHaveLength(1);
    expect(stepped()[0]).toMatchObject({ level: 40, direction: 'forward', stepMs: YEARS_10 });
    expect(stepped()[0]?.msg).toContain('set forward by 3650.0d');
    expect(stepped()[0]?.msg).toContain('records_max_age');
    // What follows the new time, and what does not: in-process waits are steady, only a restart reads due times.
    expect(stepped()[0]?.msg).toContain(
      'the order of history and its --since, and schedules follow the new time; ' +
        "this daemon keeps ages of sealed records (daemon.records_max_age), HTTP time limits and notifications' waits between attempts on its steady clock, " +
        'but a restart reads record ages, and the next attempts of notifications in the outbox (at most 15 min off), by the clock it finds',
    );
    expect(stepped()[0]?.msg).not.toContain('notification retries follow the new time');
    watch.stop();
  });

  it('warns of each step, backward too, and not of drift within 5 s or of a late timer', () => {
    const { watch, minute, stepped } = watched();
    minute(4000);
    minute(-4000);
    minute(0, 30_000);
    expect(stepped()).toEqual([]);
    minute(-2 * 3_600_000);
    minute(7000);
    expect(stepped().map((l) => [l.direction, l.stepMs])).toEqual([
      ['backward', 7_200_000],
      ['forward', 7000],
    ]);
    expect(stepped()[0]?.msg).toContain('set back by 2.0h');
    watch.stop();
  });

  it('looks no more once stopped, and its timer does not hold the process up', () => {
    vi.useRealTimers();
    const spy = vi.spyOn(globalThis, 'setInterval');
    const { stop } = watchClock(pino({ level: 'silent' }));
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    stop();
    spy.mockRestore();
    const { watch, minute, stepped } = watched();
    watch.stop();
    minute(YEARS_10);
    expect(stepped()).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
