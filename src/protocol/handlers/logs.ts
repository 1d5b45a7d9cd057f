import { type Handler, reply } from '../context.js';

/** Sends a session's log; with `follow`, keeps streaming until its outcome. */
export const logs: Handler<'logs'> = (request, connection, daemon) => {
  const { sessionId } = request;
  // Following and reading happen in one tick, so no line is missed or sent twice.
  let unfollow: (() => void) | undefined;
  if (request.follow) {
    unfollow = daemon.follow(sessionId, (event) => {
      if (event.type === 'output')
        reply(connection, request, { type: 'output', sessionId, line: event.line });
      if (event.type === 'outcome') {
        reply(connection, request, { type: 'outcome', sessionId, record: event.record });
        unfollow?.();
      }
    });
    connection.onClose(() => unfollow?.());
  }
  const stored = daemon.readLog(sessionId);
  if (!stored) {
    unfollow?.();
    reply(connection, request, {
      type: 'error',
      code: 'unknown_session',
      message: `no session ${sessionId}; see \`agentd status\` for known sessions`,
    });
    return;
  }
  const live = request.follow === true && stored.record.outcome === undefined;
  if (!live) unfollow?.();
  for (const line of stored.lines) reply(connection, request, { type: 'output', sessionId, line });
  if (!live) reply(connection, request, { type: 'outcome', sessionId, record: stored.record });
};
