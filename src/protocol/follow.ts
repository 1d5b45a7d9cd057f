import type { Connection } from '../adapters/socket-server.js';
import type { SessionRecord } from '../sessions/records.js';
import type { BusEvent } from '../sessions/session-bus.js';
import { type DaemonPort, type RequestHead, reply } from './context.js';
import type { ReplyBody } from './replies.js';

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

/** The reply a followed session's event becomes; `queued` is not sent to followers (`accepted` says it). */
export function followReply(event: BusEvent): ReplyBody | undefined {
  switch (event.type) {
    case 'phase':
      return event.phase === 'queued'
        ? undefined
        : { type: 'phase', sessionId: event.sessionId, agent: event.agent, phase: event.phase };
    case 'output':
      return { type: 'output', sessionId: event.sessionId, line: event.line };
    case 'outcome':
      return outcomeReply(event.record);
  }
}

export interface FollowOptions {
  /** Send phase and output replies too; otherwise only the outcome (`wait`). */
  stream: boolean;
}

/**
 * Sends a session's events to a request until its outcome, which is the last reply; a session that has
 * finished gets its outcome at once. Call it in the same tick as anything read about the session, so
 * no event falls between the two.
 */
export function followSession(
  connection: Connection,
  request: RequestHead,
  daemon: Pick<DaemonPort, 'follow' | 'record'>,
  sessionId: string,
  options: FollowOptions,
): void {
  const record = daemon.record(sessionId);
  if (record?.outcome !== undefined) {
    reply(connection, request, outcomeReply(record));
    return;
  }
  const unfollow = daemon.follow(sessionId, (event) => {
    if (event.type !== 'outcome' && !options.stream) return;
    const message = followReply(event);
    if (message) reply(connection, request, message);
    if (event.type === 'outcome') unfollow();
  });
  connection.onClose(unfollow);
}
