import type { Outcome } from '../sessions/types.js';
import { type ClientIo, connectDaemon, failOnReply, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { recordLine } from './format.js';
import { shownOn } from './terminal.js';

export interface HistoryOptions {
  socket?: string | undefined;
  json: boolean;
  agent?: string | undefined;
  outcome?: Outcome | undefined;
  workUnit?: string | undefined;
  since?: string | undefined;
  limit?: string | undefined;
}

/** `agentd history`, free of clipanion: HistoryCommand and the quick path (quick.ts) both run it. */
export async function runHistory(options: HistoryOptions, io: ClientIo): Promise<number> {
  const client = await connectDaemon(options.socket, io, options.json);
  if (typeof client === 'number') return client;
  try {
    const reply = await client.request({
      type: 'history',
      ...(options.agent === undefined ? {} : { agent: options.agent }),
      ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
      ...(options.workUnit === undefined ? {} : { workUnit: options.workUnit }),
      ...(options.since === undefined ? {} : { since: options.since }),
      ...(options.limit === undefined ? {} : { limit: Number(options.limit) }),
    });
    if (reply?.type !== 'history') return failOnReply(io, options.json, reply);
    if (options.json) {
      printJson(io, { sessions: reply.sessions, more: reply.more });
      return EXIT.succeeded;
    }
    const lines = reply.sessions.map(recordLine);
    if (reply.sessions.length === 0) lines.push('no sessions match');
    if (reply.more > 0) lines.push(`... and ${reply.more} more; raise --limit or narrow the filters`);
    io.stdout.write(shownOn(io.stdout, `${lines.join('\n')}\n`));
    return EXIT.succeeded;
  } finally {
    client.close();
  }
}
