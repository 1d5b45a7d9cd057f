import type { ClientEvent, DaemonEmitted } from '../../machines/daemon.machine.js';
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
  const emitted = daemon.send(machineEvent);
  const answers = (emitted.length > 0 ? emitted : unanswered(machineEvent)).map(
    ({ requestId: _requestId, ...answer }) => answer,
  );
  reply(connection, request, { type: 'event.result', event: machineEvent, answers, state: daemon.state() });
};

/**
 * A trigger or cancel the machine answered nothing to is refused, in the words the trigger and cancel
 * requests use: the machine has stopped while the socket is still open (the daemon's last records and
 * sweeps), or a cancel came while the socket opens. An empty list read as "nothing rejected", so
 * `agentd send` exited 0 for a trigger that made no session.
 */
function unanswered(event: ClientEvent): DaemonEmitted[] {
  if (event.type === 'trigger') {
    return [
      {
        type: 'trigger.rejected',
        sessionId: event.sessionId,
        code: 'not_accepting',
        reason: 'the daemon is not accepting triggers',
      },
    ];
  }
  if (event.type === 'cancel') {
    return [
      {
        type: 'cancel.rejected',
        sessionId: event.sessionId,
        reason: `session ${event.sessionId} cannot be cancelled now`,
      },
    ];
  }
  return [];
}
