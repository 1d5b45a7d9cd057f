import { Builtins, Cli, type CommandClass } from 'clipanion';
import { HelpCommand, TOP_LEVEL_EXAMPLES } from './help.js';
import { nameValues } from './value-names.js';
import { agentdVersion } from './version.js';

/** Loads only the command asked for, so a client command never pulls in the daemon. */
export const COMMANDS: Record<string, () => Promise<CommandClass | CommandClass[]>> = {
  start: async () => (await import('./start.js')).StartCommand,
  trigger: async () => (await import('./trigger.js')).TriggerCommand,
  status: async () => (await import('./status.js')).StatusCommand,
  wait: async () => (await import('./wait.js')).WaitCommand,
  show: async () => (await import('./show.js')).ShowCommand,
  export: async () => (await import('./export.js')).ExportCommand,
  history: async () => (await import('./history.js')).HistoryCommand,
  agents: async () => (await import('./agents.js')).AgentsCommand,
  logs: async () => (await import('./logs.js')).LogsCommand,
  cancel: async () => (await import('./cancel.js')).CancelCommand,
  send: async () => (await import('./send.js')).SendCommand,
  validate: async () => (await import('./validate.js')).ValidateCommand,
  reload: async () => (await import('./reload.js')).ReloadCommand,
  stop: async () => (await import('./stop.js')).StopCommand,
  doctor: async () => (await import('./doctor.js')).DoctorCommand,
  hosts: async () => [
    (await import('./hosts.js')).HostsCommand,
    (await import('./hosts-drain.js')).HostsDrainCommand,
    (await import('./hosts-undrain.js')).HostsUndrainCommand,
  ],
};

/** clipanion's Cli with option values named (`--socket PATH`) and examples under the command list. */
class AgentdCli extends Cli {
  override usage(...args: Parameters<Cli['usage']>): string {
    const [command] = args;
    const text = nameValues(super.usage(...args));
    if (command !== null && command !== undefined) return text;
    const examples = TOP_LEVEL_EXAMPLES.map(([label, line]) => `  ${label}\n    $ ${line}\n`).join('\n');
    return `${text.trimEnd()}\n\nExamples\n\n${examples}\nMore: agentd help COMMAND, and the README.\n`;
  }

  override error(...args: Parameters<Cli['error']>): string {
    return nameValues(super.error(...args));
  }
}

export async function buildCli(first: string | undefined): Promise<Cli> {
  const cli = new AgentdCli({
    binaryLabel: 'agentd',
    binaryName: 'agentd',
    binaryVersion: agentdVersion(),
    enableColors: process.stdout.isTTY === true,
  });
  cli.register(HelpCommand);
  cli.register(Builtins.VersionCommand);
  // `help COMMAND` needs COMMAND, and the command list needs them all.
  const only = first !== undefined && first !== 'help' ? COMMANDS[first] : undefined;
  const wanted = only ? [only] : Object.values(COMMANDS);
  for (const load of wanted) {
    const loaded = await load();
    for (const command of Array.isArray(loaded) ? loaded : [loaded]) cli.register(command);
  }
  return cli;
}
