import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { runAdmission } from './host-admission.js';

export class HostsDrainCommand extends ClientCommand {
  static override paths = [['hosts', 'drain']];
  static override usage = Command.Usage({
    description: 'Stop placing new sessions on a host; its running sessions finish',
    details: 'Lasts until `agentd hosts undrain NAME` or a restart of the daemon. See `agentd hosts`.',
    examples: [['Drain a host before maintenance', '$0 hosts drain build2']],
  });

  host = Option.String({ name: 'host' });

  async execute(): Promise<number> {
    return runAdmission('drain', this.host, this.socket, this.context);
  }
}
