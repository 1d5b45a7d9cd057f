import { Command, Option } from 'clipanion';
import { parseDuration } from '../duration.js';
import type { Reply } from './client.js';
import { ClientCommand } from './client-command.js';
import { EXIT, exitCodeForOutcome } from './exit-codes.js';
import { type OutcomeRecord, outcomeLine } from './format.js';

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
  });
  quiet = Option.Boolean('--quiet,-q', false, {
    description: "Do not print the session's phases and output",
  });
  json = Option.Boolean('--json', false, { description: 'Print one JSON object with the outcome' });
  detach = Option.Boolean('--detach,-d', false, {
    description: 'Return once the daemon accepted the trigger',
  });

  async execute(): Promise<number> {
    if (this.timeout !== undefined && parseDuration(this.timeout) === undefined) {
      return this.fail(
        `--timeout ${JSON.stringify(this.timeout)} is not a duration; use a number with a unit like 90s, 10m or 2h`,
        EXIT.usage,
      );
    }
    if (this.detach && this.json) return this.fail('--detach and --json cannot be combined', EXIT.usage);
    const client = await this.connect();
    if (typeof client === 'number') return client;
    const { stdout } = this.context;
    const started = Date.now();
    const verbose = !this.quiet && !this.json;
    let sessionId: string | undefined;
    let interrupts = 0;
    let leave: ((code: number) => void) | undefined;
    const left = new Promise<number>((resolve) => {
      leave = resolve;
    });
    const onInterrupt = () => {
      interrupts++;
      if (interrupts === 1) {
        // Before "accepted" arrives there is no id yet: the cancel goes out as soon as it does.
        if (sessionId) cancel(sessionId);
      } else {
        leave?.(EXIT.interrupted);
      }
    };
    const cancel = (id: string) => {
      this.context.stderr.write(
        `agentd: cancelling session ${id}; press Ctrl-C again to leave without waiting\n`,
      );
      client.send({ type: 'cancel', sessionId: id });
    };
    process.on('SIGINT', onInterrupt);
    try {
      client.send({
        type: 'trigger',
        agent: this.agent,
        follow: !this.detach,
        ...(this.repo === undefined ? {} : { repo: this.repo }),
        ...(this.workUnit === undefined ? {} : { workUnit: this.workUnit }),
        ...(this.timeout === undefined ? {} : { timeout: this.timeout }),
      });
      for (;;) {
        const reply = await Promise.race([
          client.next(),
          left.then((code) => ({ type: 'left', code }) as Reply),
        ]);
        if (reply === undefined) {
          return this.fail(
            `lost the connection to the daemon${sessionId ? ` while following session ${sessionId}; see \`agentd status\`` : ''}`,
            EXIT.infrastructure,
          );
        }
        switch (reply.type) {
          case 'left':
            return reply.code as number;
          case 'accepted': {
            sessionId = String(reply.sessionId);
            if (interrupts === 1) cancel(sessionId);
            if (this.detach) {
              stdout.write(`${sessionId}\n`);
              return EXIT.succeeded;
            }
            if (verbose) {
              const queued = reply.queued ? ` (queued at position ${reply.position})` : '';
              stdout.write(`session ${sessionId} accepted${queued}\n`);
            }
            break;
          }
          case 'rejected':
            if (this.json) {
              stdout.write(
                `${JSON.stringify({ outcome: 'rejected', code: EXIT.rejected, reason: reply.reason })}\n`,
              );
            }
            return this.fail(`trigger rejected: ${String(reply.reason)}`, EXIT.rejected);
          case 'phase':
            if (verbose) stdout.write(`==> ${String(reply.phase)}\n`);
            break;
          case 'output':
            if (verbose) stdout.write(`${String(reply.line)}\n`);
            break;
          case 'cancelling':
            break;
          case 'outcome': {
            const record = reply.record as OutcomeRecord;
            const code = exitCodeForOutcome(record.outcome ?? 'error');
            if (this.json) {
              stdout.write(
                `${JSON.stringify({
                  sessionId: record.id,
                  agent: record.agent,
                  outcome: record.outcome,
                  exitCode: record.exitCode,
                  signal: record.signal,
                  message: record.message,
                  durationMs: record.durationMs,
                  code,
                  elapsedMs: Date.now() - started,
                })}\n`,
              );
            } else {
              stdout.write(`${outcomeLine(record)}\n`);
            }
            return code;
          }
          case 'error':
            return this.fail(
              `${String(reply.message)}`,
              reply.code === 'bad_request' ? EXIT.usage : EXIT.rejected,
            );
          default:
            break;
        }
      }
    } finally {
      process.off('SIGINT', onInterrupt);
      client.close();
    }
  }
}
