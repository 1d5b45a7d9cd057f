import { z } from 'zod';
import { CATCH_UPS, OVERLAPS } from '../config/types.js';
import { PROTOCOL_VERSIONS } from '../constants.js';
import { agentViewSchema } from '../sessions/agent-view.js';
import { outcomeSchema, phaseSchema, sessionRecordSchema, timeSchema } from '../sessions/records.js';
import { REJECTION_CODES } from '../sessions/types.js';
import { DAEMON_STATES } from './public-state.js';
import { CLOSING_REASONS, ERROR_CODES, type ErrorCode, HOST_STATES, OUTPUT_STREAMS } from './values.js';

/**
 * Every reply the daemon sends (docs/protocol.md). The daemon's handlers build them through these types
 * and the CLI reads them through the same types, so the two cannot drift apart. Replies are open: a
 * client ignores fields it does not know (adding one is a compatible change).
 */
const sessionId = z.string();
const base = { v: z.literal(PROTOCOL_VERSIONS), id: z.string().optional() };

export { ERROR_CODES, type ErrorCode } from './values.js';
/** Errors that say "not now": the same request may succeed later. */
export const RETRYABLE_ERRORS: readonly ErrorCode[] = ['busy'];

export const problemSchema = z.object({ path: z.string(), message: z.string() });

/** What the daemon machine answered to an event, without the request id it matched it with. */
export const answerSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('trigger.accepted'),
    sessionId,
    queued: z.boolean(),
    position: z.number(),
    /** The trigger repeated an idempotency key: sessionId is the session the key's first trigger made. */
    existing: z.boolean().optional(),
  }),
  z.object({
    type: z.literal('trigger.rejected'),
    sessionId,
    code: z.enum(REJECTION_CODES),
    reason: z.string(),
  }),
  z.object({ type: z.literal('cancel.accepted'), sessionId, wasQueued: z.boolean() }),
  z.object({ type: z.literal('cancel.rejected'), sessionId, reason: z.string() }),
  z.object({ type: z.literal('reload.applied'), agents: z.array(z.string()), maxSessions: z.number() }),
  z.object({ type: z.literal('reload.rejected'), reason: z.string() }),
  z.object({ type: z.literal('drain.applied'), host: z.string(), drained: z.boolean() }),
  z.object({ type: z.literal('drain.rejected'), host: z.string(), reason: z.string() }),
]);
export type Answer = z.infer<typeof answerSchema>;

const runningSession = z.object({
  id: sessionId,
  agent: z.string(),
  repo: z.string(),
  /** The host it runs on. */
  host: z.string().optional(),
  workUnit: z.string().optional(),
  phase: phaseSchema,
  startedAt: timeSchema('startedAt'),
  elapsedMs: z.number(),
});

const queuedSession = z.object({
  id: sessionId,
  agent: z.string(),
  repo: z.string(),
  workUnit: z.string().optional(),
  position: z.number(),
  acceptedAt: timeSchema('acceptedAt'),
  waitingMs: z.number(),
});

/** An agent's schedule and its next firing, as the daemon's schedule actor has it. */
export const scheduleViewSchema = z.object({
  agent: z.string(),
  cron: z.string(),
  timezone: z.string().optional(),
  overlap: z.enum(OVERLAPS),
  catchUp: z.enum(CATCH_UPS),
  /** ISO time; absent when the expression never fires again, or the schedule failed. */
  next: timeSchema('next').optional(),
  /**
   * Set when the schedule's actor failed: why, and that it fires no more until it is tried again after
   * its backoff (retryAt), or started now by a reload.
   */
  failed: z.string().optional(),
  /** With `failed`, while the daemon is up: the restart it waits for is its attempt number `attempts`. */
  attempts: z.number().optional(),
  /** With `failed`, while the daemon is up: when it is started again (ISO). */
  retryAt: timeSchema('retryAt').optional(),
});
export type ScheduleView = z.infer<typeof scheduleViewSchema>;
/** One host as `agentd hosts` shows it. */
export const hostStatusSchema = z.object({
  name: z.string(),
  /** How agentd reaches it; absent for the local Podman. */
  url: z.string().optional(),
  /** `failed`: the daemon's supervision of the host failed; `problem` says why and what to do. */
  state: z.enum(HOST_STATES),
  drained: z.boolean(),
  running: z.number(),
  maxSessions: z.number(),
  labels: z.record(z.string(), z.string()),
  version: z.string().optional(),
  lastProbe: z
    .object({
      at: timeSchema('at'),
      ok: z.boolean(),
      ms: z.number().optional(),
      error: z.string().optional(),
    })
    .optional(),
  /** Why it is down (since when), or why it failed. */
  problem: z.string().optional(),
  downSince: timeSchema('downSince').optional(),
});
export type HostStatus = z.infer<typeof hostStatusSchema>;

