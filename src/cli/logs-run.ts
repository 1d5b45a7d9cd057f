import type { SessionRecord } from '../sessions/records.js';
import { type ClientIo, connectDaemon, failOnReply, failWith, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { outcomeLine } from './format.js';
import type { OutputReply } from './session-follow.js';
import { outputFilter, quietOnBrokenPipe, shownOn } from './terminal.js';

export interface LogsOptions {
  socket?: string | undefined;
  sessionId: string;
  follow: boolean;
  json: boolean;
  raw: boolean;
  after?: string | undefined;
}

/** `agentd logs`, free of clipanion: LogsCommand and the quick path (quick.ts) both run it. */
export async function runLogs(options: LogsOptions, io: ClientIo): Promise<number> {
  const client = await connectDaemon(options.socket, io, options.json);
  if (typeof client === 'number') return client;
  const { stdout, stderr } = io;
  const show = outputFilter(stdout, options.raw);
  const showErr = outputFilter(stderr, options.raw);
  let leave: (() => void) | undefined;
  const gone = new Promise<void>((resolve) => {
    leave = resolve;
  });
  /** The reader went away: nothing more to print. */
  let left = false;
  // `agentd logs ID | head`: once the reader is gone, there is nothing more to do. Closing the
  // connection wakes the read under way.
  quietOnBrokenPipe(stdout, () => {
    left = true;
    leave?.();
    client.close();
  });
  let counted = 0;
  const print = (reply: OutputReply) => {
    counted++;
    if (options.json) printJson(io, lineJson(reply, counted));
    // The command's stderr goes to stderr, as `podman logs` does it.
    else if (reply.stream === 'stderr') stderr.write(`${showErr(reply.line)}\n`);
    else stdout.write(`${show(reply.line)}\n`);
  };
  const outcome = (record: SessionRecord) => {
    // agentd's own line, made visible on a terminal even with --raw (which is for the output).
    if (record.outcome) stderr.write(`${shownOn(stderr, outcomeLine(record))}\n`);
    else stderr.write(`session ${record.id} is still ${record.phase}\n`);
    return EXIT.succeeded;
  };
  const after = options.after === undefined ? 0 : Number(options.after);
  if (options.follow) {
    // A daemon that goes away is waited for, and the output resumes after the last line shown.
    // Loaded only to follow: a plain read of the log needs none of it.
    const { followSession } = await import('./session-follow.js');
    const result = await followSession({
      socket: options.socket,
      sessionId: options.sessionId,
      afterSeq: after,
      client,
      onOutput: print,
      onLost: () => stderr.write('agentd: lost the connection to the daemon; waiting for it to come back\n'),
      onResumed: (seq) => stderr.write(`agentd: reconnected; the output goes on after line ${seq}\n`),
      until: gone,
      // While stdout (or stderr) is full, the daemon is not read: it skips lines for this follower, and
      // one that reads nothing for 30 s it disconnects (exit 8). A read of the log alone is not paced:
      // it is bounded (daemon.log_max_bytes), and a pager left open must not be cut off.
      pace: [stdout, stderr],
    });
    switch (result.kind) {
      case 'stopped':
        return EXIT.succeeded;
      case 'outcome':
        return outcome(result.record);
      case 'error':
        return failOnReply(io, options.json, result.reply);
      case 'stalled':
      case 'lost':
        return failWith(
          io,
          options.json,
          {
            error: 'connection_lost',
            message: `connection lost; the session goes on (${result.kind === 'lost' ? `no daemon came back: ${result.reason}` : 'this client stopped reading'}; follow it again with \`agentd logs ${options.sessionId} --follow\`)`,
          },
          result.kind === 'stalled' ? EXIT.connectionLost : EXIT.retry,
        );
    }
  }
  try {
    client.send({ type: 'logs', sessionId: options.sessionId, ...(after > 0 ? { after } : {}) });
    for (;;) {
      // The history comes at once, a block at a time: a daemon that stops sending it is stuck. Not a
      // race of every line against the reader's going: each would leave a reaction (and its line) behind.
      const reply = await client.answer();
      if (left) return EXIT.succeeded;
      if (reply?.type === 'output') print(reply);
      else if (reply?.type === 'outcome') return outcome(reply.record);
      else return failOnReply(io, options.json, reply);
    }
  } finally {
    client.close();
  }
}

/**
 * A line of output as `--json` prints it: the daemon's `seq`, `stream` and `time` when it sends them;
 * otherwise numbered from 1 here, `output` (stdout and stderr merged), and no time.
 */
function lineJson(reply: { line: string; [field: string]: unknown }, counted: number) {
  return {
    // A marker for skipped lines has no position of its own.
    seq: typeof reply.seq === 'number' ? reply.seq : reply.skipped === undefined ? counted : null,
    stream: typeof reply.stream === 'string' ? reply.stream : 'output',
    time: typeof reply.time === 'string' ? reply.time : null,
    text: reply.line,
    // A line continued from the one before, and a marker for lines not sent, say so as the daemon did.
    ...(reply.cont === true ? { cont: true } : {}),
    ...(reply.skipped === undefined ? {} : { skipped: reply.skipped }),
  };
}
