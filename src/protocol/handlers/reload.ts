import { type Handler, reply } from '../context.js';

/** Re-reads the configuration file the daemon started with, as SIGHUP does; answers what changed. */
export const reload: Handler<'reload'> = (request, connection, daemon) => {
  void daemon.reload('request').then((answer) => reply(connection, request, answer));
};
