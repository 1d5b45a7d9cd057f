import type { DaemonPort } from '../protocol/context.js';
import { sealedLogHint } from '../protocol/sealed-log.js';
import type { LogSource, OutputLine, SkippedLines } from '../runner/session-log.js';
import type { SessionRecord } from '../sessions/records.js';
import type { BusEvent } from '../sessions/session-bus.js';
import type { LogEvent } from './schemas.js';
import { SharedBudget } from './shared-budget.js';

export type LogFormat = 'sse' | 'ndjson';

export interface LogStreamOptions {
  /** Lines up to this sequence number are not sent (a resumed stream). */
  after: number;
  follow: boolean;
  format: LogFormat;
  /** Whose stream it is (the token's name): one holder opens at most MAX_STREAMS_PER_TOKEN. */
  owner?: string;
}

/** Bytes a client may leave unread before its stream ends with `lagging` (it resumes with `after`). */
export const LAG_LIMIT_BYTES = 1024 * 1024;
/**
 * Log streams open at once; more are answered `busy`. Each holds at most its high-water mark, LAG_LIMIT
 * and one `lagging` event unread: about 68 MiB for all of them.
 */
export const MAX_STREAMS = 64;
/** ... of which one token holds at most this many: one reader that never reads cannot take them all. */
export const MAX_STREAMS_PER_TOKEN = 16;

/** Log streams open now, in all and by token. */
const streams = new SharedBudget(MAX_STREAMS, MAX_STREAMS_PER_TOKEN);
/** An SSE comment this often keeps idle streams open through proxies. */
const KEEPALIVE_MS = 15_000;

const encoder = new TextEncoder();

/**
 * A session's log as a stream of events: the stored lines after `after`, then (when following a session
 * that has not ended) its phases and output as they happen and its outcome last. The stored lines go out
 * as the client reads them (a block at a time), so a long log costs a client that reads little nothing
 * but a block; once they are out, reading what came meanwhile and subscribing happen in one tick, so no
 * line is missed or sent twice. A line's `seq` is its number in the session's log. Memory per client is
 * bounded: one that leaves more than LAG_LIMIT_BYTES of live output unread gets `lagging` and the end,
 * and resumes from the last `seq` it read. Undefined: no such session.
 */
