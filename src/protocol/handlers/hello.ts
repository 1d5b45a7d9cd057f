import { PROTOCOL_VERSION, PROTOCOL_VERSIONS } from '../../constants.js';
import { type Handler, reply } from '../context.js';

/** Identifies the daemon and says which protocol versions it speaks (a request may name none). */
export const hello: Handler<'hello'> = (request, connection, daemon) => {
  reply(connection, request, {
    type: 'hello',
    protocol: request.v ?? PROTOCOL_VERSION,
    protocols: [...PROTOCOL_VERSIONS],
    version: daemon.version,
    pid: process.pid,
    instanceId: daemon.instanceId,
    state: daemon.state(),
  });
};
