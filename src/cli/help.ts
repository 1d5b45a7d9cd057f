import { Command, Option } from 'clipanion';
import { AgentdCommand } from './agentd-command.js';

/** `agentd help [COMMAND]`, `agentd -h`, `agentd --help`: the commands, or one command's help. */
export class HelpCommand extends AgentdCommand {
  static override paths = [['help'], ['-h'], ['--help']];
  static override usage = Command.Usage({
    description: 'Show the commands, or the help of one command',
    examples: [
      ['Every command', '$0 help'],
      ['The options and examples of one command', '$0 help trigger'],
    ],
  });

  command = Option.Rest({ name: 'command' });

  async execute(): Promise<number> {
    if (this.command.length === 0) {
      this.context.stdout.write(this.cli.usage());
      return 0;
    }
    const known = this.cli.definitions().map((d) => d.path.split(' ')[1]);
    if (!known.includes(this.command[0])) {
      this.context.stderr.write(
        `agentd: there is no command "${this.command[0]}"; the commands are listed by agentd help\n`,
      );
      return 2;
    }
    // The same page as `agentd COMMAND --help`.
    return this.cli.run([...this.command, '--help']);
  }
}

/** Top-level examples, shown under the list of commands. */
export const TOP_LEVEL_EXAMPLES: readonly [string, string][] = [
  [
    'Check a configuration, then this machine',
    'agentd validate --config ./agentd.yaml && agentd doctor --config ./agentd.yaml',
  ],
  ['Run the daemon in the foreground', 'agentd start --config ./agentd.yaml --log-format pretty'],
  ['Run a session of an agent and follow it', 'agentd trigger reviewer --work-unit PR-42 --timeout 10m'],
  ['See what runs, and what ran', 'agentd status'],
  ['Start a session from a script, then wait for its outcome', 'agentd wait $(agentd trigger reviewer -d)'],
  ['Failed sessions of the last two hours', 'agentd history --outcome failed --since 2h'],
  ["Read a session's output", 'agentd logs 3f9c2a71b0d4e812 --follow'],
  [
    'Hand a session its task and a file',
    'agentd trigger reviewer --request-file task.md --input spec=spec.md',
  ],
  ["A session's sealed record (output included) as a tar.gz", 'agentd export 3f9c2a71b0d4e812 -o s.tar.gz'],
  ['Apply an edited configuration file', 'agentd reload'],
  ['Stop the daemon, letting running sessions finish, and wait until it has exited', 'agentd stop'],
];
