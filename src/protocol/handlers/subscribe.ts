import { sessionPhaseOf } from '../../machines/session.machine.js';
import { type Handler, reply, stateName } from '../context.js';
import type { ReplyOf } from '../replies.js';

/** Streams the daemon machine's state and its sessions' phases as they change. */
export const subscribe: Handler<'subscribe'> = (request, connection, daemon) => {
  let last = '';
  const send = () => {
    const snapshot = daemon.actor.getSnapshot();
    const message: Omit<ReplyOf<'state'>, 'v'> = {
      type: 'state',
      state: stateName(snapshot.value),
      running: Object.values(snapshot.context.sessions).map((ref) => ({
        id: ref.id,
        phase: sessionPhaseOf(ref.getSnapshot()),
      })),
      queued: snapshot.context.queue.map((entry) => entry.request.sessionId),
    };
    const text = JSON.stringify(message);
    if (text === last) return;
    last = text;
    reply(connection, request, message);
  };
  send();
  const subscription = daemon.actor.subscribe(send);
  // Session phases change inside child actors, which the root's subscription does not see.
  const unfollow = daemon.bus.followAll((event) => {
    if (event.type === 'phase') send();
  });
  connection.onClose(() => {
    subscription.unsubscribe();
    unfollow();
  });
};
