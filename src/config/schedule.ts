import { Cron } from 'croner';
import { AGENT_NAME_MAX, WORK_UNIT_MAX } from '../constants.js';
import { firstControl } from '../repo-url.js';
import { looksLikeSecret, quoted } from './quoted.js';

/**
 * The `schedule:` rules: a cron expression as croner reads it (five fields, or six with a leading
 * seconds field), an IANA time zone, and a work unit template. croner parses; this module only turns
 * its verdict into a message an operator can act on.
 */

/** croner's mode: minute hour day-of-month month day-of-week, optionally preceded by seconds. */
export const CRON_MODE = '5-or-6-parts' as const;

/**
 * The options every schedule is read with. `no-wildcard`: an expression without `*` or a step in its
 * time fields (`0 2,14 * * *`, `0,30 2 * * *`) is a fixed time, as in Vixie cron: once on the day a
 * time comes twice, after the gap on the day it is skipped. croner's default counts only single values
 * as fixed, so a list fired twice in the repeated hour and never in the skipped one.
 */
export const CRON_OPTIONS = { mode: CRON_MODE, fixedTimeRule: 'no-wildcard' } as const;

/** Placeholders a `work_unit` template may use, each replaced per firing. */
export const WORK_UNIT_PLACEHOLDERS = ['agent', 'date', 'time', 'firing'] as const;

/**
 * The longest each placeholder becomes: {agent} the longest agent name, {date} 2026-12-04, {time}
 * 03:00:00, {firing} 2026-12-04T03:00:00.000Z (27 past the year 9999).
 */
const PLACEHOLDER_MAX: Record<(typeof WORK_UNIT_PLACEHOLDERS)[number], number> = {
  agent: AGENT_NAME_MAX,
  date: 10,
  time: 8,
  firing: 27,
};

export function cronProblem(expression: string): string | undefined {
  try {
    const cron = new Cron(expression, { ...CRON_OPTIONS, paused: true });
    const next = cron.nextRun();
    cron.stop();
    if (next === null) return `${quoted(expression)} never fires; check the day and month fields`;
    return undefined;
  } catch (error) {
    // croner's reason repeats the expression: none when quoted does not show it.
    const reason = looksLikeSecret(expression)
      ? ''
      : ` (${(error instanceof Error ? error.message : String(error)).replace(/^CronPattern: /, '')})`;
    return (
      `${quoted(expression)} is not a cron expression${reason}; write five fields ` +
      '"minute hour day-of-month month day-of-week" like "0 3 * * *", or six with leading seconds like "*/10 * * * * *"'
    );
  }
}

export function timezoneProblem(zone: string): string | undefined {
  if (isZone(zone)) return undefined;
  // An offset (UTC+1, GMT-05:00, +02): the IANA names for whole hours are Etc/GMT-1 and so on, sign inverted.
  const offset = /^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?00)?$/i.exec(zone.trim());
  const etc = offset && `Etc/GMT${offset[1] === '+' ? '-' : '+'}${Number(offset[2])}`;
  if (offset && etc && Number(offset[2]) !== 0 && isZone(etc)) {
    return (
      `${quoted(zone)} is not a time zone; for a fixed UTC${offset[1]}${Number(offset[2])} all year write ${etc} ` +
      '(these names invert the sign), or the IANA name of a place like Europe/Berlin to follow its daylight saving time'
    );
  }
  return `${quoted(zone)} is not a time zone; use an IANA name like UTC, Europe/Berlin or America/New_York`;
}

function isZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export function workUnitTemplateProblem(template: string): string | undefined {
  if (template.trim() === '') return 'is empty; write a template like "nightly-{date}" or remove the key';
  // What a firing's session would be refused for, every time: refused here instead.
  const control = firstControl(template);
  if (control !== -1) {
    return `has a control character at position ${control + 1}; a work unit is text without control characters (no newline, tab or escape)`;
  }
  const unknown = [...template.matchAll(/\{([^}]*)\}/g)]
    .map((m) => m[1] as string)
    .filter((name) => !(WORK_UNIT_PLACEHOLDERS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    return `uses {${unknown[0]}}, which is not a placeholder; use ${WORK_UNIT_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`;
  }
  // A brace left over is a placeholder written wrong ("nightly-{date"): every firing's work unit would
  // carry it as it is, without a word.
  const stray = /[{}]/.exec(template.replace(/\{([a-z]+)\}/g, (whole) => '.'.repeat(whole.length)));
  if (stray !== null) {
    return `has a ${stray[0]} at position ${stray.index + 1} that is not part of a placeholder; write each placeholder whole: ${WORK_UNIT_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`;
  }
  const longest = template.replace(/\{([a-z]+)\}/g, (_, name: keyof typeof PLACEHOLDER_MAX) =>
    '.'.repeat(PLACEHOLDER_MAX[name]),
  ).length;
  if (longest > WORK_UNIT_MAX) {
    return (
      `can expand to ${longest} characters (an agent name for {agent} may have ${AGENT_NAME_MAX}); ` +
      `a work unit has at most ${WORK_UNIT_MAX}: shorten the template or use fewer placeholders`
    );
  }
  return undefined;
}
