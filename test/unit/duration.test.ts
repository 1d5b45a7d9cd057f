/** The one duration rule, as the config, triggers and the CLI share it. */
import { describe, expect, it } from 'vitest';
import {
  durationProblem,
  durationSetting,
  formatDuration,
  MAX_DURATION_MS,
  parseDuration,
} from '../../src/duration.js';
import { stopped } from '../../src/sessions/run-outcome.js';

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90_000],
    ['10m', 600_000],
    ['2h', 7_200_000],
    ['1h30m', 5_400_000],
    [' 5s ', 5000],
    ['596h', 596 * 3_600_000],
  ])('parses %j as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
    expect(durationProblem(text)).toBeUndefined();
  });

  it.each([
    ['', 'is not a duration; write a number with a unit like 90s, 10m or 2h'],
    ['10', 'is not a duration'],
    ['10 minutes', 'is not a duration'],
    ['-5s', 'is not a duration'],
    ['1.5h', 'is not a duration'],
    ['5d', 'is not a duration'],
    ['0s', 'must be longer than zero'],
    ['0h0m', 'must be longer than zero'],
    ['597h', 'is too long; the longest supported duration is 596h'],
    [`${MAX_DURATION_MS + 1}ms`, 'is too long'],
  ])('refuses %j: %s', (text, problem) => {
    expect(durationProblem(text)).toContain(problem);
  });

  it('accepts exactly what timers can wait for', () => {
    expect(durationProblem(`${MAX_DURATION_MS}ms`)).toBeUndefined();
    expect(parseDuration(`${MAX_DURATION_MS}ms`)).toBe(MAX_DURATION_MS);
  });

  it.each([
    [999, '999ms'],
    [1500, '1.5s'],
    [999.6, '1.0s'],
    [59_949, '59.9s'],
    [59_999, '1m00s'],
    [60_000, '1m00s'],
    // Hours and days, not thousands of minutes (`agentd status` said "up 1440m00s" after a day).
    [3_599_400, '59m59s'],
    [3_599_600, '1h00m00s'],
    [7_385_000, '2h03m05s'],
    [86_400_000, '1d00h00m'],
    [273_900_000, '3d04h05m'],
    [754_000, '12m34s'],
    // A minute's last half second carries into the next minute (`agentd status` said "up 2m60s").
    [179_600, '3m00s'],
    [119_500, '2m00s'],
    [60_400, '1m00s'],
    // Measured across a clock set back: never shown negative.
    [-6_900_000, '0ms'],
    [-1, '0ms'],
  ])('formats %d ms as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('a setting named in a message', () => {
  it.each([
    [500, '500ms'],
    [1, '1ms'],
    [1500, '1s500ms'],
    [12_000, '12s'],
    [60_000, '1m'],
    [600_000, '10m'],
    [5_400_000, '1h30m'],
    [MAX_DURATION_MS, '596h31m23s647ms'],
    [0, '0s'],
    [Number.NaN, '0s'],
  ])('writes %d ms as %s, which reads back as the same duration', (ms, text) => {
    expect(durationSetting(ms)).toBe(text);
    if (ms > 0) expect(parseDuration(text)).toBe(ms);
  });

  it('says the timeout a session was given, not 0s for one under a second or 5400s for 90m', () => {
    expect(stopped('timeout', 'running', 500).message).toBe(
      'session exceeded its timeout of 500ms while running',
    );
    expect(stopped('timeout', 'cloning', 5_400_000).message).toBe(
      'session exceeded its timeout of 1h30m while cloning',
    );
  });
});
