import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { IDEMPOTENCY_KEY_PATTERN, IDEMPOTENCY_KEY_RULE, MAX_BUFFERED_BYTES } from '../constants.js';
import { GrowingBuffer } from '../growing-buffer.js';
import { LogBudget } from '../log-budget.js';
import type { DaemonPort } from '../protocol/context.js';
import { outsideRepeated, REPEATED_KEY_RULE, readJson } from '../protocol/json-keys.js';
import { encodingMistake, MAX_PROBLEMS, problemsOf, shownFieldName } from '../protocol/problems.js';
import { submitTrigger } from '../protocol/submit.js';
import { RETRYABLE_REJECTIONS, type RejectionCode } from '../sessions/check-trigger.js';
import type { HistoryFilter } from '../sessions/history.js';
import { decodeBase64, type WorkPayload } from '../sessions/work.js';
import { firstNonUtf8 } from '../utf8-offset.js';
import { allows, type Tokens } from './auth.js';
import type { HostCheck } from './hosts.js';
import { logStream, MAX_STREAMS, MAX_STREAMS_PER_TOKEN } from './log-stream.js';
import { OPERATIONS, type Operation, refusesUnread, routeOf } from './operations.js';
import type { CreateSession, ErrorBody, logQuerySchema, shutdownQuerySchema } from './schemas.js';
import { SharedBudget } from './shared-budget.js';

export interface ApiMetrics {
  text(): Promise<string>;
  readonly contentType: string;
  httpRequest(method: string, route: string, status: number): void;
}

export interface ApiOptions {
  daemon: DaemonPort;
  tokens: Tokens;
  metrics: ApiMetrics;
  /** Whether the daemon is ready and Podman answers; the reason when not. */
  readiness(): Promise<{ ready: boolean; reason?: string }>;
  log: Logger;
  bodyLimitBytes: number;
  /** Bytes of request bodies held at once by all connections (BODIES_MAX_BYTES; tests make it small). */
  bodiesMaxBytes?: number;
  /** Refuses a request sent to a name the listener must not answer to (see hostCheckFor); none: any. */
  checkHost?: HostCheck;
}

/** What a handler gets: the checked path parameters, query and body. */
export interface Input {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
}

type Env = { Variables: { route: string; token: string | undefined; auth: string | undefined } };
type Handler = (c: Context<Env>, input: Input) => Response | Promise<Response>;

/** Longest request path written to the log. */
const LOGGED_PATH_MAX = 256;

/**
 * The HTTP API as a Hono app: the operations of src/http/operations.ts, each behind its token scope,
 * its body limit and its request checks; every request logged with the token's name (never its value)
 * and counted. It talks to the daemon through the same DaemonPort as the socket handlers.
 */
export function createApi(options: ApiOptions): Hono<Env> {
  const app = new Hono<Env>();
  app.use('*', observe(options));
  const { checkHost } = options;
  if (checkHost !== undefined) {
    app.use('*', async (c, next) => {
      const refused = checkHost(c.req.url, c.req.header('host'));
      if (refused !== undefined) return errorResponse(c, 421, 'wrong_host', refused);
      await next();
    });
  }
  const handlers = handlersOf(options);
  // At least one body_limit, and one token's share too: a single largest body always fits.
  const max = Math.max(options.bodiesMaxBytes ?? BODIES_MAX_BYTES, options.bodyLimitBytes);
  const bodies = new SharedBudget(max, Math.max(max / 2, options.bodyLimitBytes));
  for (const op of OPERATIONS) {
    const handler = handlers[op.id];
    if (!handler) throw new Error(`http: no handler for operation ${op.id}`);
    app.on(op.method.toUpperCase(), [routeOf(op.path)], ...middlewaresOf(op, options), async (c) => {
      const input = check(c, op, await bodyOf(c, op, options.bodyLimitBytes, bodies));
      return 'problems' in input ? input.response : handler(c, input);
    });
  }
  app.notFound((c) => {
    // The path cut as in the log: a client that sends long paths and reads no answer must not make
    // the daemon hold answers longer than its requests.
    const path = shortPathOf(c);
    // A path of the API asked with another method (RFC 9110: 405 with Allow), not "no such path".
    const allowed = allowedMethods(pathOf(c));
    if (allowed.length === 0)
      return errorResponse(
        c,
        404,
        'not_found',
        `no ${c.req.method} ${path}; the operations are in docs/openapi.json`,
      );
    const response = errorResponse(
      c,
      405,
      'method_not_allowed',
      `${path} does not take ${c.req.method}, only ${allowed.join(', ')}; the operations are in docs/openapi.json`,
    );
    response.headers.set('allow', allowed.join(', '));
    return response;
  });
  app.onError((error, c) => {
    // A client that went away mid-request (its body cut off, the request timeout) is not the daemon's
    // failure: anyone can do it as often as they like, so it is no error line with a stack.
    if (clientAborted(error)) {
      options.log.debug({ event: 'http.aborted', path: shortPathOf(c) }, 'a client went away mid-request');
      return errorResponse(c, 400, 'aborted', 'the request was cut off before its end');
    }
    options.log.error({ event: 'http.failed', err: error, path: shortPathOf(c) }, 'an HTTP request failed');
    return errorResponse(c, 500, 'internal', 'internal error; see the daemon log');
  });
  return app;
}

