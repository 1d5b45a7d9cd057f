import { Command, Option } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { EXIT_CODE_MODES } from './exit-codes.js';
import { runTrigger } from './trigger-run.js';
import { isDuration, isKey, isOneOf, isWorkUnit } from './validators.js';
import { readWork } from './work-input.js';

export class TriggerCommand extends ClientCommand {
  static override paths = [['trigger']];
  static override usage = Command.Usage({
    description: 'Start a session of an agent and follow it to its outcome',
    details: `
      Asks the daemon to run a session of \`agent\` on \`repo-url\` (or the agent's default repo). Prints the session id,
      then its phases and the container's output as they happen, then a last line with the outcome, exit code and duration.

      Exit codes: 0 succeeded (also when the command reported blocked or nothing_ready, exit 3 or 4 by the
      convention; with --strict those exit 1), 1 failed (with --exit-code command: the command's own code), 2 usage error,
      3 rejected by the daemon, 4 infrastructure error, 5 cancelled, 8 the daemon closed the
      connection because this client stopped reading (the session goes on), 69 daemon not reachable, 75 rejected for
      now (busy, shutting down, state dir full: retry later), 77 this user may not use the daemon's socket (run as
      the daemon's user), 124 timed out, 130 left without waiting.

      With --key, a trigger repeating the key of a recent one (a retried webhook, say) gets that session
      instead of a new one. If the daemon goes away while the session is followed, trigger waits for it to
      come back (a restart adopts the session) and goes on with the output after the last line it
      printed, then reports the outcome.

      On a terminal, control characters in the session's output are shown the way \`cat -v\` shows them;
      \`--raw\` writes them as they are. When stdout is not a terminal, output passes unchanged.

      Ctrl-C cancels the session and waits for its teardown; a second Ctrl-C leaves without waiting.
    `,
    examples: [
      ['Run the reviewer agent on its default repository', '$0 trigger reviewer'],
      [
        'Run on another repository with a work unit and a timeout',
        '$0 trigger reviewer https://git.example.com/org/app.git --work-unit PR-42 --timeout 10m',
      ],
      ['Start a session and return at once', '$0 trigger reviewer --detach'],
      [
        'Hand the agent its task and a file (it reads $AGENTD_REQUEST_FILE and /agentd/input/spec)',
        '$0 trigger reviewer --request-file task.md --input spec=./spec.md',
      ],
      ['One JSON object with the outcome, for scripts', '$0 trigger reviewer --json'],
      [
        'Start once per webhook delivery, print the session id as JSON',
        '$0 trigger reviewer --key gh-8121 --detach --json',
      ],
      ["Exit with the agent's own exit code when it fails", '$0 trigger reviewer --exit-code command'],
    ],
  });

  agent = Option.String({ name: 'agent' });
  repo = Option.String({ name: 'repo-url', required: false });
  workUnit = Option.String('--work-unit', {
    description: 'Work unit id, visible to the agent as AGENTD_WORK_UNIT (at most 256 characters)',
    validator: isWorkUnit,
  });
  timeout = Option.String('--timeout', {
    description: "Session timeout (90s, 10m, 2h); overrides the agent's",
    validator: isDuration,
  });
  request = Option.String('--request', {
    description:
      'The task, as text: a read-only file in the session, its path in $AGENTD_REQUEST_FILE (1 MiB at most)',
  });
  requestFile = Option.String('--request-file', {
    description: 'The task, from a file (- for stdin), any bytes: as --request',
  });
  inputs = Option.Array('--input', {
    description: 'A read-only file /agentd/input/NAME in the session (repeatable; 8 MiB in all)',
  });
  quiet = Option.Boolean('--quiet,-q', false, {
    description: "Do not print the session's phases and output",
  });
  json = Option.Boolean('--json', false, {
    description: 'Print one JSON object: the outcome (with --detach: the session id)',
  });
  detach = Option.Boolean('--detach,-d', false, {
    description: 'Return once the daemon accepted the trigger',
  });
  key = Option.String('--key', {
    description: 'Idempotency key: a repeated trigger with the same key gets the first session',
    validator: isKey,
  });
  exitCode = Option.String('--exit-code', {
    description:
      "outcome (default) or command: a failed session whose command ran exits with the command's own code",
    validator: isOneOf(EXIT_CODE_MODES),
  });
  strict = Option.Boolean('--strict', false, {
    description: 'A session whose command reported blocked or nothing_ready exits 1, not 0',
  });
  raw = Option.Boolean('--raw', false, {
    description: 'Write control characters in the output to a terminal as they are',
  });

  async execute(): Promise<number> {
    const work = await readWork(
      { request: this.request, requestFile: this.requestFile, inputs: this.inputs },
      this.context.stdin,
    );
    return runTrigger(
      {
        agent: this.agent,
        repo: this.repo,
        workUnit: this.workUnit,
        timeout: this.timeout,
        socket: this.socket,
        quiet: this.quiet,
        json: this.json,
        detach: this.detach,
        work,
        key: this.key,
        exitCode: this.exitCode ?? 'outcome',
        strict: this.strict,
        raw: this.raw,
      },
      this.context,
    );
  }
}
