import { z } from 'zod';
import { HOST_NAME_MAX } from '../config/hosts.js';
import {
  AGENT_NAME_MAX,
  MAX_INPUT_FILES,
  MAX_LINE_BYTES,
  PROTOCOL_VERSIONS,
  type ProtocolVersion,
  SESSION_ID_PATTERN,
  SHUTDOWN_MODES,
} from '../constants.js';
import { boundedText, triggerFieldsSchema, workUnitText } from '../sessions/check-trigger.js';
import { HISTORY_MAX_LIMIT, parseSince, SINCE_RULE } from '../sessions/history.js';
import { OUTCOMES } from '../sessions/types.js';

/** Byte content in a JSON line: standard base64, with padding. */
const base64 = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')
  .max(MAX_LINE_BYTES);

const sessionId = z.string().regex(SESSION_ID_PATTERN, 'a session id is 16 lowercase hex characters');

/**
 * What `limit` and `after` take, said whatever was wrong: zod's own words were "expected int, received
 * number" for 1.5, and over HTTP, where a query is text, "expected number, received NaN" for `limit=abc`.
 */
export const LIMIT_RULE = `a whole number from 1 to ${HISTORY_MAX_LIMIT}`;
export const AFTER_RULE = "a line's seq: a whole number, 0 or more";

/** The filters of the `history` request (sessions/history.ts applies them). */
export const historyFilterFields = {
  agent: boundedText(64, {
    empty: 'is empty; name an agent, or leave it out for every agent',
    long: (length) => `has ${length} characters, more than any agent's name (at most ${AGENT_NAME_MAX})`,
  }).optional(),
  outcome: z.enum(OUTCOMES).optional(),
  // As a trigger's: `agentd history --work-unit` refuses what a trigger would.
  workUnit: workUnitText.optional(),
  // Its bounds stop the check: a since of 5000 characters was also told it is neither a time nor a duration.
  since: z
    .string()
    .min(1, {
      error: 'is empty; give a time (2026-11-26) or a duration back from now (2h), or leave it out',
      abort: true,
    })
    .max(64, {
      error: (issue) => `has ${String(issue.input).length} characters; a time or a duration has at most 64`,
      abort: true,
    })
    .refine((text) => parseSince(text, 0) !== undefined, { error: `since ${SINCE_RULE}` })
    .optional(),
  limit: z
    .number({ error: LIMIT_RULE })
    .int({ error: LIMIT_RULE, abort: true })
    .min(1, { error: LIMIT_RULE })
    .max(HISTORY_MAX_LIMIT, { error: LIMIT_RULE })
    .optional(),
};

/** An input file's name, in words (zod's were "Too big: expected string to have <=128 characters"). */
export const inputFileName = boundedText(128, {
  empty: 'is empty; name the file as the agent is to see it in /agentd/input',
  long: (length, max) => `has ${length} characters; an input file's name has at most ${max}`,
});
export const INPUT_FILES_RULE = `at most ${MAX_INPUT_FILES} input files`;

/** A host of `hosts drain` and `undrain`. */
const hostName = boundedText(64, {
  empty: "is empty; name one of the daemon's hosts (agentd hosts lists them)",
  long: (length) =>
    `has ${length} characters, more than any host's name (at most ${HOST_NAME_MAX}); agentd hosts lists them`,
});

/** Events of the daemon machine that clients may send (`agentd send`, the `event` request). */
export const daemonEventSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('trigger'), sessionId: sessionId.optional(), ...triggerFieldsSchema }),
  z.strictObject({ type: z.literal('cancel'), sessionId }),
  // No mode: as a signal (the first drains, the next cancels); `graceful` never cancels, `force` always does.
  z.strictObject({ type: z.literal('shutdown'), mode: z.enum(SHUTDOWN_MODES).optional() }),
]);
export type InjectedEvent = z.infer<typeof daemonEventSchema>;

