import { z } from 'zod';
import { MAX_INPUT_FILES, MAX_REQUEST_BYTES, SESSION_ID_PATTERN, SHUTDOWN_MODES } from '../constants.js';
import {
  AFTER_RULE,
  historyFilterFields,
  INPUT_FILES_RULE,
  inputFileName,
  LIMIT_RULE,
} from '../protocol/messages.js';
import { DAEMON_STATES } from '../protocol/public-state.js';
import { reloadReplySchema, replySchema } from '../protocol/replies.js';
import { OUTPUT_STREAMS } from '../protocol/values.js';
import { triggerFieldsSchema } from '../sessions/check-trigger.js';
import { HISTORY_MAX_LIMIT } from '../sessions/history.js';
import { sessionRecordSchema } from '../sessions/records.js';

/**
 * The HTTP API's bodies, as zod schemas: requests are checked with them, and docs/openapi.json is
 * generated from them (src/http/openapi.ts), so the document cannot drift from the server. Bodies are
 * the socket protocol's replies without its `v` and `id`.
 */

/** A socket protocol reply's body, by its type, without `v`, `id` (and `type` unless kept). */
function replyBody(type: string): z.ZodObject {
  const option = replySchema.options.find((o) => o.shape.type.value === type);
  if (!option) throw new Error(`no reply of type ${type}`);
  // The union's members differ in shape, so TypeScript cannot call omit on the union: one member is meant.
  return (option as unknown as z.ZodObject).omit({ v: true, id: true, type: true });
}

export const sessionIdParam = z.object({
  id: z.string().regex(SESSION_ID_PATTERN, 'a session id is 16 lowercase hex characters'),
});

/** The one error shape of every failed request, with the socket protocol's codes. */
export const errorSchema = z.object({
  type: z.literal('error'),
  /** A stable code: the socket protocol's (`bad_request`, `unknown_session`, a rejection code ...) or an HTTP one (`unauthorized`, `forbidden`, `not_found`, `payload_too_large`, `unsupported_media_type`, `aborted`). */
  code: z.string(),
  message: z.string(),
  /** Every problem of a bad request: where (`body.agent`, `query.limit`) and what. */
  problems: z.array(z.object({ path: z.string(), message: z.string() })),
  /** The same request may succeed later (the daemon was busy, starting or degraded). */
  retryable: z.boolean(),
});
export type ErrorBody = z.infer<typeof errorSchema>;

export const healthSchema = z.object({
  /** `failed`: the daemon machine stopped on an error, and the process is exiting (503). */
  status: z.enum(['alive', 'failed']),
  pid: z.number(),
  version: z.string(),
  /** While `failed`: what to do (why is in the log, `daemon.crashed`; this answers without a token). */
  reason: z.string().optional(),
});
export const readySchema = z.object({
  status: z.enum(['ready', 'not_ready']),
  /** The daemon machine's state as clients see it (`ready`, `degraded`, `opening`, `shutdown.draining`, `failed`). */
  state: z.enum(DAEMON_STATES),
  /** Why it is not ready. */
  reason: z.string().optional(),
});

export const statusSchema = replyBody('status');
export const recordSchema = sessionRecordSchema;

/** POST /v1/sessions: the socket `trigger`'s fields (`key`: an idempotency key), the request as text. */
export const createSessionSchema = z.strictObject({
  ...triggerFieldsSchema,
  /** The request text (UTF-8); it reaches the agent as the file $AGENTD_REQUEST_FILE. */
  request: z.string().max(MAX_REQUEST_BYTES).optional(),
  /** Input files by content, base64; each reaches the agent as /agentd/input/NAME. */
  inputs: z
    .array(
      z.strictObject({
        name: inputFileName,
        data: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'),
      }),
    )
    .max(MAX_INPUT_FILES, { error: INPUT_FILES_RULE })
    .optional(),
});
export type CreateSession = z.infer<typeof createSessionSchema>;

export const createdSchema = z.object({
  sessionId: z.string(),
  /** Waiting for a slot, at `position` (1-based); 0 when it started at once. */
  queued: z.boolean(),
  position: z.number(),
  /** The idempotency key was used before: this is the session its first trigger made (200, not 201). */
  existing: z.boolean().optional(),
});

/** Decimal digits, without a sign, a space or a leading zero: how a whole number is written in a query. */
const DECIMAL_DIGITS = /^(?:0|[1-9][0-9]*)$/;

