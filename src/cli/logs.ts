import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { runLogs } from './logs-run.js';
import { isSequenceNumber, isSessionId } from './validators.js';

export class LogsCommand extends ClientCommand {
  static override paths = [['logs']];
  static override usage = Command.Usage({
    description: "Print a session's output, after the fact or live",
    details: `
      The output goes to stdout, the outcome line (or "still running") to stderr. Exits 0 whatever the
      session's outcome (\`agentd wait\` exits with it), 6 for a session the daemon keeps no record of, 8
      when the daemon closed the connection because this follower stopped reading (the session goes on).
      With --json each line of output is one object {"seq","stream","time","text"} (a marker for lines this
      client did not get has "seq": null and "skipped": {"fromSeq","toSeq","count","reason"}).

      On a terminal, control characters in the output (escape sequences included) are shown the way
      \`cat -v\` shows them; \`--raw\` writes them as they are. When stdout is not a terminal, output passes
      unchanged.
    `,
    examples: [
      ['Output of a finished session', '$0 logs 3f9c2a71b0d4e812'],
      ['Follow a running session until its outcome', '$0 logs 3f9c2a71b0d4e812 --follow'],
      ['One JSON object per line of output', '$0 logs 3f9c2a71b0d4e812 --json'],
      ['The first lines only', '$0 logs 3f9c2a71b0d4e812 | head'],
      ['Everything after line 1200', '$0 logs 3f9c2a71b0d4e812 --follow --after 1200'],
    ],
  });

  sessionId = Option.String({ name: 'session-id', validator: isSessionId });
  follow = Option.Boolean('--follow,-f', false, { description: 'Keep printing until the session ends' });
  json = Option.Boolean('--json', false, {
    description: 'One JSON object per line of output: seq, stream, time, text',
  });
  raw = Option.Boolean('--raw', false, {
    description: 'Write control characters to a terminal as they are',
  });

  after = Option.String('--after', {
    description: 'Only the output after this line (the `seq` of --json): where a reader resumes',
    validator: isSequenceNumber,
  });

  async execute(): Promise<number> {
    return runLogs(
      {
        socket: this.socket,
        sessionId: this.sessionId,
        follow: this.follow,
        json: this.json,
        raw: this.raw,
        after: this.after,
      },
      this.context,
    );
  }
}
