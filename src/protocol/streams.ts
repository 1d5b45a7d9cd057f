import type { Connection } from '../adapters/socket-server.js';
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
