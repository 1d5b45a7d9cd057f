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

/**
 * A setting's duration as its configuration would write it, `90s`, `10m`, `1h30m` or `500ms` (what
 * parseDuration reads back): a timeout or a grace period named in a message must say what was set,
 * not round a `500ms` to `0s` or show `90m` as `5400s`.
 */
export function durationSetting(duration: number): string {
  let ms = Number.isFinite(duration) ? Math.max(0, Math.round(duration)) : 0;
  if (ms === 0) return '0s';
  let text = '';
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ] as const) {
    const n = Math.floor(ms / size);
    if (n > 0) text += `${n}${unit}`;
    ms -= n * size;
  }
  return text;
}

/**
 * A duration as `850ms`, `12.5s`, `3m05s`, `2h03m05s` or `3d04h05m` (each parseable back: a day is an
 * age's unit); never negative (a clock set back while it was measured shows 0ms).
 */
export function formatDuration(duration: number): string {
  const ms = Number.isNaN(duration) ? 0 : Math.max(0, duration);
  // Each form up to where its rounding would show the next unit's first value (1000ms, 60.0s).
  if (ms < 999.5) return `${Math.round(ms)}ms`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)}s`;
  // Whole seconds first, so that 2m59.6s carries into 3m00s (rounding the seconds alone said 2m60s).
  const total = Math.round(ms / 1000);
  const two = (n: number) => n.toString().padStart(2, '0');
  const seconds = total % 60;
  const minutes = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600);
  if (hours === 0) return `${minutes}m${two(seconds)}s`;
  if (hours < 24) return `${hours}h${two(minutes)}m${two(seconds)}s`;
  return `${Math.floor(hours / 24)}d${two(hours % 24)}h${two(minutes)}m`;
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
