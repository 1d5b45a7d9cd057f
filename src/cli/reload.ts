import { Command } from 'clipanion';
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
      const reply = await client.request({ type: 'reload' });
      if (reply?.type === 'reloaded') {
        this.context.stdout.write(`${reply.message}\n`);
        return EXIT.succeeded;
      }
      const why =
        reply === undefined
          ? 'the daemon closed the connection'
          : 'message' in reply
            ? reply.message
            : `unexpected reply ${reply.type}`;
      return this.fail(why, EXIT.failed);
    } finally {
      client.close();
    }
  }
}
