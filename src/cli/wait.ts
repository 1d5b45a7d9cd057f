import { Command, Option } from 'clipanion';
import { parseDuration } from '../duration.js';
import { ClientCommand } from './client-command.js';
import { exitCodeForReply, failWith, printJson } from './client-io.js';
import { EXIT, EXIT_CODE_MODES, exitCodeForRecord } from './exit-codes.js';
import { outcomeJson, outcomeLine } from './format.js';
import { waitForSession } from './session-wait.js';
import { shownOn } from './terminal.js';
import { isDuration, isOneOf, isSessionId } from './validators.js';

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
    const io = this.context;
    const deadline =
      this.timeout === undefined ? undefined : performance.now() + (parseDuration(this.timeout) ?? 0);
    const client = await this.connect(this.json);
    if (typeof client === 'number') return client;
    const result = await waitForSession({
      socket: this.socket,
      sessionId: this.sessionId,
      deadline,
      client,
      onLost: () =>
        io.stderr.write(
          `agentd: lost the connection to the daemon; session ${this.sessionId} goes on; waiting for the daemon to come back\n`,
        ),
    });
    switch (result.kind) {
      case 'outcome': {
        const code = exitCodeForRecord(result.record, this.exitCode ?? 'outcome', this.strict);
        if (this.json) printJson(io, outcomeJson(result.record, code));
        else io.stdout.write(`${shownOn(io.stdout, outcomeLine(result.record))}\n`);
        return code;
      }
      case 'error':
        return failWith(
          io,
          this.json,
          { error: result.reply.code, message: result.reply.message },
          exitCodeForReply(result.reply),
        );
      case 'timeout':
        return failWith(
          io,
          this.json,
          {
            error: 'still_running',
            sessionId: this.sessionId,
            message: `session ${this.sessionId} has not finished after ${this.timeout}; it goes on`,
          },
          EXIT.stillRunning,
        );
      case 'lost':
        return failWith(
          io,
          this.json,
          {
            error: 'connection_lost',
            sessionId: this.sessionId,
            message: `no daemon came back (${result.reason}); session ${this.sessionId} may still run`,
          },
          EXIT.retry,
        );
    }
  }
}
