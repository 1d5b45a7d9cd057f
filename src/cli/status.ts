import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { runStatus } from './status-run.js';

export class StatusCommand extends ClientCommand {
  static override paths = [['status']];
  static override usage = Command.Usage({
    description: 'Show the daemon state, running and queued sessions, and the last outcomes',
    examples: [
      ['Human-readable status', '$0 status'],
      ['Status as JSON, for scripts', '$0 status --json'],
    ],
  });

  json = Option.Boolean('--json', false, { description: 'Print the status as one JSON object' });

  async execute(): Promise<number> {
    return runStatus({ socket: this.socket, json: this.json }, this.context);
  }
}
