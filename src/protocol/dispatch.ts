import type { Connection } from '../adapters/socket-server.js';
import { PROTOCOL_VERSIONS, type ProtocolVersion } from '../constants.js';
import { type DaemonPort, errorReply, type Handler, type RequestHead, replyError } from './context.js';
import { handlers } from './handlers/index.js';
import { outsideRepeated, REPEATED_KEY_RULE, readJson } from './json-keys.js';
import { REQUEST_SINCE, REQUEST_TYPES, type Request, requestIdSchema, requestSchema } from './messages.js';
import {
  capped,
  encodingMistake,
  MAX_PROBLEMS,
  type Problem,
  problemsOf,
  shownFieldName,
} from './problems.js';
import { MAX_STREAMS_PER_CONNECTION, opensStream, streamAllowed } from './streams.js';

/**
 * Validates one request line and hands it to its handler; anything malformed gets an `error` reply
 * with every problem. A reply carries the request's id only when the id is valid (a client must be
 * able to match it), and is in the request's version when the daemon speaks it.
 */
export function dispatch(line: string, connection: Connection, daemon: DaemonPort, notUtf8At?: number): void {
  let checked: Checked;
  try {
    checked = check(line, notUtf8At);
  } catch (error) {
    // A bug, but the line still gets its answer: the socket server drops what a dispatch throws.
    daemon.log.error({ event: 'socket.handler_failed', err: error }, 'a request line could not be checked');
    replyError(connection, {}, 'internal', 'the daemon could not read this request line; see its log');
    return;
  }
  if (!checked.ok) {
    replyError(connection, checked.head, checked.code, checked.message, checked.problems, checked.extra);
    return;
  }
  const { request } = checked;
  // What the client speaks: replies it did not ask for (`closing`) are sent only in versions that have them.
  connection.protocol = request.v;
  if (opensStream(request) && !streamAllowed(connection)) {
    replyError(
      connection,
      request,
      'busy',
      `this connection has ${MAX_STREAMS_PER_CONNECTION} waits, follows, log reads, subscriptions and reloads not yet answered; wait for one to end, or use another connection`,
    );
    return;
  }
  try {
    (handlers[request.type] as Handler<Request['type']>)(request, connection, daemon);
  } catch (error) {
    daemon.log.error(
      { event: 'socket.handler_failed', type: request.type, err: error },
      'request handler failed',
    );
    replyError(connection, request, 'internal', `the daemon could not handle ${request.type}`);
  }
}

type Checked =
  | { ok: true; request: Request }
  | {
      ok: false;
      head: RequestHead;
      code: 'bad_json' | 'bad_request' | 'unsupported_version';
      message: string;
      problems: Problem[];
      extra?: { supported: number[] };
    };

/**
 * A request line, checked: the request, or the error it gets. Pure, so tests can table it. `notUtf8At`:
 * where the line's bytes stop being UTF-8, when they do (the socket server decoded them regardless).
 */
