import { Command, Option } from 'clipanion';
import { AgentdCommand } from './agentd-command.js';
import { configOption } from './config-option.js';

export class ValidateCommand extends AgentdCommand {
  static override paths = [['validate']];
  static override usage = Command.Usage({
    description: 'Check a configuration file without starting a daemon',
    details:
      'Prints the agents it defines and warnings about settings that weaken containment, or every problem found (file, line, key and how to fix it). Exits 1 on problems, not on warnings.',
    examples: [
      ['Check the default configuration', '$0 validate'],
      ['Check a given file', '$0 validate --config ./agentd.yaml'],
      ['The agents, or every problem, as JSON', '$0 validate --config ./agentd.yaml --json'],
    ],
  });

  config = configOption();
  json = Option.Boolean('--json', false, {
    description:
      'Print {"valid": true, "agents": [...], "warnings": [...]} or {"valid": false, "problems": [...]}',
  });

  async execute(): Promise<number> {
    const { runValidate } = await import('./validate-run.js');
    return runValidate({ config: this.config, json: this.json }, this.context);
  }
}
