import type { SessionPhase } from '../../sessions/types.js';
import { type Handler, reply } from '../context.js';
import { outcomeReply } from '../follow.js';

/**
 * Streams the daemon's state and its sessions: a `state` reply at once and on every change of the
 * daemon's state, of the running or queued sessions, or of a running session's phase; from version 2
 * also every session's `phase` (from `queued` on) and `outcome`, each with the agent's name.
 */
export const subscribe: Handler<'subscribe'> = (request, connection, daemon) => {
  const events = (request.v ?? 2) >= 2;
  // One of the connection's streams until it closes.
  connection.owe();
  // Phases as the sessions announced them: a child actor's snapshot may lag behind its announcement.
  const phases = new Map<string, SessionPhase>();
  let last = '';
  const sendState = () => {
    const current = daemon.sessions();
    const state = {
      ...current,
      running: current.running.map((s) => ({ ...s, phase: phases.get(s.id) ?? s.phase })),
    };
    const text = JSON.stringify(state);
    // Identical consecutive messages are not repeated.
    if (text === last) return;
    last = text;
    reply(connection, request, { type: 'state', ...state });
  };
  // Registered before watch: a phase is in `phases` by the time watch's listener asks for the state.
  const unfollow = daemon.followAll((event) => {
    if (event.type === 'phase') {
      phases.set(event.sessionId, event.phase);
      if (events) {
        reply(connection, request, {
          type: 'phase',
          sessionId: event.sessionId,
          agent: event.agent,
          phase: event.phase,
        });
      }
      sendState();
    } else if (event.type === 'outcome') {
      phases.delete(event.sessionId);
      if (events) reply(connection, request, outcomeReply(event.record));
    }
  });
  sendState();
  const unwatch = daemon.watch(sendState);
  connection.onClose(() => {
    unwatch();
    unfollow();
  });
};