/** Each operation's path as a pattern (a parameter is one segment, as Hono routes it) and its methods. */
const PATH_METHODS = OPERATIONS.map((op) => ({
  pattern: new RegExp(`^${op.path.replace(/[.+*?^$()|[\]\\]/g, '\\$&').replace(/\{[a-zA-Z]+\}/g, '[^/]+')}$`),
  // Hono answers HEAD with the GET route.
  methods: op.method === 'get' ? ['GET', 'HEAD'] : [op.method.toUpperCase()],
}));

/** The methods the API answers on `path`; none when it is no operation's path. */
function allowedMethods(path: string): string[] {
  const methods = new Set<string>();
  for (const { pattern, methods: of } of PATH_METHODS) {
    if (pattern.test(path)) for (const method of of) methods.add(method);
  }
  return [...methods];
}

/** Whether an error is a client's connection ending mid-request, as Node and the stream reader report it. */
function clientAborted(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { code?: unknown; message?: unknown; name?: unknown; cause?: unknown };
  if (e.code === 'ECONNRESET' || e.code === 'ERR_STREAM_PREMATURE_CLOSE' || e.code === 'ECONNABORTED')
    return true;
  if (e.name === 'AbortError' || e.message === 'aborted') return true;
  return e.cause !== undefined && e.cause !== error && clientAborted(e.cause);
}

/**
 * Counts and logs every request when its response is ready: method, path, route, status, token name.
 * One token's requests reach the log at info up to a budget (100 at once, 10 a second); past it, at
 * debug, and a line a minute says how many: a holder of any token must not fill the host's disk.
 */
function observe(options: ApiOptions): MiddlewareHandler<Env> {
  const budget = new LogBudget((tokenName, count) =>
    options.log.info(
      { event: 'http.requests_unlogged', tokenName, count },
      `${count} request(s) of token ${tokenName} logged at debug only (more than 10 a second); agentd_http_requests_total counts them all`,
    ),
  );
  return async (c, next) => {
    const started = performance.now();
    await next();
    const route = c.get('route') ?? 'unmatched';
    const status = c.res.status;
    options.metrics.httpRequest(c.req.method, route, status);
    const token = c.get('token');
    const auth = c.get('auth');
    // Without a token (health probes, refusals) at debug: anyone who reaches the port could otherwise
    // have the daemon write a log line per request. The metric counts them all.
    const level = token !== undefined && budget.take(token) ? 'info' : 'debug';
    options.log[level](
      {
        event: 'http.request',
        method: c.req.method,
        path: shortPathOf(c),
        route,
        status,
        // Not `token`: the logger redacts fields of that name, and this is only the token's name.
        tokenName: token ?? null,
        ...(auth === undefined ? {} : { auth }),
        ms: Math.round(performance.now() - started),
        remote: remoteOf(c),
      },
      `${c.req.method} ${route} ${status}${token === undefined ? '' : ` (token ${token})`}`,
    );
  };
}

