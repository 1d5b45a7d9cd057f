import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { failOnReply, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { shownOn } from './terminal.js';

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
      ['What changed, as JSON', '$0 reload --json'],
    ],
  });

  json = Option.Boolean('--json', false, {
    description: "Print the daemon's answer (reloaded or reload_failed) as one JSON object",
  });

  async execute(): Promise<number> {
    const client = await this.connect(this.json);
    if (typeof client === 'number') return client;
    try {
      const reply = await client.request({ type: 'reload' });
      if (reply?.type === 'reloaded' || reply?.type === 'reload_failed') {
        const { v: _v, id: _id, ...answer } = reply;
        const ok = reply.type === 'reloaded';
        if (this.json) printJson(this.context, { ...answer, code: ok ? EXIT.succeeded : EXIT.failed });
        if (ok) {
          if (!this.json) this.context.stdout.write(`${shownOn(this.context.stdout, reply.message)}\n`);
          return EXIT.succeeded;
        }
        return this.fail(reply.message, EXIT.failed);
      }
      return failOnReply(this.context, this.json, reply, 'nothing was reloaded');
    } finally {
      client.close();
    }
  }
}
