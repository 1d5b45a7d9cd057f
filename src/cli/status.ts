import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { runStatus } from './status-run.js';

export class StatusCommand extends ClientCommand {
  static override paths = [['status']];
  static override usage = Command.Usage({
    description: 'Show the daemon state, running and queued sessions, and the last outcomes',
    details:
      'Exits 0 only when the daemon is ready and a Podman host answers: 10 degraded (its state dir takes no writes, or its log cannot be written), 11 not ready yet, 12 shutting down, 13 failed (it is exiting), 14 no Podman host answers (sessions wait), 15 a schedule or host failed (agentd reload starts it again), 69 no daemon answers. The status is printed whatever the code (the whole object with --json).',
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