function middlewaresOf(op: Operation, options: ApiOptions): MiddlewareHandler<Env>[] {
  const route = routeOf(op.path);
  const middlewares: MiddlewareHandler<Env>[] = [
    async (c, next) => {
      c.set('route', route);
      await next();
    },
  ];
  const scope = op.scope;
  if (scope !== undefined) {
    middlewares.push(async (c, next) => {
      const auth = options.tokens.authenticate(c.req.header('authorization'));
      if (!auth.ok) {
        c.set('auth', auth.reason);
        const response = errorResponse(
          c,
          401,
          'unauthorized',
          auth.reason === 'missing'
            ? 'this needs a token: send Authorization: Bearer TOKEN'
            : auth.reason === 'malformed'
              ? 'the Authorization header is not Bearer TOKEN (a token is printable ASCII without spaces, at most 4096 characters); send Authorization: Bearer TOKEN'
              : 'the token is not one of daemon.http.tokens',
        );
        response.headers.set(
          'www-authenticate',
          auth.reason === 'missing'
            ? 'Bearer realm="agentd"'
            : 'Bearer realm="agentd", error="invalid_token"',
        );
        return response;
      }
      c.set('token', auth.caller.token);
      if (!allows(auth.caller, scope)) {
        c.set('auth', 'scope');
        return errorResponse(
          c,
          403,
          'forbidden',
          `token ${auth.caller.token} has no ${scope} scope (it has ${auth.caller.scopes.join(', ')}); give it the scope in daemon.http.tokens`,
        );
      }
      await next();
    });
  }
  if (op.body !== undefined) {
    middlewares.push(async (c, next) => {
      const type = c.req.header('content-type') ?? '';
      if (!/^application\/json\s*(;|$)/i.test(type)) {
        return errorResponse(
          c,
          415,
          'unsupported_media_type',
          `the body must be JSON: send Content-Type: application/json${type === '' ? '' : `, not ${type.slice(0, 64)}`}`,
        );
      }
      // The body is read as UTF-8 whatever it says: a Latin-1 body ("caf\xe9") reached the agent as
      // "caf\uFFFD", changed without a word. Another charset is refused, as other media types are.
      const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(type)?.[1];
      if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
        return errorResponse(
          c,
          415,
          'unsupported_media_type',
          `the body must be UTF-8: send Content-Type: application/json (or with charset=utf-8), not charset=${charset.slice(0, 32)}, and the body encoded in UTF-8`,
        );
      }
      await next();
    });
  }
  return middlewares;
}

/** Beyond the limit, this much more of a body is read and thrown away, so the client hears the 413. */
const DRAIN_MAX_BYTES = 4 * 1024 * 1024;

/**
 * The body, at most `limit` bytes of it. A larger one is not kept: the rest is read and discarded (up
 * to DRAIN_MAX_BYTES, then the connection is dropped), so a client still writing it gets the answer
 * instead of a broken pipe. Memory stays within the limit either way.
 */
async function readBody(
  c: Context<Env>,
  limit: number,
  bodies: SharedBudget,
): Promise<Buffer | { tooLarge: true; drained: boolean } | { busy: true }> {
  const declared = Number(c.req.header('content-length'));
  if (Number.isFinite(declared) && declared > limit + DRAIN_MAX_BYTES)
    return { tooLarge: true, drained: false };
  const reader = c.req.raw.body?.getReader();
  if (!reader) return Buffer.alloc(0);
  // Bodies are read only once the token is known: one token may not take the whole budget.
  const token = c.get('token') ?? '';
  // One buffer grown by doubling, its memory counted: a body sent a byte at a time took some 80 bytes
  // of the daemon's memory per byte, one object per piece, while the budget counted the bytes.
  const body = new GrowingBuffer(limit);
  let size = 0;
  let held = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit + DRAIN_MAX_BYTES) {
        await reader.cancel().catch(() => {});
        return { tooLarge: true, drained: false };
      }
      if (size > limit) continue;
      const growth = body.capacityWith(value.byteLength) - body.capacity;
      if (growth > 0 && !bodies.take(token, growth)) {
        await reader.cancel().catch(() => {});
        return { busy: true };
      }
      held += growth;
      body.append(value);
    }
    return size > limit ? { tooLarge: true, drained: true } : body.take();
  } finally {
    bodies.give(token, held);
  }
}

