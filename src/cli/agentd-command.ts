import { Command, UsageError } from 'clipanion';
import { failWith, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';

/**
 * The base of every agentd command. A UsageError thrown while the command runs (a rule between two
 * options, say) is printed as clipanion prints parse errors, on stderr, and exits 2 like them:
 * clipanion itself would print it on stdout and exit 1.
 */
export abstract class AgentdCommand extends Command {
  override async validateAndExecute(): Promise<number> {
    try {
      return await super.validateAndExecute();
    } catch (error) {
      const json = (this as { json?: unknown }).json === true;
      if (!(error instanceof UsageError)) {
        // Not an expected failure (each command reports those itself): one line, never a stack on stdout.
        const message = `unexpected error: ${error instanceof Error ? error.message : String(error)}`;
        return failWith(this.context, json, { error: 'unexpected', message }, EXIT.infrastructure);
      }
      if (json) printJson(this.context, { error: 'usage', message: error.message, code: EXIT.usage });
      this.context.stderr.write(this.cli.error(error, { command: this }));
      return EXIT.usage;
    }
  }
}
