import type { Connection } from '../../adapters/socket-server.js';
import { type DaemonPort, type Handler, reply, replyError } from '../context.js';
import type { RequestOf } from '../messages.js';

export const hosts: Handler<'hosts'> = (request, connection, daemon) => {
  reply(connection, request, { type: 'hosts', hosts: daemon.hosts() });
};

/** `drain` and `undrain`: the daemon machine forwards them to the host, or refuses an unknown host. */
function admission(
  request: RequestOf<'drain'> | RequestOf<'undrain'>,
  connection: Connection,
  daemon: DaemonPort,
): void {
  const answer = daemon.send({ type: request.type, host: request.host })[0];
  if (answer?.type === 'drain.applied') {
    reply(connection, request, { type: 'drained', host: answer.host, drained: answer.drained });
    return;
  }
  // A failed machine refuses every drain: the host is there, and `unknown_host` said it was not.
  replyError(
    connection,
    request,
    daemon.state() === 'failed' ? 'failed' : 'unknown_host',
    answer?.type === 'drain.rejected' ? answer.reason : `host ${request.host} cannot be drained now`,
  );
}

export const drain: Handler<'drain'> = admission;
export const undrain: Handler<'undrain'> = admission;
