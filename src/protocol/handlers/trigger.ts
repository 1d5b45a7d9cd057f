import type { BusEvent } from '../../sessions/session-bus.js';
import { type Handler, reply } from '../context.js';

/** Accepts a trigger; with `follow`, streams the session's phases and output until its outcome. */
export const trigger: Handler<'trigger'> = (request, connection, daemon) => {
  const sessionId = daemon.newSessionId();
  // Follow before sending: the first phase may be announced while the trigger is processed.
  let unfollow: (() => void) | undefined;
  // Events published while the trigger is processed wait until the "accepted" reply is out.
  let early: BusEvent[] | undefined = [];
  if (request.follow) {
    unfollow = daemon.follow(sessionId, (event: BusEvent) => {
      if (early) {
        early.push(event);
        return;
      }
      forward(event);
    });
    connection.onClose(() => unfollow?.());
  }
  function forward(event: BusEvent): void {
    if (event.type === 'phase') reply(connection, request, { type: 'phase', sessionId, phase: event.phase });
    else if (event.type === 'output')
      reply(connection, request, { type: 'output', sessionId, line: event.line });
    else {
      reply(connection, request, { type: 'outcome', sessionId, record: event.record });
      unfollow?.();
    }
  }

  const { v: _v, id: _id, type: _type, follow: _follow, ...fields } = request;
  const answers = daemon.send({ type: 'trigger', sessionId, ...fields });
  const answer = answers[0];
  if (answer?.type === 'trigger.accepted') {
    reply(connection, request, {
      type: 'accepted',
      sessionId,
      queued: answer.queued,
      position: answer.position,
    });
    const pending = early;
    early = undefined;
    for (const event of pending) forward(event);
    return;
  }
  unfollow?.();
  reply(connection, request, {
    type: 'rejected',
    sessionId,
    code: answer?.type === 'trigger.rejected' ? answer.code : 'not_accepting',
    reason: answer?.type === 'trigger.rejected' ? answer.reason : 'the daemon is not accepting triggers',
  });
};
