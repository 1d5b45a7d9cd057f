import { parseDuration } from '../duration.js';
import { steadyMs } from './client.js';
import { type ClientIo, connectDaemon, exitCodeForReply, failWith, printJson } from './client-io.js';
import { EXIT, type ExitCodeMode, exitCodeForRecord } from './exit-codes.js';
import { outcomeJson, outcomeLine } from './format.js';
import { waitForSession } from './session-wait.js';
import { shownOn } from './terminal.js';

export interface WaitRunOptions {
  socket?: string | undefined;
  sessionId: string;
  timeout?: string | undefined;
  json: boolean;
  exitCode: ExitCodeMode;
  strict: boolean;
}

/** `agentd wait`, free of clipanion: WaitCommand and the quick path (quick.ts) both run it. */
export async function runWait(options: WaitRunOptions, io: ClientIo): Promise<number> {
  const { sessionId, json } = options;
  const deadline =
    options.timeout === undefined ? undefined : steadyMs() + (parseDuration(options.timeout) ?? 0);
  const client = await connectDaemon(options.socket, io, json);
  if (typeof client === 'number') return client;
  const result = await waitForSession({
    socket: options.socket,
    sessionId,
    deadline,
    client,
    onLost: () =>
      io.stderr.write(
        `agentd: lost the connection to the daemon; session ${sessionId} goes on; waiting for the daemon to come back\n`,
      ),
  });
  switch (result.kind) {
    case 'outcome': {
      const code = exitCodeForRecord(result.record, options.exitCode, options.strict);
      if (json) printJson(io, outcomeJson(result.record, code));
      else io.stdout.write(`${shownOn(io.stdout, outcomeLine(result.record))}\n`);
      return code;
    }
    case 'error':
      return failWith(
        io,
        json,
        { error: result.reply.code, message: result.reply.message },
        exitCodeForReply(result.reply),
      );
    case 'timeout':
      return failWith(
        io,
        json,
        {
          error: 'still_running',
          sessionId,
          message: `session ${sessionId} has not finished after ${options.timeout}; it goes on`,
        },
        EXIT.stillRunning,
      );
    case 'lost':
      return failWith(
        io,
        json,
        {
          error: 'connection_lost',
          sessionId,
          message: `no daemon came back (${result.reason}); session ${sessionId} may still run`,
        },
        EXIT.retry,
      );
  }
}
