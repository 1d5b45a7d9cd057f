import { Command, UsageError } from 'clipanion';
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
      if (!(error instanceof UsageError)) {
        // Not an expected failure (each command reports those itself): one line, never a stack on stdout.
        const message = error instanceof Error ? error.message : String(error);
        if ((this as { json?: unknown }).json === true)
          this.context.stdout.write(
            `${JSON.stringify({ error: 'unexpected', message, code: EXIT.infrastructure })}\n`,
          );
        this.context.stderr.write(`agentd: unexpected error: ${message}\n`);
        return EXIT.infrastructure;
      }
      if ((this as { json?: unknown }).json === true)
        this.context.stdout.write(
          `${JSON.stringify({ error: 'usage', message: error.message, code: EXIT.usage })}\n`,
        );
      this.context.stderr.write(this.cli.error(error, { command: this }));
      return EXIT.usage;
    }
  }
}
