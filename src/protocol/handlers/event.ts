import type { ClientEvent } from '../../machines/daemon.machine.js';
import { type Handler, reply, stateName } from '../context.js';
import { sendEvent } from '../send-event.js';

/** Scripted event injection: any client-sendable event of the daemon machine. */
export const event: Handler<'event'> = (request, connection, daemon) => {
  const injected = request.event;
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