/**
 * Bytes of request bodies held at once by all connections while they arrive (each up to body_limit,
 * and a client may take 30 s to send one): without a bound, many slow connections with a trigger
 * token held hundreds of MiB. Beyond, a request gets 503 busy (retry). The socket's bound is the same.
 */
const BODIES_MAX_BYTES = MAX_BUFFERED_BYTES;

type Checked = Input | { problems: true; response: Response };

/** The body as JSON, or the payload_too_large or bad_json response. */
async function bodyOf(c: Context<Env>, op: Operation, limit: number, bodies: SharedBudget): Promise<Parsed> {
  if (op.body === undefined) return { body: undefined };
  const read = await readBody(c, limit, bodies);
  if ('busy' in read) {
    const response = errorResponse(
      c,
      503,
      'busy',
      `request bodies being received take what they may (${bodies.max} bytes, ${bodies.perOwner} for one token); retry`,
    );
    response.headers.set('connection', 'close');
    return { response };
  }
  if (!Buffer.isBuffer(read)) {
    const response = errorResponse(
      c,
      413,
      'payload_too_large',
      `the body is larger than ${limit} bytes (daemon.http.body_limit)`,
    );
    if (!read.drained) response.headers.set('connection', 'close');
    return { response };
  }
  const text = read.toString('utf8');
  const notUtf8At = firstNonUtf8(read);
  const mistake =
    encodingMistake(text, 'body') ??
    (notUtf8At === -1
      ? undefined
      : `the body holds bytes that are not UTF-8 (Latin-1 or another encoding?), the first at byte ${notUtf8At}, which would reach the agent as U+FFFD; send the JSON encoded in UTF-8`);
  if (mistake !== undefined) return { response: errorResponse(c, 400, 'bad_json', mistake) };
  // Bounded before JSON.parse, which takes any depth and any number of keys at a cost (src/protocol/json-keys.ts).
  const json = readJson(text, MAX_PROBLEMS);
  if ('refused' in json) {
    const problem = { path: 'body', message: json.refused };
    return {
      response: errorResponse(c, 400, 'bad_request', `invalid request: body ${problem.message}`, [problem]),
    };
  }
  if ('notJson' in json) {
    return { response: errorResponse(c, 400, 'bad_json', `the body is not JSON: ${json.notJson.message}`) };
  }
  // A key given twice: JSON.parse kept the last value, where a proxy or the client's own log may show the first.
  if (json.repeated.length === 0) return { body: json.value };
  const repeated = json.repeated.map((path) => ({
    path: ['body', ...path].map(shownFieldName).join('.'),
    message: REPEATED_KEY_RULE,
  }));
  return { body: json.value, repeated };
}

/** The body as JSON (with the keys it repeats, each a problem), or the response that refused it. */
type Parsed = { body: unknown; repeated?: { path: string; message: string }[] } | { response: Response };

/** Path parameters, query and body checked against the operation's schemas; every problem at once. */
function check(c: Context<Env>, op: Operation, parsed: Parsed): Checked {
  if ('response' in parsed) return { problems: true, response: parsed.response };
  const problems: { path: string; message: string }[] = [...(parsed.repeated ?? [])];
  const take = (where: string, schema: z.ZodType | undefined, value: unknown): unknown => {
    if (schema === undefined) return value;
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    // In the socket's words: zod's own said "Invalid input: expected string, received undefined" of
    // a field left out, where the socket says "required: string".
    for (const problem of problemsOf(result.error, []))
      problems.push({
        path: problem.path === '' ? where : `${where}.${problem.path}`,
        message: problem.message,
      });
    return undefined;
  };
  // A body an operation does not read is refused (refusesUnread), with the query's problems.
  if (op.body === undefined && refusesUnread(op) && carriesBody(c)) {
    problems.push({
      path: 'body',
      message: `${op.method.toUpperCase()} ${op.path} takes no body; ${op.noBody ?? queryInstead(op)}`,
    });
  }
  const params = take('params', op.params, c.req.param()) as Record<string, string>;
  const query = take('query', op.query, singleQuery(c, op, problems)) as Record<string, unknown>;
  const body = take('body', op.body, parsed.body);
  if (problems.length > 0) {
    // A repeated key has its one problem, not also one of the value JSON.parse kept.
    const repeated = parsed.repeated ?? [];
    const others = problems.slice(repeated.length).filter(outsideRepeated(repeated));
    const shown = [...repeated, ...others].slice(0, 100);
    const message = `invalid request: ${shown.map((p) => `${p.path}: ${p.message}`).join('; ')}; see docs/openapi.json`;
    return { problems: true, response: errorResponse(c, 400, 'bad_request', message, shown) };
  }
  return { params: params ?? {}, query: query ?? {}, body };
}

