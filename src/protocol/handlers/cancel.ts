import { type Handler, reply, replyError } from '../context.js';

export const cancel: Handler<'cancel'> = (request, connection, daemon) => {
  const answer = daemon.send({ type: 'cancel', sessionId: request.sessionId })[0];
  if (answer?.type === 'cancel.accepted') {
    reply(connection, request, {
      type: 'cancelling',
      sessionId: request.sessionId,
      wasQueued: answer.wasQueued,
    });
    return;
  }
  // A failed machine refuses every cancel: the session may well run on (until the next start adopts it),
  // and `unknown_session` told the client there was none.
  replyError(
    connection,
    request,
    daemon.state() === 'failed' ? 'failed' : 'unknown_session',
    answer?.type === 'cancel.rejected'
      ? answer.reason
      : `session ${request.sessionId} cannot be cancelled now`,
  );
};
