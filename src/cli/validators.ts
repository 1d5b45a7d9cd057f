import { UsageError } from 'clipanion';
import { makeValidator, type StrictValidator } from 'typanion';
import { IDEMPOTENCY_KEY_PATTERN, IDEMPOTENCY_KEY_RULE, SESSION_ID_PATTERN } from '../constants.js';
import { durationProblem } from '../duration.js';
import { parseSince, SINCE_RULE } from '../sessions/history.js';
import { workUnitProblem } from '../work-unit.js';
import { SEQUENCE_NUMBER_PATTERN } from './sequence-number.js';

/**
 * typanion validators for option values: clipanion runs them while it parses, and a value that fails
 * one is a usage error (exit 2) that names the option. Each wraps the one rule of its kind.
 */
function fromProblem(problem: (value: string) => string | undefined): StrictValidator<unknown, string> {
  return makeValidator<unknown, string>({
    test: (value, state): value is string => {
      const why = typeof value === 'string' ? problem(value) : 'must be text';
      if (why === undefined) return true;
      // typanion's own pushError is not exported; this is its format ("<path>: <message>").
      state?.errors?.push(`.: ${why}`);
      return false;
    },
  });
}

/** Longest value a usage error repeats whole: a pasted file (128 KiB an argument) made a 128 KiB error. */
const QUOTED_MAX = 64;

/** The value as a usage error repeats it: quoted, and cut with its length when long. */
export function quoted(value: string): string {
  if (value.length <= QUOTED_MAX) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, QUOTED_MAX)).slice(0, -1)}…" (${value.length} characters)`;
}

export const isDuration = fromProblem((value) =>
  durationProblem(value) === undefined ? undefined : `${quoted(value)} ${durationProblem(value)}`,
);

export const isSessionId = fromProblem((value) =>
  SESSION_ID_PATTERN.test(value)
    ? undefined
    : `${quoted(value)} is not a session id (16 hex characters, as printed by agentd trigger)`,
);

/** A line's sequence number (`seq`), 0 or more: where `logs --after` resumes. */
export const isSequenceNumber = fromProblem((value) =>
  SEQUENCE_NUMBER_PATTERN.test(value)
    ? undefined
    : `${quoted(value)} is not a line number (the \`seq\` of a line of output: 0, 1, 2, ...)`,
);

/** A path option (`--socket`): an empty one would quietly mean the default. */
export const isPath = fromProblem((value) =>
  value === '' ? 'is empty: give a path (or leave the option out for the default)' : undefined,
);

export const isKey = fromProblem((value) =>
  IDEMPOTENCY_KEY_PATTERN.test(value) ? undefined : `${quoted(value)}: ${IDEMPOTENCY_KEY_RULE}`,
);

/** `--work-unit`: refused here, naming the option, rather than by the daemon as a bad request. */
export const isWorkUnit = fromProblem(workUnitProblem);

export const isSince = fromProblem((value) =>
  parseSince(value, 0) === undefined ? `${quoted(value)} ${SINCE_RULE}` : undefined,
);

export function isWholeNumber(min: number, max: number): StrictValidator<unknown, string> {
  return fromProblem((value) =>
    /^\d+$/.test(value) && Number(value) >= min && Number(value) <= max
      ? undefined
      : `${quoted(value)} is not a whole number from ${min} to ${max}`,
  );
}

export function isOneOf<T extends string>(values: readonly T[]): StrictValidator<unknown, T> {
  return fromProblem((value) =>
    (values as readonly string[]).includes(value)
      ? undefined
      : `must be one of ${values.join(', ')}, not ${quoted(value)}`,
  ) as StrictValidator<unknown, T>;
}

export { UsageError };
