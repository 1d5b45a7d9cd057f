import { Command, Option, UsageError } from 'clipanion';
import { ClientCommand } from './client-command.js';
import { runTrigger } from './trigger-run.js';
import { isDuration } from './validators.js';
import { readWork } from './work-input.js';

export class TriggerCommand extends ClientCommand {
  static override paths = [['trigger']];
  static override usage = Command.Usage({
    description: 'Start a session of an agent and follow it to its outcome',
    details: `
      Asks the daemon to run a session of \`agent\` on \`repo-url\` (or the agent's default repo). Prints the session id,
      then its phases and the container's output as they happen, then a last line with the outcome, exit code and duration.

      Exit codes: 0 succeeded, 1 failed, 2 usage error, 3 rejected by the daemon, 4 infrastructure error,
      5 cancelled, 69 daemon not reachable, 124 timed out, 130 left without waiting (second Ctrl-C).

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
    ],
  });

  agent = Option.String({ name: 'agent' });
  repo = Option.String({ name: 'repo-url', required: false });
  workUnit = Option.String('--work-unit', {
    description: 'Work unit id, visible to the agent as AGENTD_WORK_UNIT',
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
    description: 'NAME=PATH: a read-only file /agentd/input/NAME in the session (repeatable; 8 MiB in all)',
  });
  quiet = Option.Boolean('--quiet,-q', false, {
    description: "Do not print the session's phases and output",
  });
  json = Option.Boolean('--json', false, { description: 'Print one JSON object with the outcome' });
  detach = Option.Boolean('--detach,-d', false, {
    description: 'Return once the daemon accepted the trigger',
  });

  async execute(): Promise<number> {
    if (this.detach && this.json) throw new UsageError('--detach and --json cannot be combined');
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
      },
      this.context,
    );
  }
}
