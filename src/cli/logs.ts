import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { EXIT } from './exit-codes.js';
import { type OutcomeRecord, outcomeLine } from './format.js';

export class LogsCommand extends ClientCommand {
  static override paths = [['logs']];
  static override usage = Command.Usage({
    description: "Print a session's output, after the fact or live",
    examples: [
      ['Output of a finished session', '$0 logs 3f9c2a71b0d4e812'],
      ['Follow a running session until its outcome', '$0 logs 3f9c2a71b0d4e812 --follow'],
    ],
  });

  sessionId = Option.String({ name: 'session-id' });
  follow = Option.Boolean('--follow,-f', false, { description: 'Keep printing until the session ends' });

  async execute(): Promise<number> {
    const invalid = this.rejectSessionId(this.sessionId);
    if (invalid !== undefined) return invalid;
    const client = await this.connect();
    if (typeof client === 'number') return client;
    try {
      client.send({ type: 'logs', sessionId: this.sessionId, follow: this.follow });
      for (;;) {
        const reply = await client.next();
        if (reply === undefined) return this.fail('lost the connection to the daemon', EXIT.infrastructure);
        if (reply.type === 'output') this.context.stdout.write(`${String(reply.line)}\n`);
        else if (reply.type === 'outcome') {
          const record = reply.record as OutcomeRecord;
          if (record.outcome) this.context.stderr.write(`${outcomeLine(record)}\n`);
          else this.context.stderr.write(`session ${record.id} is still ${String(record.phase)}\n`);
          return EXIT.succeeded;
        } else if (reply.type === 'error') return this.fail(String(reply.message), EXIT.failed);
      }
    } finally {
      client.close();
    }
  }
}
