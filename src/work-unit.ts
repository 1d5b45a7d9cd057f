import { WORK_UNIT_MAX } from './constants.js';
import { firstControl } from './repo-url.js';

/** How long a work unit may be, said wherever one is refused. */
export const WORK_UNIT_RULE = `a work unit is 1 to ${WORK_UNIT_MAX} characters`;

/** Why an empty work unit is refused. */
export const WORK_UNIT_EMPTY = `is empty; ${WORK_UNIT_RULE}, or leave it out`;

/** Why a work unit of `length` characters, over WORK_UNIT_MAX, is refused. */
export const workUnitTooLong = (length: number) => `has ${length} characters; ${WORK_UNIT_RULE}`;

/** Why a work unit with a control character is refused. */
export const WORK_UNIT_CONTROL =
  'a work unit is text without control characters (no newline, tab, escape or NUL)';

/**
 * Why `value` is not a work unit (`--work-unit`, a trigger request), or undefined. It reaches the agent
 * as a variable and operators in lists and logs: text without control characters (a NUL cannot be
 * passed at all; a newline or an escape sequence would forge lines and colours in what operators read).
 * Never repeats the value: it may be long, or hold escapes.
 */
export function workUnitProblem(value: string): string | undefined {
  if (value === '') return WORK_UNIT_EMPTY;
  if (value.length > WORK_UNIT_MAX) return workUnitTooLong(value.length);
  if (firstControl(value) !== -1) {
    return WORK_UNIT_CONTROL;
  }
  return undefined;
}
