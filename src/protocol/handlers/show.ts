import { type Handler, noSuchSession, reply, replyError } from '../context.js';

/** One session's record, whole: queued, running or finished. */
export const show: Handler<'show'> = (request, connection, daemon) => {
  const record = daemon.record(request.sessionId);
  if (!record) {
    replyError(connection, request, 'unknown_session', noSuchSession(request.sessionId));
    return;
  }
  reply(connection, request, { type: 'session', sessionId: record.id, record });
};