/** Where the options a body would have given go: the query's parameters, if the operation has any. */
function queryInstead(op: Operation): string {
  const names = Object.keys(op.query?.shape ?? {});
  if (names.length === 0) return 'nothing in one would be read: send none';
  return `nothing in one would be read: give ${names.map((name) => `?${name}=`).join(', ')} in the query`;
}

/** Whether a request carries a body: a Content-Length other than 0, or a Transfer-Encoding (chunked). */
function carriesBody(c: Context<Env>): boolean {
  const length = c.req.header('content-length');
  return (length !== undefined && Number(length) !== 0) || c.req.header('transfer-encoding') !== undefined;
}

/**
 * The query as one value per parameter, a parameter of the operation given more than once told instead
 * (`?limit=5&limit=500`): hono's query() answered with the first, so which one a client, a proxy or a
 * framework that appends meant was guessed in silence.
 */
function singleQuery(
  c: Context<Env>,
  op: Operation,
  problems: { path: string; message: string }[],
): Record<string, string> {
  const single: [string, string][] = [];
  const known = op.query?.shape ?? {};
  const queries = Object.entries(c.req.queries());
  // A /v1 operation without query parameters refuses them, as one with them refuses an unknown one:
  // `POST /v1/reload?dry_run=true` reloaded, `cancel?force=true` cancelled as without it (refusesUnread).
  if (op.query === undefined && refusesUnread(op)) {
    for (const [name] of queries.slice(0, MAX_PROBLEMS)) {
      problems.push({
        path: `query.${shownFieldName(name)}`,
        message: 'unknown field; this operation takes no query parameters',
      });
    }
    return {};
  }
  for (const [name, values] of queries) {
    if (values.length > 1 && Object.hasOwn(known, name)) {
      problems.push({ path: `query.${name}`, message: `given ${values.length} times; give it once` });
    } else if (values[0] !== undefined) single.push([name, values[0]]);
  }
  // fromEntries: a parameter named __proto__ is an own field (an unknown one), not the prototype.
  return Object.fromEntries(single);
}

