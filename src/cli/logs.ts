import { Command, Option } from 'clipanion';
import type { SessionRecord } from '../sessions/records.js';
import { ClientCommand } from './client-command.js';
import { failOnReply, failWith, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { outcomeLine } from './format.js';
import { followSession, type OutputReply } from './session-follow.js';
import { outputFilter, quietOnBrokenPipe, shownOn } from './terminal.js';
import { isSequenceNumber, isSessionId } from './validators.js';

export class LogsCommand extends ClientCommand {
  static override paths = [['logs']];
  static override usage = Command.Usage({
    description: "Print a session's output, after the fact or live",
    details: `
      The output goes to stdout, the outcome line (or "still running") to stderr. Exits 0 whatever the
      session's outcome (\`agentd wait\` exits with it), 6 for a session the daemon keeps no record of, 8
      when the daemon closed the connection because this follower stopped reading (the session goes on).
      With --json each line of output is one object {"seq","stream","time","text"} (a marker for lines this
      client did not get has "seq": null and "skipped": {"fromSeq","toSeq","count","reason"}).

      On a terminal, control characters in the output (escape sequences included) are shown the way
      \`cat -v\` shows them; \`--raw\` writes them as they are. When stdout is not a terminal, output passes
      unchanged.
    `,
    examples: [
      ['Output of a finished session', '$0 logs 3f9c2a71b0d4e812'],
      ['Follow a running session until its outcome', '$0 logs 3f9c2a71b0d4e812 --follow'],
      ['One JSON object per line of output', '$0 logs 3f9c2a71b0d4e812 --json'],
      ['The first lines only', '$0 logs 3f9c2a71b0d4e812 | head'],
      ['Everything after line 1200', '$0 logs 3f9c2a71b0d4e812 --follow --after 1200'],
    ],
  });

  sessionId = Option.String({ name: 'session-id', validator: isSessionId });
  follow = Option.Boolean('--follow,-f', false, { description: 'Keep printing until the session ends' });
  json = Option.Boolean('--json', false, {
    description: 'One JSON object per line of output: seq, stream, time, text',
  });
  raw = Option.Boolean('--raw', false, {
    description: 'Write control characters to a terminal as they are',
  });

  after = Option.String('--after', {
    description: 'Only the output after this line (the `seq` of --json): where a reader resumes',
    validator: isSequenceNumber,
  });

  async execute(): Promise<number> {
    const client = await this.connect(this.json);
    if (typeof client === 'number') return client;
    const { stdout, stderr } = this.context;
    const show = outputFilter(stdout, this.raw);
    const showErr = outputFilter(stderr, this.raw);
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
      if (this.json) printJson(this.context, lineJson(reply, counted));
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
    const after = this.after === undefined ? 0 : Number(this.after);
    if (this.follow) {
      // A daemon that goes away is waited for, and the output resumes after the last line shown.
      const result = await followSession({
        socket: this.socket,
        sessionId: this.sessionId,
        afterSeq: after,
        client,
        onOutput: print,
        onLost: () =>
          stderr.write('agentd: lost the connection to the daemon; waiting for it to come back\n'),
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
          return failOnReply(this.context, this.json, result.reply);
        case 'stalled':
        case 'lost':
          return failWith(
            this.context,
            this.json,
            {
              error: 'connection_lost',
              message: `connection lost; the session goes on (${result.kind === 'lost' ? `no daemon came back: ${result.reason}` : 'this client stopped reading'}; follow it again with \`agentd logs ${this.sessionId} --follow\`)`,
            },
            result.kind === 'stalled' ? EXIT.connectionLost : EXIT.retry,
          );
      }
    }
    try {
      client.send({ type: 'logs', sessionId: this.sessionId, ...(after > 0 ? { after } : {}) });
      for (;;) {
        // The history comes at once, a block at a time: a daemon that stops sending it is stuck. Not a
        // race of every line against the reader's going: each would leave a reaction (and its line) behind.
        const reply = await client.answer();
        if (left) return EXIT.succeeded;
        if (reply?.type === 'output') print(reply);
        else if (reply?.type === 'outcome') return outcome(reply.record);
        else return failOnReply(this.context, this.json, reply);
      }
    } finally {
      client.close();
    }
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
