import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { runAdmission } from './host-admission.js';

export class HostsUndrainCommand extends ClientCommand {
  static override paths = [['hosts', 'undrain']];
  static override usage = Command.Usage({
    description: 'Place new sessions on a drained host again',
    examples: [['Take a host back into service', '$0 hosts undrain build2']],
  });

  host = Option.String({ name: 'host' });

  async execute(): Promise<number> {
    return runAdmission('undrain', this.host, this.socket, this.context);
  }
}