function handlersOf(options: ApiOptions): Record<string, Handler> {
  const { daemon } = options;
  return {
    // The machine's own state (a failed one's, from its snapshot: port.ts): alive until it has failed.
    health: (c) =>
      daemon.state() === 'failed'
        ? c.json({ status: 'failed', pid: process.pid, version: daemon.version, reason: FAILED_REASON }, 503)
        : c.json({ status: 'alive', pid: process.pid, version: daemon.version }),
    ready: async (c) => {
      const { ready, reason } = await options.readiness();
      const state = daemon.state();
      return c.json(
        { status: ready ? 'ready' : 'not_ready', state, ...(reason === undefined ? {} : { reason }) },
        ready ? 200 : 503,
      );
    },
    metrics: async (c) =>
      c.body(await options.metrics.text(), 200, { 'content-type': options.metrics.contentType }),
    status: (c) => c.json(daemon.status()),
    createSession: async (c, { body }) => {
      const { request, inputs, ...fields } = body as CreateSession;
      const header = c.req.header('idempotency-key');
      if (header !== undefined && fields.key !== undefined && header !== fields.key) {
        return errorResponse(
          c,
          400,
          'bad_request',
          "the Idempotency-Key header and the body's key differ; send one",
          [{ path: 'body.key', message: 'differs from the Idempotency-Key header' }],
        );
      }
      const key = fields.key ?? header;
      if (key !== undefined && !IDEMPOTENCY_KEY_PATTERN.test(key)) {
        return errorResponse(c, 400, 'bad_request', `invalid request: key: ${IDEMPOTENCY_KEY_RULE}`, [
          { path: 'header.idempotency-key', message: IDEMPOTENCY_KEY_RULE },
        ]);
      }
      const payload = payloadOf(request, inputs);
      if ('code' in payload) {
        daemon.turnedAway?.(payload.code);
        return rejection(c, payload.code, payload.reason);
      }
      // A key is the token's own: another client's guess of it (keys are often predictable, e.g.
      // pr-43-rev-1) must neither get that client's session nor block its key.
      const scoped = key === undefined ? {} : { key: httpKey(c.get('token') ?? '', key) };
      const submitted = await submitTrigger(
        daemon,
        daemon.newSessionId(),
        { ...fields, ...scoped },
        payload.payload,
      );
      if (!submitted.accepted) return rejection(c, submitted.code, submitted.reason);
      const { accepted: _accepted, existing, ...created } = submitted;
      c.header('location', `/v1/sessions/${created.sessionId}`);
      return existing ? c.json({ ...created, existing: true }, 200) : c.json(created, 201);
    },
    listSessions: (c, { query }) => {
      const page = daemon.history(query as HistoryFilter);
      const token = c.get('token') ?? '';
      return c.json({ ...page, sessions: page.sessions.map((record) => withOwnKey(record, token)) });
    },
    getSession: (c, { params }) => {
      const record = daemon.record(params.id as string);
      return record
        ? c.json(withOwnKey(record, c.get('token') ?? ''))
        : unknownSession(c, params.id as string);
    },
    sessionLog: (c, { params, query }) => {
      const sessionId = params.id as string;
      const q = query as z.infer<typeof logQuerySchema>;
      const format = q.format ?? (/text\/event-stream/.test(c.req.header('accept') ?? '') ? 'sse' : 'ndjson');
      const lastEventId = Number(c.req.header('last-event-id'));
      const after =
        q.after ?? (format === 'sse' && Number.isInteger(lastEventId) && lastEventId > 0 ? lastEventId : 0);
      // HEAD runs this route too, and its body is never read: it must not hold a stream.
      if (c.req.method === 'HEAD') {
        // As GET answers: a session in history, or a finished one's sealed record.
        if (!daemon.readLog(sessionId) && daemon.record(sessionId)?.outcome === undefined)
          return unknownSession(c, sessionId);
        return c.body(null, 200, {
          'content-type': format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson',
          'cache-control': 'no-store',
        });
      }
      const response = logStream(daemon, sessionId, {
        after,
        follow: q.follow !== 'false',
        format,
        owner: c.get('token') ?? '',
      });
      if (response === 'busy') {
        return errorResponse(
          c,
          503,
          'busy',
          `${MAX_STREAMS} log streams are open, or ${MAX_STREAMS_PER_TOKEN} of this token's; retry when one has ended`,
        );
      }
      return response ?? unknownSession(c, sessionId);
    },
    agents: (c) => c.json({ agents: daemon.agents() }),
    cancelSession: (c, { params }) => {
      const sessionId = params.id as string;
      const [answer] = daemon.send({ type: 'cancel', sessionId });
      if (answer?.type === 'cancel.accepted') return c.json({ sessionId, wasQueued: answer.wasQueued }, 202);
      // Refused because the machine has failed (port.ts), not for want of the session: 404 said there was
      // none, while its container goes on until the next start adopts it.
      if (daemon.state() === 'failed') return failedDaemon(c);
      return errorResponse(
        c,
        404,
        'unknown_session',
        answer?.type === 'cancel.rejected' ? answer.reason : `no queued or running session ${sessionId}`,
      );
    },
    reload: async (c) => {
      // A daemon on its way out reloads nothing, and its file is not at fault: 422 said "the file is
      // invalid; the old configuration stays" of a daemon that was draining (its reload ended by the stop).
      const before = notReloading(c, daemon.state());
      if (before !== undefined) return before;
      const { type, ...result } = await daemon.reload('request');
      if (type === 'reloaded') return c.json({ type, ...result }, 200);
      return notReloading(c, daemon.state()) ?? c.json({ type, ...result }, 422);
    },
    shutdown: (c, { query }) => {
      const { mode = 'graceful' } = query as z.infer<typeof shutdownQuerySchema>;
      // A failed machine takes no event: the process exits by itself, and 202 said it would drain. As
      // /healthz answers then, from the machine's snapshot (port.ts), before and after the event.
      if (daemon.state() === 'failed') return failedDaemon(c);
      // As the socket's shutdown event: the port logs daemon.shutdown_requested, the machine decides.
      daemon.send({ type: 'shutdown', mode });
      const state = daemon.state();
      return state === 'failed' ? failedDaemon(c) : c.json({ mode, state }, 202);
    },
  };
}

