import { Command } from 'clipanion';
import { reloadReplySchema } from '../protocol/messages.js';
import { ClientCommand } from './client-command.js';
import { EXIT } from './exit-codes.js';

export class ReloadCommand extends ClientCommand {
  static override paths = [['reload']];
  static override usage = Command.Usage({
    description: 'Make the daemon re-read its configuration file (as SIGHUP does)',
    details: `
      The daemon re-reads the file it was started with. New and changed agents, and max_sessions, apply to
      sessions accepted from then on; queued and running sessions keep the definition they were accepted with.
      An invalid file changes nothing: every problem is printed and the daemon keeps its configuration.
      Settings that need a restart (daemon.socket, daemon.state_dir, ...) are named. Exits 1 when nothing was applied.
    `,
    examples: [
      ['Reload after editing the configuration', '$0 reload'],
      ['Reload the daemon on another socket', '$0 reload --socket /run/agentd/agentd.sock'],
    ],
  });

  async execute(): Promise<number> {
    const client = await this.connect();
    if (typeof client === 'number') return client;
    try {
      const raw = await client.request({ type: 'reload' });
      const reply = reloadReplySchema.safeParse(raw);
      if (!reply.success) {
        return this.fail(String(raw?.message ?? 'the daemon closed the connection'), EXIT.failed);
      }
      if (reply.data.type === 'reload_failed') return this.fail(reply.data.message, EXIT.failed);
      this.context.stdout.write(`${reply.data.message}\n`);
      return EXIT.succeeded;
    } finally {
      client.close();
    }
  }
}