export function logStream(
  daemon: DaemonPort,
  sessionId: string,
  options: LogStreamOptions,
): Response | 'busy' | undefined {
  const owner = options.owner ?? '';
  if (!streams.take(owner, 1)) return 'busy';
  const stored = daemon.readLog(sessionId);
  if (!stored) {
    streams.give(owner, 1);
    // Beyond history, a finished session has its record and log in its sealed record directory (as
    // GET /v1/sessions/{id} finds it): its outcome, and where the log is, instead of "no session".
    const sealed = daemon.record(sessionId);
    if (sealed?.outcome === undefined) return undefined;
    return response(encode(outcomeEvent(sealed, 'is beyond daemon.history'), options.format), options.format);
  }
  /** The newest line sent. */
  let seq = options.after;
  let keepalive: NodeJS.Timeout | undefined;
  let unfollow: (() => void) | undefined;
  let reader: LogSource | undefined = stored.reader(options.after);
  let counted = true;
  const stop = () => {
    reader?.close();
    reader = undefined;
    unfollow?.();
    unfollow = undefined;
    if (keepalive) clearInterval(keepalive);
    if (counted) streams.give(owner, 1);
    counted = false;
  };
  let open = true;
  let control: ReadableStreamDefaultController<Uint8Array> | undefined;
  const end = () => {
    if (!open) return;
    open = false;
    stop();
    control?.close();
  };
  const send = (event: LogEvent) => {
    if (!open || !control) return;
    const bytes = encode(event, options.format);
    // Judged before the event goes in: what is unread never passes LAG_LIMIT (a 64 KiB line of control
    // characters is 384 KiB of JSON).
    if ((control.desiredSize ?? 0) - bytes.byteLength >= -LAG_LIMIT_BYTES) control.enqueue(bytes);
    else {
      // What was not sent (a line, or the notice of a gap) is the first a resumed stream sends.
      const after =
        event.type === 'output' ? event.seq - 1 : event.type === 'skipped' ? event.fromSeq - 1 : seq;
      control.enqueue(
        encode(
          {
            type: 'lagging',
            after,
            message: `the client read too slowly; the stream ends here: resume with after=${after}`,
          },
          options.format,
        ),
      );
      end();
    }
  };
  const output = (line: OutputLine) => {
    // Read from the log and then live: a line may come twice, it is sent once.
    if (line.seq <= seq) return;
    seq = line.seq;
    send({
      type: 'output',
      seq: line.seq,
      line: line.text,
      stream: line.stream,
      time: line.time,
      ...(line.cont ? { cont: true } : {}),
    });
  };
  const entry = (item: OutputLine | SkippedLines) => {
    if (!('count' in item)) output(item);
    else {
      seq = Math.max(seq, item.toSeq);
      send({ type: 'skipped', ...item });
    }
  };
  const forward = (event: BusEvent) => {
    if (event.type === 'output') for (const line of event.lines) output(line);
    else if (event.type === 'phase') {
      if (event.phase !== 'queued') send({ type: 'phase', phase: event.phase });
    } else {
      send({ type: 'outcome', record: event.record });
      end();
    }
  };
  /** The stored lines are out: what came meanwhile, then (following) live, in one tick. */
  const caughtUp = () => {
    const now = daemon.readLog(sessionId);
    if (!now) {
      // History let go of the session while its lines went out (it ended meanwhile): as the socket's
      // `logs`, the outcome from the record read before or the sealed one; without one an error, so a
      // client never takes the end of the stream for a session still running.
      const last =
        stored.record.outcome === undefined ? (daemon.record(sessionId) ?? stored.record) : stored.record;
      send(
        last.outcome !== undefined
          ? outcomeEvent(last, 'left daemon.history while its log was sent')
          : {
              type: 'error',
              code: 'unknown_session',
              message: `session ${sessionId} is no longer kept (it left daemon.history while its log was sent) and its outcome is not known; GET /v1/sessions/${sessionId} shows its sealed record if one is kept`,
            },
      );
      end();
      return;
    }
    const following = options.follow && now.record.outcome === undefined;
    if (following) unfollow = daemon.follow(sessionId, forward);
    const rest = now.reader(seq);
    for (let entries = rest.next(); open && entries !== undefined; entries = rest.next()) {
      for (const item of entries) entry(item);
    }
    rest.close();
    if (!following) {
      if (now.record.outcome !== undefined) send({ type: 'outcome', record: now.record });
      end();
      return;
    }
    if (open && options.format === 'sse') {
      keepalive = setInterval(
        () => open && control?.enqueue(encoder.encode(': keepalive\n\n')),
        KEEPALIVE_MS,
      );
      keepalive.unref();
    }
  };
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        control = controller;
      },
      // The stored lines, as far as the client has room for them.
      pull(controller) {
        try {
          while (open && reader !== undefined && (controller.desiredSize ?? 0) > 0) {
            const entries = reader.next();
            if (entries === undefined) {
              reader.close();
              reader = undefined;
              caughtUp();
              return;
            }
            for (const item of entries) entry(item);
          }
        } catch (error) {
          // A stream that errors is not cancelled: its reader, follow and place among MAX_STREAMS are
          // given back here, or each such stream would hold them for the daemon's life.
          open = false;
          stop();
          throw error;
        }
      },
      cancel: stop,
    },
    { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
  );
  return response(body, options.format);
}

function response(body: ReadableStream<Uint8Array> | Uint8Array, format: LogFormat): Response {
  return new Response(body, {
    headers: {
      'content-type': format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    },
  });
}

/**
 * A finished session's outcome; for one whose record is in its sealed record directory (not in
 * history), where its log is: the stream has not sent (all of) it.
 */
function outcomeEvent(record: SessionRecord, why: string): LogEvent {
  if (record.recordDir === undefined) return { type: 'outcome', record };
  return {
    type: 'outcome',
    record,
    message: `session ${record.id} ${why}: ${sealedLogHint(record.id, record.recordDir)}`,
  };
}

/**
 * The SSE `event:` name of an `error` event. A browser's EventSource hands an event named `error` to
 * `onerror`, the handler of a failed connection, where a client could not tell them apart (and would
 * reconnect to a stream that has ended for good).
 */
export const SSE_ERROR_EVENT = 'problem';

function encode(event: LogEvent, format: LogFormat): Uint8Array {
  const data = JSON.stringify(event);
  if (format === 'ndjson') return encoder.encode(`${data}\n`);
  const id = event.type === 'output' ? `id: ${event.seq}\n` : '';
  const name = event.type === 'error' ? SSE_ERROR_EVENT : event.type;
  return encoder.encode(`${id}event: ${name}\ndata: ${data}\n\n`);
}
