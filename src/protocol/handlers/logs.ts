import { type Handler, reply, replyError } from '../context.js';
import { followReply, outcomeReply } from '../follow.js';

/** Sends a session's log; with `follow`, keeps streaming until its outcome. */
export const logs: Handler<'logs'> = (request, connection, daemon) => {
  const { sessionId } = request;
  // Following and reading happen in one tick, so no line is missed or sent twice.
  let unfollow: (() => void) | undefined;
  if (request.follow) {
    unfollow = daemon.follow(sessionId, (event) => {
      if (event.type === 'phase') return;
      const message = followReply(event);
      if (message) reply(connection, request, message);
      if (event.type === 'outcome') unfollow?.();
    });
    connection.onClose(() => unfollow?.());
  }
  const stored = daemon.readLog(sessionId);
  if (!stored) {
    unfollow?.();
    replyError(
      connection,
      request,
      'unknown_session',
      `no session ${sessionId}; see \`agentd history\` for known sessions`,
    );
    return;
  }
  const live = request.follow === true && stored.record.outcome === undefined;
  if (!live) unfollow?.();
  for (const line of stored.lines) reply(connection, request, { type: 'output', sessionId, line });
  if (!live) reply(connection, request, outcomeReply(stored.record));
};
