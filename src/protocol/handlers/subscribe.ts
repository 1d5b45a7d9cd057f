import { type Handler, reply } from '../context.js';

/** Streams the daemon machine's state and its sessions' phases as they change. */
export const subscribe: Handler<'subscribe'> = (request, connection, daemon) => {
  let last = '';
  const send = () => {
    const state = daemon.sessions();
    const text = JSON.stringify(state);
    // Identical consecutive messages are not repeated.
    if (text === last) return;
    last = text;
    reply(connection, request, { type: 'state', ...state });
  };
  send();
  connection.onClose(daemon.watch(send));
};
