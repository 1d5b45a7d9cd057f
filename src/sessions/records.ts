import { z } from 'zod';
import { AGENT_NAME_MAX } from '../constants.js';
import { OUTCOME_KINDS } from '../outcome-kinds.js';
import { VALUE_FORMATS, type ValueFormat } from '../value-formats.js';
import { OUTCOMES, RECORD_VERSION, RUN_PHASES, SESSION_PHASES } from './types.js';

export const outcomeSchema = z.enum(OUTCOMES);
export const phaseSchema = z.enum(SESSION_PHASES);
const digestSchema = z.object({ bytes: z.number(), sha256: z.string() });

/**
 * The string schemas refined with a test of value-formats.ts, by format: test/unit/reply-check.test.ts
 * reads it to hold the CLI's reply tables, which check these forms without zod, to the schemas.
 */
export const FORMATTED = new WeakMap<z.ZodType, ValueFormat>();

function formatted<T extends z.ZodType>(schema: T, format: ValueFormat): T {
  FORMATTED.set(schema, format);
  return schema;
}

/**
 * A record's agent is a directory of records_dir (`<records_dir>/<agent>/<session>/`): a record read
 * back from the state dir whose agent is not a name agentd takes (`../../etc`, a control character)
 * would have its session sealed (written, made 0555) wherever that path leads. Not a record agentd wrote.
 */
const agentSchema = formatted(
  z.string().refine(VALUE_FORMATS.agentName.test, {
    error: (issue) =>
      `its agent ${JSON.stringify(String(issue.input).slice(0, 64))} is not an agent name (lowercase letters, digits, _ and -, at most ${AGENT_NAME_MAX})`,
  }),
  'agentName',
);

/**
 * A time recovery counts with (the deadline of an adopted session is its start plus its timeout): one
 * that is no time would make that NaN, and an adopted session that still had minutes to run was stopped
 * at once as timed out. Not a record agentd wrote: quarantined, the session is rebuilt from its record
 * directory or its container. Every time of the protocol's replies is one too: the CLI prints them, and
 * one that is no time printed `Invalid Date` or NaN.
 */
export function timeSchema(field: string) {
  return formatted(
    z.string().refine(VALUE_FORMATS.time.test, {
      error: (issue) => `its ${field} ${JSON.stringify(String(issue.input).slice(0, 64))} is not a time`,
    }),
    'time',
  );
}

/**
 * A record's id names its files and directories (`sessions/<id>.json`, `work/<id>/`,
 * `<records_dir>/<agent>/<id>/`): a record `..json` saying id `.` was settled and sealed as
 * `<records_dir>/<agent>/.`, which made the agent's whole directory 0555, every running session's open
 * record in it taken for sealed (its log and output never kept). Not a record agentd wrote.
 */
const idSchema = formatted(
  z.string().refine(VALUE_FORMATS.sessionId.test, {
    error: (issue) =>
      `its id ${JSON.stringify(String(issue.input).slice(0, 64))} is not a session id (16 lowercase hex characters)`,
  }),
  'sessionId',
);

/** A session as written to the state dir: enough to answer `status` and to recover after a crash. */
export const sessionRecordSchema = z.object({
  version: z.literal(RECORD_VERSION),
  id: idSchema,
  agent: agentSchema,
  repo: z.string(),
  workUnit: z.string().optional(),
  // Never negative: what is left of it would be, and the adopted session stopped at once.
  timeoutMs: z
    .number()
    .refine((ms) => ms >= 0, { error: (issue) => `its timeoutMs ${String(issue.input)} is negative` })
    .optional(),
  /** Digests of what the trigger handed over; the content is in the work dir while the session runs. */
  request: digestSchema.optional(),
  inputs: z.array(digestSchema.extend({ name: z.string() })).optional(),
  /** The trigger's idempotency key. */
  key: z.string().optional(),
  acceptedAt: timeSchema('acceptedAt'),
  /** The schedule firing that made the session (ISO time); unset for a triggered one. */
  scheduledFor: timeSchema('scheduledFor').optional(),
  startedAt: timeSchema('startedAt').optional(),
  finishedAt: timeSchema('finishedAt').optional(),
  phase: phaseSchema,
  phases: z.array(z.object({ phase: phaseSchema, at: timeSchema('phases[].at') })),
  container: z.string().optional(),
  /** The image the container ran: the reference, its id and its registry digest (when it has one). */
  image: z.string().optional(),
  imageId: z.string().optional(),
  imageDigest: z.string().optional(),
  /** The commit the clone checked out. */
  commit: z.string().optional(),
  /** The session's sealed record directory: <records_dir>/<agent>/<session>/. */
  recordDir: z.string().optional(),
  /** Size of the session's /agentd/out (bytes): what its output archive is bounded by. */
  outputLimit: z.number().optional(),
  /** What the session left in /agentd/out, as its sealed record keeps it. */
  output: z
    .object({
      files: z.number(),
      bytes: z.number(),
      truncated: z.boolean(),
      skipped: z.number(),
      missing: z.string().optional(),
      damaged: z.string().optional(),
    })
    .optional(),
  /** Milliseconds per phase of the run. */
  timings: z.record(z.string(), z.number()).optional(),
  /** The host it ran on (`hosts:`; `local` without). */
  host: z.string().optional(),
  /**
   * Whether the podman call that makes the session's container (`podman run`, or `create` on a host behind
   * a connection) had been started: false from the phase creating on until it is, true from just before
   * its spawn (written synchronously first). A record at creating that says false and has no container
   * never ran its command, so recovery runs it again; one that says true and has no container may have
   * (torn down while its record lagged). Absent in a record of an older daemon, which did not say. Gone
   * once the session is requeued or finished.
   */
  containerCallStarted: z.boolean().optional(),
  /**
   * The outcome decided before the teardown began, kept while the session tears down (a cancel or
   * timeout, a failed setup, the command's exit): a daemon restarted then settles the session with it,
   * since the exited container's code alone does not say whether a stop ended it. Gone once `outcome` is set.
   */
  decided: z
    .object({
      outcome: outcomeSchema,
      kind: z.enum(OUTCOME_KINDS).optional(),
      phase: z.enum(RUN_PHASES),
      exitCode: z.number().optional(),
      signal: z.string().optional(),
      message: z.string().optional(),
    })
    .optional(),
  outcome: outcomeSchema.optional(),
  /** What the command's exit code meant (outcome kinds: the convention or the agent's exit_codes). */
  kind: z.enum(OUTCOME_KINDS).optional(),
  exitCode: z.number().optional(),
  signal: z.string().optional(),
  message: z.string().optional(),
  durationMs: z.number().optional(),
});
export type SessionRecord = z.infer<typeof sessionRecordSchema>;
