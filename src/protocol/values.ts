/**
 * The protocol's enumerations that are its own (outcomes, kinds, phases and rejection codes are the
 * sessions' and base's, daemon states public-state.ts's), each once: the zod schemas of replies.ts and
 * the CLI's reply tables (cli/reply-check.ts) both use these lists, so a value added to one is in the other.
 * No zod here: the CLI imports this module.
 */

/** The `code` of an `error` reply; docs/protocol.md says when each is sent. */
export const ERROR_CODES = [
  'bad_json',
  'bad_request',
  'unsupported_version',
  'line_too_long',
  'busy',
  'unknown_session',
  'unknown_host',
  /** The daemon machine failed and the process is exiting: it acts on nothing more; restart it. */
  'failed',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** A host's `state` in a `hosts` reply; `failed`: the daemon's supervision of the host failed. */
export const HOST_STATES = ['up', 'down', 'reconciling', 'failed'] as const;

/** Where an `output` line came from: the command's stdout or stderr, or agentd's own note. */
export const OUTPUT_STREAMS = ['stdout', 'stderr', 'agentd'] as const;

/** Why the daemon closes a connection (`closing`): its client stopped reading. */
export const CLOSING_REASONS = ['stalled'] as const;