/** What /healthz says of a failed daemon machine (it answers without a token: why is in the log). */
const FAILED_REASON =
  'the daemon machine failed and the process is exiting; its log says why (daemon.crashed): restart it';

/**
 * A request that a failed daemon machine cannot act on (shutdown: the process exits by itself): 503 `failed`,
 * as /healthz answers, and not retryable: a retry would reach the daemon started in its place.
 */
function failedDaemon(c: Context<Env>): Response {
  const body: ErrorBody = {
    type: 'error',
    code: 'failed',
    message: FAILED_REASON,
    problems: [],
    retryable: false,
  };
  return c.json(body, 503);
}

/** The answer to a reload asked of a daemon in `state` that cannot reload (failed, shutting down); none when it can. */
function notReloading(c: Context<Env>, state: string): Response | undefined {
  if (state === 'failed') return failedDaemon(c);
  if (state !== 'shutdown' && !state.startsWith('shutdown.')) return undefined;
  return errorResponse(
    c,
    503,
    'not_accepting',
    'the daemon is shutting down: nothing was reloaded, and the configuration file was not judged; the next start reads it',
  );
}

/** A rejected trigger: its rejection code, with the status that says whether to try again. */
function rejection(c: Context<Env>, code: RejectionCode, reason: string): Response {
  const status =
    code === 'duplicate_session' || code === 'key_conflict'
      ? 409
      : RETRYABLE_REJECTIONS.includes(code)
        ? 503
        : 422;
  return errorResponse(c, status, code, reason);
}

/** The request text (UTF-8) and input files (base64) of a POST /v1/sessions. */
function payloadOf(
  request: string | undefined,
  inputs: CreateSession['inputs'],
): { payload?: WorkPayload } | { code: RejectionCode; reason: string } {
  if (request === undefined && (inputs === undefined || inputs.length === 0)) return {};
  const payload: WorkPayload = { inputs: [] };
  if (request !== undefined) payload.request = Buffer.from(request, 'utf8');
  for (const input of inputs ?? []) {
    const bytes = decodeBase64(input.data);
    if (bytes === undefined)
      return { code: 'bad_input', reason: `input ${JSON.stringify(input.name)} is not valid base64` };
    payload.inputs.push({ name: input.name, bytes });
  }
  return { payload };
}

function unknownSession(c: Context<Env>, sessionId: string): Response {
  return errorResponse(
    c,
    404,
    'unknown_session',
    `no session ${sessionId}; GET /v1/sessions lists the known ones`,
  );
}

/** The one error shape, with the socket protocol's codes. */
export function errorResponse(
  c: Context,
  status: 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 421 | 422 | 500 | 501 | 503,
  code: string,
  message: string,
  problems: ErrorBody['problems'] = [],
): Response {
  const body: ErrorBody = { type: 'error', code, message, problems, retryable: status === 503 };
  return c.json(body, status);
}

/** The request's path, cut at LOGGED_PATH_MAX characters (it is the client's to make as long as it likes). */
function shortPathOf(c: Context): string {
  const path = pathOf(c);
  return path.length > LOGGED_PATH_MAX ? `${path.slice(0, LOGGED_PATH_MAX)}...` : path;
}

function pathOf(c: Context): string {
  try {
    return new URL(c.req.url).pathname;
  } catch {
    return c.req.path;
  }
}

function remoteOf(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    // No Node server under the request (a test calling app.request).
    return undefined;
  }
}

/** The idempotency key of an HTTP trigger as the daemon remembers it: in its token's own namespace. */
export function httpKey(token: string, key: string): string {
  return `http:${token}:${key}`;
}

/** A record as its token's client sees it: a key this token gave, as it gave it. */
function withOwnKey<R extends { key?: string | undefined }>(record: R, token: string): R {
  const own = httpKey(token, '');
  return record.key?.startsWith(own) ? { ...record, key: record.key.slice(own.length) } : record;
}