/** A request id: echoed in every reply to the request, so it must be one a client can match. */
export const REQUEST_ID_RULE = 'an id is a string of 1 to 128 characters';
export const requestIdSchema = z.string().min(1, REQUEST_ID_RULE).max(128, REQUEST_ID_RULE);
export const versionSchema = z.literal(PROTOCOL_VERSIONS);

const base = { v: versionSchema, id: requestIdSchema.optional() };

export const requestSchema = z.discriminatedUnion('type', [
  // hello needs no version: it is how a client learns which versions the daemon speaks.
  z.strictObject({
    ...base,
    v: versionSchema.optional(),
    type: z.literal('hello'),
    client: z
      .string()
      .max(128, {
        error: (issue) => `has ${String(issue.input).length} characters; a client's name has at most 128`,
      })
      .optional(),
  }),
  z.strictObject({
    ...base,
    type: z.literal('trigger'),
    ...triggerFieldsSchema,
    follow: z.boolean().optional(),
    /** With `follow`, false leaves the output out: phases and the outcome only (`trigger --quiet`). */
    output: z.boolean().optional(),
    /** With `follow`, a `heartbeat` reply every HEARTBEAT_MS (src/protocol/limits.ts) while the stream is open. */
    heartbeat: z.boolean().optional(),
    /** The request text, base64 (any bytes); it reaches the agent as the file $AGENTD_REQUEST_FILE. */
    request: base64.optional(),
    /** Input files by content, base64; each reaches the agent as /agentd/input/NAME. */
    inputs: z
      .array(z.strictObject({ name: inputFileName, data: base64 }))
      .max(MAX_INPUT_FILES, { error: INPUT_FILES_RULE })
      .optional(),
  }),
  z.strictObject({ ...base, type: z.literal('status') }),
  z.strictObject({ ...base, type: z.literal('cancel'), sessionId }),
  z.strictObject({
    ...base,
    type: z.literal('logs'),
    sessionId,
    follow: z.boolean().optional(),
    /** Only the output after this sequence number: where a follower that lost its connection resumes. */
    after: z
      .number({ error: AFTER_RULE })
      .int({ error: AFTER_RULE, abort: true })
      .min(0, { error: AFTER_RULE })
      .optional(),
    /** With `follow`, a `heartbeat` reply every HEARTBEAT_MS while the stream is open. */
    heartbeat: z.boolean().optional(),
  }),
  z.strictObject({ ...base, type: z.literal('event'), event: daemonEventSchema }),
  z.strictObject({ ...base, type: z.literal('subscribe') }),
  z.strictObject({ ...base, type: z.literal('reload') }),
  z.strictObject({ ...base, type: z.literal('hosts') }),
  z.strictObject({ ...base, type: z.literal('drain'), host: hostName }),
  z.strictObject({ ...base, type: z.literal('undrain'), host: hostName }),
  z.strictObject({ ...base, type: z.literal('show'), sessionId }),
  z.strictObject({
    ...base,
    type: z.literal('wait'),
    sessionId,
    /** A `heartbeat` reply every HEARTBEAT_MS until the outcome. */
    heartbeat: z.boolean().optional(),
  }),
  z.strictObject({ ...base, type: z.literal('history'), ...historyFilterFields }),
  z.strictObject({ ...base, type: z.literal('agents') }),
]);
export type Request = z.infer<typeof requestSchema>;
export type RequestType = Request['type'];
export type RequestOf<T extends RequestType> = Extract<Request, { type: T }>;
/** A request as a client writes it: the client adds `v`. */
export type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, 'v'> : never) : never;

/** Request types that a version added; the others exist since version 1. */
export const REQUEST_SINCE: Partial<Record<RequestType, ProtocolVersion>> = {
  show: 2,
  wait: 2,
  history: 2,
  agents: 2,
  hosts: 2,
  drain: 2,
  undrain: 2,
};

export const REQUEST_TYPES = requestSchema.options.map((option) => option.shape.type.value);