export function check(line: string, notUtf8At?: number): Checked {
  if (notUtf8At !== undefined) {
    // Its text fields would have reached the agent, the records and the log with U+FFFD in place of what
    // the client meant ("caf\xe9" as "caf\uFFFD"), as the HTTP API's bodies no longer do.
    const message =
      encodingMistake(line, 'line') ??
      `the line holds bytes that are not UTF-8 (Latin-1 or another encoding?), the first at byte ${notUtf8At} of the line; send the request encoded in UTF-8`;
    return { ok: false, head: headOfLine(line), code: 'bad_json', message, problems: [] };
  }
  const read = readJson(line, MAX_PROBLEMS);
  if ('refused' in read) {
    return {
      ok: false,
      head: headOf(read.head),
      code: 'bad_request',
      message: 'invalid request',
      problems: [{ path: '', message: `the request ${read.refused}` }],
    };
  }
  if ('notJson' in read) {
    const message = encodingMistake(line, 'line') ?? 'the line is not valid JSON';
    return { ok: false, head: {}, code: 'bad_json', message, problems: [] };
  }
  const parsed = read.value;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return {
      ok: false,
      head: {},
      code: 'bad_request',
      message: 'invalid request',
      problems: [{ path: '', message: 'a request is a JSON object' }],
    };
  }
  const raw = parsed as Record<string, unknown>;
  const repeated = repeatedProblems(read.repeated);
  // An id given twice is not echoed: the client could match the reply to neither request it meant.
  const head = headOf(
    raw,
    repeated.some((p) => p.path === 'id'),
  );
  if (repeated.length > 0) {
    const result = requestSchema.safeParse(parsed);
    const others = result.success
      ? []
      : problemsOf(result.error, REQUEST_TYPES).filter(outsideRepeated(repeated));
    return {
      ok: false,
      head,
      code: 'bad_request',
      message: 'invalid request',
      problems: capped([...repeated, ...others]),
    };
  }
  const version = head.v;
  if (raw.v !== undefined && version === undefined) {
    return {
      ok: false,
      head,
      code: 'unsupported_version',
      message: `protocol version ${describeVersion(raw.v)} is not supported; this daemon speaks ${PROTOCOL_VERSIONS.join(' and ')} (send hello without v to ask)`,
      problems: [{ path: 'v', message: `one of ${PROTOCOL_VERSIONS.join(', ')}` }],
      extra: { supported: [...PROTOCOL_VERSIONS] },
    };
  }
  const result = requestSchema.safeParse(parsed);
  if (result.success) {
    const tooNew = tooNewFor(result.data, version);
    if (tooNew === undefined) return { ok: true, request: result.data };
    return { ok: false, head, code: 'bad_request', message: 'invalid request', problems: [tooNew] };
  }
  // A version the daemon does not speak was answered above: a problem with v here is a missing one.
  const problems = problemsOf(result.error, REQUEST_TYPES).map((p) =>
    p.path === 'v' ? { path: 'v', message: `required: one of ${PROTOCOL_VERSIONS.join(', ')}` } : p,
  );
  return { ok: false, head, code: 'bad_request', message: 'invalid request', problems: capped(problems) };
}

/**
 * A version the daemon does not speak, as its message names it: short whatever the client sent. A string
 * of megabytes came back whole, and an array nested 100,000 deep (JSON.parse takes it) made
 * JSON.stringify throw, so the request got no reply at all.
 */
function describeVersion(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 16 ? `${v.slice(0, 16)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return Array.isArray(v) ? 'an array' : 'an object';
}

/** A request type newer than the version the request names. */
function tooNewFor(request: Request, version: ProtocolVersion | undefined): Problem | undefined {
  const since = REQUEST_SINCE[request.type];
  if (since === undefined || version === undefined || version >= since) return undefined;
  return { path: 'type', message: `${request.type} needs protocol version ${since} or later` };
}

/** The keys a line repeats (readJson's paths), as problems. */
function repeatedProblems(paths: readonly string[][]): Problem[] {
  return paths.map((path) => ({
    path: path.map(shownFieldName).join('.'),
    message: REPEATED_KEY_RULE,
  }));
}

/**
 * The id (when valid, and given once) and version (when spoken) of a request object: what a reply to it
 * repeats.
 */
function headOf(raw: Record<string, unknown>, idRepeated = false): RequestHead {
  const id =
    !idRepeated && typeof raw.id === 'string' && requestIdSchema.safeParse(raw.id).success
      ? raw.id
      : undefined;
  const version = PROTOCOL_VERSIONS.find((v) => v === raw.v);
  return { ...(id === undefined ? {} : { id }), ...(version ? { v: version } : {}) };
}

/**
 * The `busy` answer to a connection refused because too many are open: in the version and with the
 * id of its first request, when it sent one in time.
 */
export function busyReply(
  firstLine: string | undefined,
  message = 'too many connections; retry later',
): object {
  return errorReply(firstLine === undefined ? {} : headOfLine(firstLine), 'busy', message);
}

/**
 * The head of a line that gets an error before it is checked (a refused connection's first line, a line
 * that is not UTF-8): from its JSON when it is a JSON object within the bounds, with an id given once;
 * otherwise none.
 */
function headOfLine(line: string): RequestHead {
  const read = readJson(line);
  if ('refused' in read) return headOf(read.head);
  // Not JSON, or not an object: answered without an id.
  if ('notJson' in read || typeof read.value !== 'object' || read.value === null || Array.isArray(read.value))
    return {};
  const repeated = read.repeated.some((path) => path.length === 1 && path[0] === 'id');
  return headOf(read.value as Record<string, unknown>, repeated);
}
