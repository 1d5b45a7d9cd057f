import type { Connection } from '../adapters/socket-server.js';
import { type DaemonPort, type RequestHead, reply } from './context.js';
import { HEARTBEAT_MS } from './limits.js';
import type { Request } from './messages.js';

/**
 * Streams (waits, follows, log reads, subscriptions) one connection may have open at once. Each is a
 * listener on the daemon until its session ends, and a request line is all it costs a client: without a
 * bound, one connection sending waits by the million would grow the daemon's memory without end.
 */
export const MAX_STREAMS_PER_CONNECTION = 64;

/**
 * A request that opens a stream when the session it names has not ended, or whose answer is owed until
 * work queued behind others is done (a `reload` waits for the reloads before it).
 */
export function opensStream(request: Request): boolean {
  return (
    request.type === 'reload' ||
    request.type === 'wait' ||
    request.type === 'logs' ||
    request.type === 'subscribe' ||
    (request.type === 'trigger' && request.follow === true)
  );
}

/** Whether the connection may open one more stream (what it is owed later is its streams, and replies on their way). */
export function streamAllowed(connection: Connection): boolean {
  return connection.owed < MAX_STREAMS_PER_CONNECTION;
}

/**
 * Notes a stream the connection is owed (see Connection.owe) and, when its request asked for them
 * (`heartbeat`), sends a `heartbeat` every `daemon.heartbeatMs` until it is settled or the connection
 * closes. Returns the function that settles it (calling it again does nothing).
 */
export function oweStream(
  connection: Connection,
  request: RequestHead & { heartbeat?: boolean | undefined },
  daemon: Pick<DaemonPort, 'heartbeatMs'>,
): () => void {
  const settled = connection.owe();
  if (request.heartbeat !== true) return settled;
  const timer = setInterval(() => {
    if (connection.closed) {
      clearInterval(timer);
      return;
    }
    // A client that has replies left to read hears from the daemon already; one more would only add to them.
    if (!connection.lagging) reply(connection, request, { type: 'heartbeat' });
  }, daemon.heartbeatMs ?? HEARTBEAT_MS);
  // A stream must not keep a stopping daemon alive; one whose connection closed stops at its next tick.
  timer.unref();
  return () => {
    clearInterval(timer);
    settled();
  };
}
