import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { EXIT } from './exit-codes.js';
import { outcomeLine } from './format.js';
import { isSessionId } from './validators.js';

export class LogsCommand extends ClientCommand {
  static override paths = [['logs']];
  static override usage = Command.Usage({
    description: "Print a session's output, after the fact or live",
    examples: [
      ['Output of a finished session', '$0 logs 3f9c2a71b0d4e812'],
      ['Follow a running session until its outcome', '$0 logs 3f9c2a71b0d4e812 --follow'],
    ],
  });

  sessionId = Option.String({ name: 'session-id', validator: isSessionId });
  follow = Option.Boolean('--follow,-f', false, { description: 'Keep printing until the session ends' });

  async execute(): Promise<number> {
    const client = await this.connect();
    if (typeof client === 'number') return client;
    try {
      client.send({ type: 'logs', sessionId: this.sessionId, follow: this.follow });
      for (;;) {
        const reply = await client.next();
        if (reply === undefined) return this.fail('lost the connection to the daemon', EXIT.infrastructure);
        if (reply.type === 'output') this.context.stdout.write(`${reply.line}\n`);
        else if (reply.type === 'outcome') {
          const { record } = reply;
          if (record.outcome) this.context.stderr.write(`${outcomeLine(record)}\n`);
          else this.context.stderr.write(`session ${record.id} is still ${record.phase}\n`);
          return EXIT.succeeded;
        } else if (reply.type === 'error') return this.fail(reply.message, EXIT.failed);
      }
    } finally {
      client.close();
    }
  }
}
