/** The longest timer Node can set (about 596 hours); longer ones would fire at once. */
export const MAX_DURATION_MS = 2_147_483_647;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses durations like `90s`, `10m`, `2h`, `1h30m` or `500ms` into milliseconds; undefined when invalid. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^(\d+(ms|s|m|h))+$/.test(trimmed)) return undefined;
  let total = 0;
  for (const match of trimmed.matchAll(/(\d+)(ms|s|m|h)/g)) {
    total += Number(match[1]) * (UNITS[match[2] ?? ''] ?? 0);
  }
  return total > 0 ? total : undefined;
}

/**
 * Why a duration text is not acceptable, as the end of a sentence whose subject the caller names (a
 * config key, a trigger field, an option), or undefined when it is. The one duration rule.
 */
export function durationProblem(text: string): string | undefined {
  const ms = parseDuration(text);
  if (ms === undefined) {
    if (/^\s*(\d+(ms|s|m|h))+\s*$/.test(text)) return 'must be longer than zero';
    return 'is not a duration; write a number with a unit like 90s, 10m or 2h';
  }
  if (ms > MAX_DURATION_MS) return 'is too long; the longest supported duration is 596h';
  return undefined;
}

/** A duration as `850ms`, `12.5s` or `3m05s`; never negative (a clock set back while it was measured shows 0ms). */
export function formatDuration(duration: number): string {
  const ms = Number.isNaN(duration) ? 0 : Math.max(0, duration);
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  // Whole seconds first, so that 2m59.6s carries into 3m00s (rounding the seconds alone said 2m60s).
  const total = Math.round(ms / 1000);
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  return `${minutes}m${seconds.toString().padStart(2, '0')}s`;
}

/** Longest age a retention setting takes (100 years): it is compared with dates, never set as a timer. */
export const MAX_AGE_MS = 36_500 * 86_400_000;

/**
 * Parses ages like `30d`, `12h` or `1d12h` (record retention): the duration units and `d` for days.
 * Not a timer, so not bound by MAX_DURATION_MS; undefined when invalid.
 */
export function parseAge(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(trimmed)) return undefined;
  let total = 0;
  for (const match of trimmed.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
    total += Number(match[1]) * (match[2] === 'd' ? 86_400_000 : (UNITS[match[2] ?? ''] ?? 0));
  }
  return total > 0 ? total : undefined;
}

/** Why an age text is not acceptable, as the end of a sentence (see durationProblem), or undefined. */
export function ageProblem(text: string): string | undefined {
  const ms = parseAge(text);
  if (ms === undefined) {
    if (/^\s*(\d+(ms|s|m|h|d))+\s*$/.test(text)) return 'must be longer than zero';
    return 'is not an age; write a number with a unit like 30d, 12h or 90m';
  }
  if (ms > MAX_AGE_MS) return 'is too long; use at most 36500d';
  return undefined;
}
