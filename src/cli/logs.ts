import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { failOnReply, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { outcomeLine } from './format.js';
import { isSessionId } from './validators.js';

export class LogsCommand extends ClientCommand {
  static override paths = [['logs']];
  static override usage = Command.Usage({
    description: "Print a session's output, after the fact or live",
    details: `
      The output goes to stdout, the outcome line (or "still running") to stderr. Exits 0 whatever the
      session's outcome (\`agentd wait\` exits with it), 6 for a session the daemon keeps no record of.
      With --json each line of output is one object {"seq","stream","time","text"}.
    `,
    examples: [
      ['Output of a finished session', '$0 logs 3f9c2a71b0d4e812'],
      ['Follow a running session until its outcome', '$0 logs 3f9c2a71b0d4e812 --follow'],
      ['One JSON object per line of output', '$0 logs 3f9c2a71b0d4e812 --json'],
    ],
  });

  sessionId = Option.String({ name: 'session-id', validator: isSessionId });
  follow = Option.Boolean('--follow,-f', false, { description: 'Keep printing until the session ends' });
  json = Option.Boolean('--json', false, {
    description: 'One JSON object per line of output: seq, stream, time, text',
  });

  async execute(): Promise<number> {
    const client = await this.connect(this.json);
    if (typeof client === 'number') return client;
    try {
      client.send({ type: 'logs', sessionId: this.sessionId, follow: this.follow });
      let seq = 0;
      for (;;) {
        const reply = await client.next();
        if (reply?.type === 'output') {
          seq++;
          if (this.json) printJson(this.context, lineJson(reply, seq));
          else this.context.stdout.write(`${reply.line}\n`);
        } else if (reply?.type === 'outcome') {
          const { record } = reply;
          if (record.outcome) this.context.stderr.write(`${outcomeLine(record)}\n`);
          else this.context.stderr.write(`session ${record.id} is still ${record.phase}\n`);
          return EXIT.succeeded;
        } else {
          return failOnReply(this.context, this.json, reply);
        }
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
