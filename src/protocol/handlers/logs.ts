import { type Handler, noSuchSession, replyError } from '../context.js';
import { forwardEvent, outcomeReply } from '../follow.js';
import { Follower } from '../follower.js';
import { sealedLogHint } from '../sealed-log.js';
import { oweStream } from '../streams.js';

/** Sends a session's log; with `follow`, keeps streaming until its outcome. */
export const logs: Handler<'logs'> = (request, connection, daemon) => {
  const { sessionId } = request;
  const stored = daemon.readLog(sessionId);
  if (!stored) {
    // Beyond history a finished session is found by `show` in its sealed record, which keeps its log.
    const recordDir = daemon.record(sessionId)?.recordDir;
    replyError(
      connection,
      request,
      'unknown_session',
      recordDir === undefined
        ? noSuchSession(sessionId)
        : `session ${sessionId} is beyond daemon.history, so its log is no longer kept here: ${sealedLogHint(sessionId, recordDir, true)}`,
    );
    return;
  }
  const follower = new Follower(connection, request, sessionId, request.after ?? 0);
  // One of the connection's streams, paced by the client until the log has gone out (and, following,
  // until the outcome): settled at the end below, or by unfollow. Heartbeats only for a follow: a read of
  // the log alone is answered at once, a block at a time.
  const settled = oweStream(connection, request.follow ? request : { ...request, heartbeat: false }, daemon);
  let unfollow: (() => void) | undefined;
  void (async () => {
    // The log so far (after the line the client has, when it resumes), at the pace the client reads it.
    await follower.replay(stored.reader(request.after ?? 0));
    if (connection.closed) return;
    const now = daemon.readLog(sessionId);
    if (!now) {
      // Let go of by history (retention) while the log went out: the record read before answers (or the
      // sealed one, had it ended meanwhile), as for any finished session; a client always gets a last reply.
      const last =
        stored.record.outcome === undefined ? (daemon.record(sessionId) ?? stored.record) : stored.record;
      if (!request.follow || last.outcome !== undefined) follower.send(outcomeReply(last));
      else replyError(connection, request, 'unknown_session', `session ${sessionId} is no longer kept`);
      return;
    }
    if (!request.follow || now.record.outcome !== undefined) {
      // Whatever came while the history went out, then the record (with its outcome if it ended).
      await follower.replay(now.reader(follower.lastSeq));
      follower.send(outcomeReply(now.record));
      return;
    }
    // Following and reading what came meanwhile happen in one turn: no line is missed or sent twice.
    let forgetClose: (() => void) | undefined;
    const stop = daemon.follow(sessionId, (event) => {
      if (forwardEvent(follower, event, false)) unfollow?.();
    });
    unfollow = () => {
      stop();
      settled();
      // Ended: the connection, which may stay open, no longer holds it.
      forgetClose?.();
    };
    forgetClose = connection.onClose(() => {
      unfollow?.();
      follower.stop();
    });
    // What came meanwhile is short (the bounded log, read in this turn); skipped while the client lags.
    const reader = now.reader(follower.lastSeq);
    for (let entries = reader.next(); entries !== undefined; entries = reader.next()) {
      for (const entry of entries) {
        if ('count' in entry) follower.skip(entry);
        else follower.lines([entry]);
      }
    }
  })()
    .catch((error: unknown) => {
      daemon.log.error(
        { event: 'socket.handler_failed', type: 'logs', err: error },
        'request handler failed',
      );
    })
    .finally(() => {
      if (unfollow === undefined) settled();
    });
};
