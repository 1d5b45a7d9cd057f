import { type Handler, reply } from '../context.js';

/** The agents triggers are accepted for now (after any reload), without a credential value. */
export const agents: Handler<'agents'> = (request, connection, daemon) => {
  reply(connection, request, { type: 'agents', agents: daemon.agents() });
};
