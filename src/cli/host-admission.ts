import type { ClientIo } from './client-io.js';
import { connectDaemon, fail } from './client-io.js';
import { EXIT } from './exit-codes.js';

/** `agentd hosts drain NAME` and `undrain NAME`: one request, one line. */
export async function runAdmission(
  type: 'drain' | 'undrain',
  host: string,
  socket: string | undefined,
  io: ClientIo,
): Promise<number> {
  const client = await connectDaemon(socket, io);
  if (typeof client === 'number') return client;
  try {
    const reply = await client.request({ type, host });
    if (reply?.type === 'drained') {
      io.stdout.write(
        reply.drained
          ? `host ${host} drained: no new sessions go there; its running sessions finish\n`
          : `host ${host} undrained: it takes new sessions again\n`,
      );
      return EXIT.succeeded;
    }
    const why =
      reply === undefined
        ? 'the daemon closed the connection'
        : reply.type === 'error'
          ? reply.message
          : `unexpected reply ${reply.type}`;
    return fail(io, why, EXIT.failed);
  } finally {
    client.close();
  }
}
