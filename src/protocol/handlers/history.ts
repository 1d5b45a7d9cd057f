import { type Handler, reply } from '../context.js';

/** Kept session records that match the filters, newest first. */
export const history: Handler<'history'> = (request, connection, daemon) => {
  const { v: _v, id: _id, type: _type, ...filter } = request;
  const page = daemon.history(filter);
  reply(connection, request, { type: 'history', sessions: page.sessions, more: page.more });
};
