import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { EXIT } from './exit-codes.js';
import { isSessionId } from './validators.js';

export class CancelCommand extends ClientCommand {
  static override paths = [['cancel']];
  static override usage = Command.Usage({
    description: 'Cancel a queued or running session',
    details: 'A running session is stopped (SIGTERM, then SIGKILL after the grace period) and torn down.',
    examples: [['Cancel a session', '$0 cancel 3f9c2a71b0d4e812']],
  });

  sessionId = Option.String({ name: 'session-id', validator: isSessionId });

  async execute(): Promise<number> {
    const client = await this.connect();
    if (typeof client === 'number') return client;
    try {
      const reply = await client.request({ type: 'cancel', sessionId: this.sessionId });
      if (reply?.type === 'cancelling') {
        this.context.stdout.write(
          `session ${this.sessionId} ${reply.wasQueued ? 'removed from the queue' : 'is being cancelled'}\n`,
        );
        return EXIT.succeeded;
      }
      const why =
        reply === undefined
          ? 'the daemon closed the connection'
          : reply.type === 'error'
            ? reply.message
            : `unexpected reply ${reply.type}`;
      return this.fail(why, EXIT.failed);
    } finally {
      client.close();
    }
  }
}
