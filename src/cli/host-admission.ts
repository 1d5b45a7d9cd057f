import { isClientSideError } from './client.js';
import type { ClientIo } from './client-io.js';
import { connectDaemon, fail, failOnReply } from './client-io.js';
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
    // The daemon refused (no such host): the operation failed (1). A lost connection, a reply that is
    // not one (bad_reply, no_answer: the client's own) or a daemon that says "not now" gets the code
    // every client command gives it (4, 75), and so does a daemon that failed and is exiting (13).
    if (
      reply?.type === 'error' &&
      !isClientSideError(reply) &&
      reply.code !== 'failed' &&
      !('retryable' in reply && reply.retryable)
    ) {
      return fail(io, reply.message, EXIT.failed);
    }
    return failOnReply(io, false, reply, `host ${host} was not ${type}ed`);
  } finally {
    client.close();
  }
}
