import { Builtins, Cli, type CommandClass } from 'clipanion';
import { agentdVersion } from './version.js';

/** Loads only the command asked for, so a client command never pulls in the daemon. */
const COMMANDS: Record<string, () => Promise<CommandClass>> = {
  start: async () => (await import('./start.js')).StartCommand,
  trigger: async () => (await import('./trigger.js')).TriggerCommand,
  status: async () => (await import('./status.js')).StatusCommand,
  logs: async () => (await import('./logs.js')).LogsCommand,
  cancel: async () => (await import('./cancel.js')).CancelCommand,
  send: async () => (await import('./send.js')).SendCommand,
  validate: async () => (await import('./validate.js')).ValidateCommand,
  reload: async () => (await import('./reload.js')).ReloadCommand,
};

export async function buildCli(first: string | undefined): Promise<Cli> {
  const cli = new Cli({
    binaryLabel: 'agentd',
    binaryName: 'agentd',
    binaryVersion: agentdVersion(),
    enableColors: process.stdout.isTTY === true,
  });
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  const only = first !== undefined ? COMMANDS[first] : undefined;
  const wanted = only ? [only] : Object.values(COMMANDS);
  for (const load of wanted) cli.register(await load());
  return cli;
}
