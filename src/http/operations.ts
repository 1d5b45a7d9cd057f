import type { z } from 'zod';
import type { HttpScope } from '../config/http.js';
import {
  agentsSchema,
  cancelledSchema,
  createdSchema,
  createSessionSchema,
  errorSchema,
  healthSchema,
  historyQuerySchema,
  historySchema,
  logEventSchema,
  logQuerySchema,
  readySchema,
  recordSchema,
  reloadSchema,
  sessionIdParam,
  shutdownQuerySchema,
  shutdownSchema,
  statusSchema,
} from './schemas.js';

/** How a response body is written. */
export type ContentKind = 'json' | 'prometheus' | 'sse' | 'ndjson';

export interface ResponseSpec {
  description: string;
  content: ContentKind;
  /** Other media types of the same events (a log stream: SSE as well as NDJSON). */
  alsoAs?: ContentKind[];
  schema?: z.ZodType;
}

/**
 * One operation of the HTTP API, as data: the server routes and checks requests by it, and the OpenAPI
 * document is generated from it. Error responses (the Error schema) are added from `scope` and `body`.
 */
export interface Operation {
  id: string;
  method: 'get' | 'post';
  /** OpenAPI style: `/v1/sessions/{id}`. */
  path: string;
  summary: string;
  description?: string;
  /** The scope a token needs; none: no token needed. */
  scope?: HttpScope;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  responses: Record<number, ResponseSpec>;
  /** Error statuses this operation answers besides the ones its scope and body imply. */
  errors?: number[];
  /** Told to a client that sends this operation (one without `body`) a body: where its options go instead. */
  noBody?: string;
}

