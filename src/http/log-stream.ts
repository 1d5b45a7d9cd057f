import type { DaemonPort } from '../protocol/context.js';
import type { OutputLine } from '../runner/session-log.js';
import type { BusEvent } from '../sessions/session-bus.js';
import type { LogEvent } from './schemas.js';

export type LogFormat = 'sse' | 'ndjson';

export interface LogStreamOptions {
  /** Lines up to this sequence number are not sent (a resumed stream). */
  after: number;
  follow: boolean;
  format: LogFormat;
}

/** Bytes a client may leave unread before its stream ends with `lagging` (it resumes with `after`). */
export const LAG_LIMIT_BYTES = 1024 * 1024;
/** Log streams open at once; more are answered `busy`: together they hold at most this many LAG_LIMITs. */
export const MAX_STREAMS = 64;

/** Log streams open now. */
let streams = 0;
/** An SSE comment this often keeps idle streams open through proxies. */
const KEEPALIVE_MS = 15_000;

const encoder = new TextEncoder();

/**
 * A session's log as a stream of events: the stored lines after `after`, then (when following a session
 * that has not ended) its phases and output as they happen and its outcome last. Reading the stored
 * lines and subscribing happen in one tick, so no line is missed or sent twice; a line's `seq` is its
 * number in the session's log. Memory per client is bounded: one that leaves more than LAG_LIMIT_BYTES
 * unread gets `lagging` and the end, and resumes from the last `seq` it read. Undefined: no such session.
 */
export function logStream(
  daemon: DaemonPort,
  sessionId: string,
  options: LogStreamOptions,
): Response | 'busy' | undefined {
  if (streams >= MAX_STREAMS) return 'busy';
  const early: BusEvent[] = [];
  let live: ((event: BusEvent) => void) | undefined;
  let unfollow = options.follow
    ? daemon.follow(sessionId, (event) => (live ? live(event) : early.push(event)))
    : undefined;
  const stored = daemon.readLog(sessionId);
  if (!stored) {
    unfollow?.();
    return undefined;
  }
  /** The newest line sent. */
  let seq = options.after;
  let keepalive: NodeJS.Timeout | undefined;
  streams++;
  let counted = true;
  const stop = () => {
    unfollow?.();
    unfollow = undefined;
    if (keepalive) clearInterval(keepalive);
    if (counted) streams--;
    counted = false;
  };
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        let open = true;
        const end = () => {
          if (!open) return;
          open = false;
          stop();
          controller.close();
        };
        const send = (event: LogEvent) => {
          if (!open) return;
          controller.enqueue(encode(event, options.format));
          if ((controller.desiredSize ?? 0) < -LAG_LIMIT_BYTES) {
            const after = seq;
            controller.enqueue(
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
        const forward = (event: BusEvent) => {
          if (event.type === 'output') for (const line of event.lines) output(line);
          else if (event.type === 'phase') {
            if (event.phase !== 'queued') send({ type: 'phase', phase: event.phase });
          } else {
            send({ type: 'outcome', record: event.record });
            end();
          }
        };
        const reader = stored.reader(options.after);
        for (let entries = reader.next(); open && entries !== undefined; entries = reader.next()) {
          for (const entry of entries) {
            if (!('count' in entry)) output(entry);
            else {
              seq = Math.max(seq, entry.toSeq);
              send({ type: 'skipped', ...entry });
            }
          }
        }
        reader.close();
        if (stored.record.outcome !== undefined || !options.follow) {
          if (stored.record.outcome !== undefined) send({ type: 'outcome', record: stored.record });
          end();
          return;
        }
        live = forward;
        for (const event of early.splice(0)) forward(event);
        if (open && options.format === 'sse') {
          keepalive = setInterval(
            () => open && controller.enqueue(encoder.encode(': keepalive\n\n')),
            KEEPALIVE_MS,
          );
          keepalive.unref();
        }
      },
      cancel: stop,
    },
    { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
  );
  return new Response(body, {
    headers: {
      'content-type': options.format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    },
  });
}

function encode(event: LogEvent, format: LogFormat): Uint8Array {
  const data = JSON.stringify(event);
  if (format === 'ndjson') return encoder.encode(`${data}\n`);
  const id = event.type === 'output' ? `id: ${event.seq}\n` : '';
  return encoder.encode(`${id}event: ${event.type}\ndata: ${data}\n\n`);
}
