import { type ClientIo, connectDaemon, failOnReply, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';

export interface CancelOptions {
  socket?: string | undefined;
  sessionId: string;
  json: boolean;
}

/** `agentd cancel`, free of clipanion: CancelCommand and the quick path (quick.ts) both run it. */
export async function runCancel(options: CancelOptions, io: ClientIo): Promise<number> {
  const { sessionId, json } = options;
  const client = await connectDaemon(options.socket, io, json);
  if (typeof client === 'number') return client;
  try {
    const reply = await client.request({ type: 'cancel', sessionId });
    if (reply?.type !== 'cancelling')
      return failOnReply(io, json, reply, `session ${sessionId} was not cancelled`);
    if (json) printJson(io, { sessionId: reply.sessionId, wasQueued: reply.wasQueued });
    else
      io.stdout.write(
        `session ${sessionId} ${reply.wasQueued ? 'removed from the queue' : 'is being cancelled'}\n`,
      );
    return EXIT.succeeded;
  } finally {
    client.close();
  }
}