export const OPERATIONS: readonly Operation[] = [
  {
    id: 'health',
    method: 'get',
    path: '/healthz',
    summary: 'The process is alive',
    description:
      'No token needed. 200 as long as the daemon process runs and its machine has not failed, whatever its state (starting, degraded, shutting down); 503 `failed` once the daemon machine stopped on an error and the process is exiting (its last records and sweeps), with what to do.',
    responses: {
      200: { description: 'alive', content: 'json', schema: healthSchema },
      503: { description: 'failed: the process is exiting', content: 'json', schema: healthSchema },
    },
  },
  {
    id: 'ready',
    method: 'get',
    path: '/readyz',
    summary: 'The daemon accepts sessions and Podman answers',
    description:
      'No token needed. 200 when the daemon machine is `ready` and at least one Podman host answered its last probe; 503 otherwise (starting, degraded, shutting down, no host answering), with the reason (each host by name and state).',
    responses: {
      200: { description: 'ready', content: 'json', schema: readySchema },
      503: { description: 'not ready, with the reason', content: 'json', schema: readySchema },
    },
  },
  {
    id: 'metrics',
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics',
    description: 'The Prometheus text format; every metric is listed in docs/metrics.md.',
    scope: 'read',
    responses: { 200: { description: 'metrics', content: 'prometheus' } },
  },
  {
    id: 'status',
    method: 'get',
    path: '/v1/status',
    summary: 'Daemon status',
    description:
      'What `agentd status` shows: state, running and queued sessions, recent outcomes, schedules and their next firing.',
    scope: 'read',
    responses: { 200: { description: 'status', content: 'json', schema: statusSchema } },
  },
  {
    id: 'createSession',
    method: 'post',
    path: '/v1/sessions',
    summary: 'Trigger a session',
    description:
      'The socket `trigger`: an agent, optionally a repository, work unit, timeout, request text, input files and an idempotency key (`key`, or the Idempotency-Key header). 201 with the session id when accepted (queued or started); 200 with `existing` when the key was used before by the same token (its first session, nothing new is made; keys are per token); an error with the rejection code (`unknown_agent`, `no_repo`, `bad_repo`, `key_conflict`, `not_accepting`, `state_dir_full` ...) otherwise.',
    scope: 'trigger',
    body: createSessionSchema,
    responses: {
      201: { description: 'accepted', content: 'json', schema: createdSchema },
      200: {
        description: 'the idempotency key was used before: its session',
        content: 'json',
        schema: createdSchema,
      },
    },
    errors: [409, 422, 503],
  },
  {
    id: 'listSessions',
    method: 'get',
    path: '/v1/sessions',
    summary: 'Session history',
    description:
      'Kept session records (finished ones up to daemon.history, and every unfinished one) that match every filter, newest accepted first; `more` says how many matched beyond `limit`.',
    scope: 'read',
    query: historyQuerySchema,
    responses: { 200: { description: 'the matching records', content: 'json', schema: historySchema } },
  },
  {
    id: 'getSession',
    method: 'get',
    path: '/v1/sessions/{id}',
    summary: 'One session',
    description: 'Its record: queued, running or finished.',
    scope: 'read',
    params: sessionIdParam,
    responses: { 200: { description: 'the session record', content: 'json', schema: recordSchema } },
    errors: [404],
  },
  {
    id: 'sessionLog',
    method: 'get',
    path: '/v1/sessions/{id}/log',
    summary: "A session's output, streamed",
    description:
      "The stored output after `after` (or SSE Last-Event-ID), then, while the session runs, its phases and output as they happen, and its outcome last. Server-Sent Events (each event's `id` is the line's `seq`) or NDJSON, one event per line. A client that leaves 1 MiB unread gets a `lagging` event and the end: resume with `after`. A finished session beyond daemon.history gets its outcome alone, whose `message` names its log in its sealed record; one history lets go of while its stream is sent ends with its outcome likewise, or an `error` event (`unknown_session`; in SSE `event: problem`, since a browser's EventSource hands an event named error to onerror) when none is known. At most 64 streams are open at once, 16 per token (503 busy beyond).",
    scope: 'read',
    params: sessionIdParam,
    query: logQuerySchema,
    responses: {
      200: {
        description:
          'the stream of log events: NDJSON lines, or SSE events whose `event:` is the type (`problem` for `error`) and `data:` the event',
        content: 'ndjson',
        alsoAs: ['sse'],
        schema: logEventSchema,
      },
    },
    errors: [404, 503],
  },
  {
    id: 'cancelSession',
    method: 'post',
    path: '/v1/sessions/{id}/cancel',
    summary: 'Cancel a queued or running session',
    description:
      'A queued session leaves the queue at once; a running one is stopped and torn down, and ends `cancelled`. 503 `failed` (not retryable) once the daemon machine has failed, as /healthz answers: nothing can be cancelled, and the next start adopts what runs.',
    scope: 'cancel',
    params: sessionIdParam,
    responses: {
      202: { description: 'cancelling', content: 'json', schema: cancelledSchema },
      503: {
        description:
          'failed (code `failed`, not retryable): the daemon machine failed and the process is exiting',
        content: 'json',
        schema: errorSchema,
      },
    },
    errors: [404],
  },
  {
    id: 'agents',
    method: 'get',
    path: '/v1/agents',
    summary: 'The configured agents',
    description:
      'As `agentd agents`: what each runs, its limits, where its credentials come from (never a value), what its sessions reach on the host side (the hosts they may run on, user namespace, mounts, context, caches, its own webhooks), its schedule and next firing.',
    scope: 'read',
    responses: { 200: { description: 'the agents', content: 'json', schema: agentsSchema } },
  },
  {
    id: 'reload',
    method: 'post',
    path: '/v1/reload',
    summary: 'Re-read the configuration file',
    description:
      'As `agentd reload` or SIGHUP. 200 with what changed; 422 when the file is invalid (nothing changed); 503 to a daemon that cannot reload: `not_accepting` while it shuts down (a stop ends a reload under way), `failed` (not retryable) once its machine has failed, as /healthz answers.',
    scope: 'admin',
    responses: {
      200: { description: 'reloaded', content: 'json', schema: reloadSchema },
      422: {
        description: 'the file is invalid; the old configuration stays',
        content: 'json',
        schema: reloadSchema,
      },
      503: {
        description:
          'the daemon cannot reload: `not_accepting` while it shuts down, `failed` (not retryable) once its machine has failed; nothing changed',
        content: 'json',
        schema: errorSchema,
      },
    },
  },
  {
    id: 'shutdown',
    method: 'post',
    path: '/v1/shutdown',
    summary: 'Shut the daemon down',
    description:
      "As `agentd stop` (`?mode=graceful`, the default) or `agentd stop --force` (`?mode=force`), decided by the daemon in one step whatever shutdown came before: graceful drains a daemon not draining yet (queued sessions end `cancelled`, running ones finish, new triggers are refused) and changes nothing in one that is, so it never cancels a session; force cancels the running sessions, draining first if it was not. It takes no body (one is refused: a mode there would not be read). 202 at once with the state it left the daemon in (503 `failed` to a daemon whose machine failed, as /healthz answers: it is exiting by itself); the daemon exits 0 once nothing runs, and this API closes with it (poll /healthz until it no longer answers). A daemon that exits 0 is not restarted by systemd's `Restart=on-failure`: a token with this scope can stop the service until someone starts it.",
    scope: 'admin',
    query: shutdownQuerySchema,
    noBody: 'give the mode as ?mode=force or ?mode=graceful',
    responses: {
      202: { description: 'shutting down', content: 'json', schema: shutdownSchema },
      503: {
        description:
          'failed (code `failed`, not retryable): the daemon machine failed and the process is exiting by itself, as /healthz says; nothing was sent',
        content: 'json',
        schema: errorSchema,
      },
    },
  },
];

/** Hono's route syntax for an OpenAPI path: `/v1/sessions/:id`. */
export function routeOf(path: string): string {
  return path.replace(/\{([a-zA-Z]+)\}/g, ':$1');
}

/**
 * Whether the operation refuses what it does not read: a query parameter it does not take, and a body when
 * it takes none (`POST /v1/reload?dry_run=true` reloaded, `{"mode":"force"}` to /v1/shutdown drained, a
 * body's options dropped in silence). /healthz, /readyz and /metrics take what probes and scrapers add.
 */
export function refusesUnread(op: Operation): boolean {
  return op.path.startsWith('/v1/');
}

/** Statuses every operation may answer with the Error schema, from its scope and body. */
export function errorStatuses(op: Operation): number[] {
  const statuses = new Set<number>(op.errors ?? []);
  if (op.scope !== undefined) {
    statuses.add(401);
    statuses.add(403);
  }
  if (op.body !== undefined || op.params !== undefined || op.query !== undefined || refusesUnread(op))
    statuses.add(400);
  if (op.body !== undefined) {
    statuses.add(413);
    statuses.add(415);
  }
  statuses.add(500);
  return [...statuses].filter((s) => !(s in op.responses)).sort();
}

export type Params<O extends Operation> = O['params'] extends z.ZodObject ? z.infer<O['params']> : undefined;
