/** LogBudget (src/log-budget.ts): a burst, then a steady rate per key; the rest counted, and told once a minute. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LogBudget } from '../../src/log-budget.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('LogBudget', () => {
  it('lets a burst through, then a steady rate, and says once per summary period how many it held back', () => {
    vi.useFakeTimers();
    let now = 0;
    const told: [string, number][] = [];
    const budget = new LogBudget(
      (key, count) => told.push([key, count]),
      { burst: 5, perSecond: 2, summaryMs: 60_000 },
      () => now,
    );
    const taken = (key: string, n: number) =>
      Array.from({ length: n }, () => budget.take(key)).filter(Boolean).length;
    expect(taken('a', 20)).toBe(5);
    // Its own budget for every key.
    expect(taken('b', 3)).toBe(3);
    now += 1000;
    expect(taken('a', 20)).toBe(2);
    expect(told).toEqual([]);
    vi.advanceTimersByTime(60_000);
    expect(told).toEqual([['a', 33]]);
    // Nothing held back since: nothing more is told.
    vi.advanceTimersByTime(120_000);
    expect(told).toHaveLength(1);
    now += 10_000;
    expect(taken('a', 10)).toBe(5);
    vi.advanceTimersByTime(60_000);
    expect(told).toEqual([
      ['a', 33],
      ['a', 5],
    ]);
  });
});