const reloaded = {
  type: z.literal('reloaded'),
  file: z.string(),
  /** The agents in force and the names each change holds: at most the first 20 of each (`counts` has how many). */
  agents: z.array(z.string()),
  added: z.array(z.string()),
  changed: z.array(z.string()),
  removed: z.array(z.string()),
  /** How many agents are in force and how many each change holds. */
  counts: z.object({ agents: z.number(), added: z.number(), changed: z.number(), removed: z.number() }),
  maxSessions: z.number(),
  /** Settings that differ in the file but apply only after a restart (socket, state dir, ...). */
  restartNeeded: z.array(z.object({ key: z.string(), from: z.string(), to: z.string() })),
  message: z.string(),
};
const reloadFailed = { type: z.literal('reload_failed'), file: z.string(), message: z.string() };

/**
 * The answer to `reload` (and what SIGHUP logs): `reloaded` when the new configuration is in force,
 * `reload_failed` with every problem when the old one was kept.
 */
export const reloadReplySchema = z.discriminatedUnion('type', [z.object(reloaded), z.object(reloadFailed)]);
export type ReloadReply = z.infer<typeof reloadReplySchema>;

export const replySchema = z.discriminatedUnion('type', [
  z.object({
    ...base,
    type: z.literal('error'),
    code: z.enum(ERROR_CODES),
    message: z.string(),
    /** Every problem of a `bad_request` (empty for the other codes). */
    problems: z.array(problemSchema),
    retryable: z.boolean(),
    /** With `unsupported_version`: the versions this daemon speaks. */
    supported: z.array(z.number()).optional(),
  }),
  z.object({
    ...base,
    type: z.literal('hello'),
    /** The version of this reply: the request's, or the newest when it named none. */
    protocol: z.number(),
    /** Every version this daemon speaks, oldest first. */
    protocols: z.array(z.number()),
    version: z.string(),
    pid: z.number(),
    instanceId: z.string(),
    state: z.enum(DAEMON_STATES),
  }),
  z.object({
    ...base,
    type: z.literal('accepted'),
    sessionId,
    queued: z.boolean(),
    position: z.number(),
    existing: z.boolean().optional(),
  }),
  z.object({
    ...base,
    type: z.literal('rejected'),
    /** Version 1 only: an id that was never used. */
    sessionId: sessionId.optional(),
    code: z.enum(REJECTION_CODES),
    reason: z.string(),
    retryable: z.boolean(),
  }),
  z.object({
    ...base,
    type: z.literal('phase'),
    sessionId,
    agent: z.string().optional(),
    phase: phaseSchema,
  }),
  z.object({
    ...base,
    type: z.literal('output'),
    sessionId,
    /** The text, at most OUTPUT_LINE_MAX_BYTES; for a `skipped` marker, the marker's text. */
    line: z.string(),
    /** 1, 2, 3, ... per session; absent on a `skipped` marker. */
    seq: z.number().optional(),
    stream: z.enum(OUTPUT_STREAMS).optional(),
    /** When the daemon read the line (ISO 8601). */
    time: timeSchema('time').optional(),
    /** Continues the line before it (which was cut at the maximum line length). */
    cont: z.boolean().optional(),
    /** Present on a marker for lines this client does not get: lag, or a log trimmed to its bound. */
    skipped: z
      .object({ fromSeq: z.number(), toSeq: z.number(), count: z.number(), reason: z.string() })
      .optional(),
  }),
  /**
   * The daemon is alive: sent every HEARTBEAT_MS on a stream whose request asked for it (`heartbeat`), so
   * that a client can tell a quiet session from a daemon that hangs.
   */
  z.object({ ...base, type: z.literal('heartbeat') }),
  /** The daemon closes this connection: its client stopped reading (docs/protocol.md). The last message. */
  z.object({ ...base, type: z.literal('closing'), reason: z.enum(CLOSING_REASONS), message: z.string() }),
  z.object({
    ...base,
    type: z.literal('outcome'),
    sessionId,
    agent: z.string().optional(),
    outcome: outcomeSchema.optional(),
    record: sessionRecordSchema,
  }),
  z.object({ ...base, type: z.literal('session'), sessionId, record: sessionRecordSchema }),
  z.object({
    ...base,
    type: z.literal('history'),
    sessions: z.array(sessionRecordSchema),
    /** Records that matched beyond `limit`. */
    more: z.number(),
  }),
  z.object({ ...base, type: z.literal('agents'), agents: z.array(agentViewSchema) }),
  z.object({ ...base, type: z.literal('cancelling'), sessionId, wasQueued: z.boolean() }),
  z.object({
    ...base,
    type: z.literal('status'),
    state: z.enum(DAEMON_STATES),
    pid: z.number(),
    version: z.string(),
    instanceId: z.string(),
    socket: z.string(),
    uptimeMs: z.number(),
    /**
     * While `state` is `degraded`: why (the write that failed, its errno, the fix). Also while the daemon's
     * own log cannot be written (stderr took no writes for a second or more), whatever the state.
     */
    degraded: z.string().optional(),
    /** While `state` is `failed` (the daemon machine stopped on an error and the daemon exits): why. */
    failed: z.string().optional(),
    /**
     * Hosts whose supervision failed: why; no new sessions go there until its new actor, started after
     * a backoff (`retryAt`, restart number `attempts`; absent while shutting down) or by a reload, has
     * reconciled it.
     */
    failedHosts: z
      .array(
        z.object({
          name: z.string(),
          problem: z.string(),
          attempts: z.number().optional(),
          retryAt: timeSchema('retryAt').optional(),
        }),
      )
      .optional(),
    /**
     * While the daemon is up (`ready` or `degraded`) but no Podman host answers its probes: which hosts and
     * their states; sessions wait in the queue until one answers (`agentd hosts` says why).
     */
    noHost: z.string().optional(),
    /**
     * Finished sessions whose sealed record waits for room (their output and log held in the state dir's
     * work dir until it can be sealed; the log's `session.record_unsealed` says why): how many, and the
     * one that ended first (`oldest`, its `finishedAt` and how long ago that was, `waitingMs`). Absent
     * when none waits.
     */
    unsealed: z
      .object({
        count: z.number(),
        oldest: z.string(),
        oldestFinishedAt: timeSchema('oldestFinishedAt').optional(),
        waitingMs: z.number().optional(),
      })
      .optional(),
    maxSessions: z.number(),
    running: z.array(runningSession),
    queued: z.array(queuedSession),
    recent: z.array(sessionRecordSchema),
    schedules: z.array(scheduleViewSchema).optional(),
  }),
  z.object({
    ...base,
    type: z.literal('event.result'),
    event: z.looseObject({ type: z.string() }),
    answers: z.array(answerSchema),
    state: z.enum(DAEMON_STATES),
  }),
  z.object({
    ...base,
    type: z.literal('state'),
    state: z.enum(DAEMON_STATES),
    running: z.array(z.object({ id: sessionId, agent: z.string(), phase: phaseSchema })),
    queued: z.array(sessionId),
  }),
  z.object({ ...base, ...reloaded }),
  z.object({ ...base, ...reloadFailed }),
  z.object({ ...base, type: z.literal('hosts'), hosts: z.array(hostStatusSchema) }),
  z.object({ ...base, type: z.literal('drained'), host: z.string(), drained: z.boolean() }),
]);

export type Reply = z.infer<typeof replySchema>;
export type ReplyType = Reply['type'];
export type ReplyOf<T extends ReplyType> = Extract<Reply, { type: T }>;
/** A reply as a handler writes it: `v` and `id` are added by `reply()`. */
export type ReplyBody = Reply extends infer R ? (R extends Reply ? Omit<R, 'v' | 'id'> : never) : never;
export type StatusReply = ReplyOf<'status'>;
