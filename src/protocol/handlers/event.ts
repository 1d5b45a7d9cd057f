import type { ClientEvent } from '../../machines/daemon.machine.js';
import { type Handler, reply } from '../context.js';

/**
 * Scripted event injection: any client-sendable event of the daemon machine. The machine decides
 * everything, a reused session id included.
 */
export const event: Handler<'event'> = (request, connection, daemon) => {
  const injected = request.event;
  const machineEvent: ClientEvent =
    injected.type === 'trigger'
      ? { ...injected, sessionId: injected.sessionId ?? daemon.newSessionId() }
      : injected;
  const answers = daemon.send(machineEvent).map(({ requestId: _requestId, ...answer }) => answer);
  reply(connection, request, { type: 'event.result', event: machineEvent, answers, state: daemon.state() });
};
