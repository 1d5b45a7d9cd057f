import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { EXIT_CODE_MODES } from './exit-codes.js';
import { isDuration, isOneOf, isSessionId } from './validators.js';
import { runWait } from './wait-run.js';

export class WaitCommand extends ClientCommand {
  static override paths = [['wait']];
  static override usage = Command.Usage({
    description: "Wait for a session's outcome and exit with its code",
    details: `
      Prints the outcome line of the session (at once when it has finished) and exits with the outcome's
      code, as \`agentd trigger\` does: 0 succeeded (also blocked or nothing_ready, unless --strict), 1 failed (with --exit-code command: the command's own
      code), 4 error or abandoned, 5 cancelled, 124 timed out; 6 no such session; 7 --timeout ran out
      first (the session goes on); 69 no daemon; 75 the daemon went away and did not come back within a
      minute; 77 this user may not use the daemon's socket. A daemon restart is waited out: the new daemon adopts the session.
    `,
    examples: [
      ['Wait for a session started with --detach', '$0 wait 3f9c2a71b0d4e812'],
      ['At most ten minutes, the outcome as JSON', '$0 wait 3f9c2a71b0d4e812 --timeout 10m --json'],
    ],
  });

  sessionId = Option.String({ name: 'session-id', validator: isSessionId });
  timeout = Option.String('--timeout', {
    description: 'Stop waiting after this long (90s, 10m, 2h): exit 7, the session goes on',
    validator: isDuration,
  });
  json = Option.Boolean('--json', false, { description: 'Print the outcome as one JSON object' });
  exitCode = Option.String('--exit-code', {
    description:
      "outcome (default) or command: a failed session whose command ran exits with the command's own code",
    validator: isOneOf(EXIT_CODE_MODES),
  });
  strict = Option.Boolean('--strict', false, {
    description: 'A session whose command reported blocked or nothing_ready exits 1, not 0',
  });

  async execute(): Promise<number> {
    return runWait(
      {
        socket: this.socket,
        sessionId: this.sessionId,
        timeout: this.timeout,
        json: this.json,
        exitCode: this.exitCode ?? 'outcome',
        strict: this.strict,
      },
      this.context,
    );
  }
}