/**
 * A whole number in a query parameter, written in decimal digits only. z.coerce's Number() took
 * `?limit=0x10` for 16, `1e1` for 10, `0b11` for 3, ` 5`, `+5`, `5.0` and `05` for 5, and an empty
 * `?after=` for 0: a client's mistake (or a proxy's rewriting) got an answer to another question. The
 * document keeps it an integer with its bounds (a refine adds no `pattern`).
 */
function queryWholeNumber(rule: string, example: number, min: number, max: number) {
  const form = `${rule}, in decimal digits only (like ${example}: no sign, space, leading zero, decimal point, exponent or 0x)`;
  return z
    .string()
    .refine((text) => DECIMAL_DIGITS.test(text), { error: form, abort: true })
    .transform(Number)
    .pipe(z.number().int({ error: rule, abort: true }).min(min, { error: rule }).max(max, { error: rule }))
    .meta({ type: 'integer', minimum: min, maximum: max, description: `${rule}, in decimal digits` });
}

/** GET /v1/sessions: the `history` request's filters, as query parameters. */
export const historyQuerySchema = z.strictObject({
  ...historyFilterFields,
  limit: queryWholeNumber(LIMIT_RULE, 50, 1, HISTORY_MAX_LIMIT).optional(),
});
export const historySchema = replyBody('history');
export const agentsSchema = replyBody('agents');

/** GET /v1/sessions/{id}/log: where to resume, whether to follow, which format. */
export const logQuerySchema = z.strictObject({
  /** Send only lines after this sequence number (a resumed stream's last `seq`; SSE: Last-Event-ID). */
  after: queryWholeNumber(AFTER_RULE, 120, 0, Number.MAX_SAFE_INTEGER).optional(),
  /** `false`: what is stored, then the outcome if there is one, and the end; default: until the outcome. */
  follow: z.enum(['true', 'false']).optional(),
  /** `sse` (text/event-stream) or `ndjson` (application/x-ndjson); default: from Accept, else ndjson. */
  format: z.enum(['sse', 'ndjson']).optional(),
});

/** One event of a log stream: an NDJSON line, or an SSE event's data (its `event:` is the type). */
export const logEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('output'),
    /** 1, 2, 3 ... within the session's stored log: resume after it. */
    seq: z.number(),
    line: z.string(),
    /** stdout, stderr, or agentd (a line agentd adds). */
    stream: z.enum(OUTPUT_STREAMS).optional(),
    /** When the daemon read the line (ISO 8601). */
    time: z.string().optional(),
    /** Continues the line before it: no line is longer than 64 KiB. */
    cont: z.boolean().optional(),
  }),
  /** Lines the stream does not have (the bounded log was trimmed, or never had them): one event per gap. */
  z.object({
    type: z.literal('skipped'),
    fromSeq: z.number(),
    toSeq: z.number(),
    count: z.number(),
    reason: z.string(),
  }),
  z.object({ type: z.literal('phase'), phase: z.string() }),
  z.object({
    type: z.literal('outcome'),
    record: sessionRecordSchema,
    /**
     * Why lines may be missing before it: the session is beyond daemon.history, and its log is in its
     * sealed record (the file named; `agentd export` packs it).
     */
    message: z.string().optional(),
  }),
  /** The stream ends without the outcome: the session is no longer kept (daemon.history let go of it). */
  z.object({ type: z.literal('error'), code: z.literal('unknown_session'), message: z.string() }),
  /** The client read too slowly: the stream ends here; resume with `after`. */
  z.object({ type: z.literal('lagging'), after: z.number(), message: z.string() }),
]);
export type LogEvent = z.infer<typeof logEventSchema>;

export const cancelledSchema = z.object({ sessionId: z.string(), wasQueued: z.boolean() });

export const reloadSchema = reloadReplySchema;

/** `POST /v1/shutdown?mode=`: `graceful` (the default, `agentd stop`) or `force` (`agentd stop --force`). */
export const shutdownQuerySchema = z.strictObject({ mode: z.enum(SHUTDOWN_MODES).optional() });

export const shutdownSchema = z.object({
  /** What was asked for. */
  mode: z.enum(SHUTDOWN_MODES),
  /** The daemon's state once it took the shutdown: `shutdown.draining` (it exits once nothing runs). */
  state: z.enum(DAEMON_STATES),
});
