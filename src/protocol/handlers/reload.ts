import { type Handler, reply } from '../context.js';

/** Re-reads the configuration file the daemon started with, as SIGHUP does; answers what changed. */
export const reload: Handler<'reload'> = (request, connection, daemon) => {
  // Owed until answered: a client that ended its side after asking still gets the answer.
  const settled = connection.owe();
  void daemon
    .reload('request')
    .then((answer) => reply(connection, request, answer))
    .finally(settled);
};
