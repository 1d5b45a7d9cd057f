import type { Connection } from '../adapters/socket-server.js';
import type { DaemonPort, Handler } from './context.js';
import { handlers } from './handlers/index.js';
import { describeIssues, type Request, requestSchema } from './messages.js';

/** Validates one request line and hands it to its handler; anything malformed gets an error reply. */
export function dispatch(line: string, connection: Connection, daemon: DaemonPort): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    connection.send({ v: 1, type: 'error', code: 'bad_json', message: 'the line is not valid JSON' });
    return;
  }
  const result = requestSchema.safeParse(parsed);
  if (!result.success) {
    const id =
      typeof (parsed as { id?: unknown })?.id === 'string' ? (parsed as { id: string }).id : undefined;
    connection.send({
      v: 1,
      ...(id === undefined ? {} : { id }),
      type: 'error',
      code: 'bad_request',
      message: `invalid request: ${describeIssues(result.error)}; see docs/protocol.md`,
    });
    return;
  }
  const request = result.data;
  try {
    (handlers[request.type] as Handler<Request['type']>)(request, connection, daemon);
  } catch (error) {
    daemon.log.error(
      { event: 'socket.handler_failed', type: request.type, err: error },
      'request handler failed',
    );
    connection.send({
      v: 1,
      type: 'error',
      code: 'internal',
      message: `the daemon could not handle ${request.type}`,
    });
  }
}
