import { AGENT_NAME_MAX, AGENT_NAME_PATTERN, SESSION_ID_PATTERN } from './constants.js';

/**
 * Strings of a session record (and of the protocol's replies) that must be of a form, each tested once:
 * the zod schemas (sessions/records.ts, protocol/replies.ts) refine with these tests and the CLI's reply
 * tables (cli/reply-check.ts, which loads no zod) check with them, so the two cannot drift apart.
 */

/** An ISO 8601 time with its zone, as agentd writes one (`2026-12-06T12:52:22.065Z`) or a person would. */
const ISO_TIME =
  /^(?:\d{4}|[+-]\d{6})-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;

export const VALUE_FORMATS = {
  /** A time a Date holds: `2026-13-45T00:00Z` has the form and is no time (`Invalid Date`, NaN). */
  time: {
    test: (text: string): boolean => ISO_TIME.test(text) && !Number.isNaN(Date.parse(text)),
    what: 'an ISO 8601 time',
  },
  sessionId: {
    test: (text: string): boolean => SESSION_ID_PATTERN.test(text),
    what: 'a session id (16 lowercase hex characters)',
  },
  agentName: {
    test: (text: string): boolean => AGENT_NAME_PATTERN.test(text) && text.length <= AGENT_NAME_MAX,
    what: `an agent name (lowercase letters, digits, _ and -, at most ${AGENT_NAME_MAX})`,
  },
} as const;
export type ValueFormat = keyof typeof VALUE_FORMATS;
