import { Command, Option } from 'clipanion';
import { runCancel } from './cancel-run.js';
import { ClientCommand } from './client-command.js';
import { isSessionId } from './validators.js';

export class CancelCommand extends ClientCommand {
  static override paths = [['cancel']];
  static override usage = Command.Usage({
    description: 'Cancel a queued or running session',
    details:
      'A running session is stopped (SIGTERM, then SIGKILL after the grace period) and torn down. Exits 0 when the cancel was accepted, 6 when no such session is queued or running (or it is already tearing down: its outcome is decided), 13 when the daemon failed and is exiting (restart it, then cancel again).',
    examples: [
      ['Cancel a session', '$0 cancel 3f9c2a71b0d4e812'],
      ['Cancel, and say what happened as JSON', '$0 cancel 3f9c2a71b0d4e812 --json'],
    ],
  });

  sessionId = Option.String({ name: 'session-id', validator: isSessionId });
  json = Option.Boolean('--json', false, {
    description: 'Print {"sessionId","wasQueued"} as one JSON object',
  });

  async execute(): Promise<number> {
    return runCancel({ socket: this.socket, sessionId: this.sessionId, json: this.json }, this.context);
  }
}
