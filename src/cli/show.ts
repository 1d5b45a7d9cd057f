import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { runShow } from './show-run.js';
import { isSessionId } from './validators.js';

export class ShowCommand extends ClientCommand {
  static override paths = [['show']];
  static override usage = Command.Usage({
    description: "Show one session's record, whole",
    details:
      'Queued, running or finished: what was triggered, every phase with its time, the outcome (and its kind) and why, the image, commit, request and inputs, the output kept, and the sealed record directory (`agentd export` writes it as a tar.gz). Sessions that history no longer lists are shown from their sealed record. Exits 0, or 6 when the daemon keeps no record of the session.',
    examples: [
      ['A session', '$0 show 3f9c2a71b0d4e812'],
      ['Its record as JSON (the fields are in docs/protocol.md)', '$0 show 3f9c2a71b0d4e812 --json'],
    ],
  });

  sessionId = Option.String({ name: 'session-id', validator: isSessionId });
  json = Option.Boolean('--json', false, { description: 'Print the record as one JSON object' });

  async execute(): Promise<number> {
    return runShow({ socket: this.socket, sessionId: this.sessionId, json: this.json }, this.context);
  }
}
