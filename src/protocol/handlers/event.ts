import type { ClientEvent } from '../../machines/daemon.machine.js';
import { type Handler, reply, stateName } from '../context.js';
import { sendEvent } from '../send-event.js';

/** Scripted event injection: any client-sendable event of the daemon machine. */
export const event: Handler<'event'> = (request, connection, daemon) => {
  const injected = request.event;
  // A finished session keeps its record and log: its id cannot be used again.
  if (
    injected.type === 'trigger' &&
    injected.sessionId !== undefined &&
    daemon.store.read(injected.sessionId)
  ) {
    reply(connection, request, {
      type: 'error',
      code: 'duplicate_session',
      message: `session id ${injected.sessionId} was already used; leave sessionId out to get a fresh one`,
    });
    return;
  }
  const machineEvent: ClientEvent =
    injected.type === 'trigger'
      ? { ...injected, sessionId: injected.sessionId ?? daemon.newSessionId() }
      : injected;
  const answers = sendEvent(daemon, machineEvent).map(({ requestId: _requestId, ...answer }) => answer);
  reply(connection, request, {
    type: 'event.result',
    event: machineEvent,
    answers,
    state: stateName(daemon.actor.getSnapshot().value),
  });
};
