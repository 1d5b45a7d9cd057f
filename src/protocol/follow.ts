import type { Connection } from '../adapters/socket-server.js';
import type { SessionRecord } from '../sessions/records.js';
import type { BusEvent } from '../sessions/session-bus.js';
import { type DaemonPort, type RequestHead, reply } from './context.js';
import { Follower } from './follower.js';
import type { ReplyBody } from './replies.js';
import { oweStream } from './streams.js';

/** The `outcome` reply of a record: its outcome and agent on top, for clients that read only those. */
export function outcomeReply(record: SessionRecord): ReplyBody {
  return {
    type: 'outcome',
    sessionId: record.id,
    agent: record.agent,
    ...(record.outcome === undefined ? {} : { outcome: record.outcome }),
    record,
  };
}

/**
 * Hands a followed session's event to its follower: phases (`queued` is not sent to followers:
 * `accepted` says it) and the outcome as replies that always arrive, output lines batched (and
 * skipped while the client lags). Returns true after the outcome, the last event.
 */
export function forwardEvent(follower: Follower, event: BusEvent, phases = true): boolean {
  switch (event.type) {
    case 'phase':
      if (phases && event.phase !== 'queued') {
        follower.send({ type: 'phase', sessionId: event.sessionId, agent: event.agent, phase: event.phase });
      }
      return false;
    case 'output':
      follower.lines(event.lines);
      return false;
    case 'outcome':
      follower.send(outcomeReply(event.record));
      follower.stop();
      return true;
  }
}

export interface FollowOptions {
  /** Send phase and output replies too; otherwise only the outcome (`wait`). */
  stream: boolean;
  /** With `stream`, false leaves the output replies out (a quiet trigger). */
  output?: boolean;
}

/**
 * Sends a session's events to a request until its outcome, which is the last reply; a session that has
 * finished gets its outcome at once. Call it in the same tick as anything read about the session, so
 * no event falls between the two.
 */
export function followSession(
  connection: Connection,
  request: RequestHead & { heartbeat?: boolean | undefined },
  daemon: Pick<DaemonPort, 'follow' | 'record' | 'heartbeatMs'>,
  sessionId: string,
  options: FollowOptions,
): void {
  const record = daemon.record(sessionId);
  if (record?.outcome !== undefined) {
    reply(connection, request, outcomeReply(record));
    return;
  }
  const follower = new Follower(connection, request, sessionId);
  // One of the connection's streams until the outcome (or the connection's end), with its heartbeats.
  const settled = oweStream(connection, request, daemon);
  let forgetClose: (() => void) | undefined;
  const stop = daemon.follow(sessionId, (event) => {
    if (event.type !== 'outcome' && !options.stream) return;
    if (event.type === 'output' && options.output === false) return;
    if (forwardEvent(follower, event)) unfollow();
  });
  const unfollow = () => {
    stop();
    settled();
    // Ended: the connection, which may stay open, no longer holds it.
    forgetClose?.();
  };
  forgetClose = connection.onClose(() => {
    unfollow();
    follower.stop();
  });
}
