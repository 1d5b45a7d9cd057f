import { readNoFollow } from '../../adapters/state-files.js';
import { type Handler, reply } from '../context.js';

/** Sends a session's log; with `follow`, keeps streaming until its outcome. */
export const logs: Handler<'logs'> = (request, connection, daemon) => {
  const { sessionId } = request;
  const record = daemon.store.read(sessionId);
  if (!record) {
    reply(connection, request, {
      type: 'error',
      code: 'unknown_session',
      message: `no session ${sessionId}; see \`agentd status\` for known sessions`,
    });
    return;
  }
  // Following and reading happen in one tick, so no line is missed or sent twice.
  const live = request.follow && record.outcome === undefined;
  let unfollow: (() => void) | undefined;
  if (live) {
    unfollow = daemon.bus.follow(sessionId, (event) => {
      if (event.type === 'output')
        reply(connection, request, { type: 'output', sessionId, line: event.line });
      if (event.type === 'outcome') {
        reply(connection, request, { type: 'outcome', sessionId, record: event.record });
        unfollow?.();
      }
    });
    connection.onClose(() => unfollow?.());
  }
  let text = '';
  try {
    // Never through a link someone planted in place of the log.
    text = readNoFollow(daemon.store.logPath(sessionId)).toString('utf8');
  } catch {
    // No output yet (or no readable log).
  }
  for (const line of text.split('\n').slice(0, -1))
    reply(connection, request, { type: 'output', sessionId, line });
  if (!live) reply(connection, request, { type: 'outcome', sessionId, record });
};
