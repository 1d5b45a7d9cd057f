import { PROTOCOL_VERSION } from '../../constants.js';
import { type Handler, reply } from '../context.js';

export const hello: Handler<'hello'> = (request, connection, daemon) => {
  reply(connection, request, {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    version: daemon.version,
    pid: process.pid,
    instanceId: daemon.instanceId,
    state: daemon.state(),
  });
};
