import { type Handler, reply } from '../context.js';

export const status: Handler<'status'> = (request, connection, daemon) => {
  reply(connection, request, { type: 'status', ...daemon.status() });
};
