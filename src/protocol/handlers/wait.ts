import { type Handler, noSuchSession, replyError } from '../context.js';
import { followSession } from '../follow.js';

/** The session's `outcome`, at once when it has finished, else when it does. */
export const wait: Handler<'wait'> = (request, connection, daemon) => {
  if (!daemon.record(request.sessionId)) {
    replyError(connection, request, 'unknown_session', noSuchSession(request.sessionId));
    return;
  }
  followSession(connection, request, daemon, request.sessionId, { stream: false });
};
