import { type DaemonPort, type Handler, reply, replyError } from '../context.js';

/** Re-reads the configuration file the daemon started with, as SIGHUP does; answers what changed. */
export const reload: Handler<'reload'> = (request, connection, daemon) => {
  // A daemon whose machine failed reloads nothing: `failed`, as cancel and drain, not a `reload_failed`
  // that said the file kept the old configuration ("the daemon did not answer") of a daemon that is exiting.
  const failed = failure(daemon);
  if (failed !== undefined) {
    replyError(connection, request, 'failed', failed);
    return;
  }
  // Owed until answered: a client that ended its side after asking still gets the answer.
  const settled = connection.owe();
  void daemon
    .reload('request')
    .then((answer) => {
      // Failed while the file was read: the reload was not applied, and not for the file's sake.
      const failedSince = answer.type === 'reload_failed' ? failure(daemon) : undefined;
      if (failedSince === undefined) reply(connection, request, answer);
      else replyError(connection, request, 'failed', failedSince);
    })
    .finally(settled);
};

/** Why the daemon machine failed, when it has (the port says `failed`); undefined while it runs. */
function failure(daemon: DaemonPort): string | undefined {
  if (daemon.state() !== 'failed') return undefined;
  return daemon.status().failed ?? 'the daemon failed; it is exiting, restart it';
}
