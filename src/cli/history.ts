import { Command, Option } from 'clipanion';
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from '../sessions/history.js';
import { OUTCOMES } from '../sessions/types.js';
import { ClientCommand } from './client-command.js';
import { runHistory } from './history-run.js';
import { isOneOf, isSince, isWholeNumber, isWorkUnit } from './validators.js';

export class HistoryCommand extends ClientCommand {
  static override paths = [['history']];
  static override usage = Command.Usage({
    description: 'List the sessions the daemon keeps records of, newest first',
    details: `
      Every kept record: queued, running and finished sessions (finished ones up to daemon.history, 200 by
      default), also those of earlier runs of the daemon. Filters combine. --since takes a time
      (2026-11-26, 2026-11-26T08:00:00Z) or a duration back from now (2h, 90m); it compares with the time
      the session was accepted. At most --limit sessions (default ${HISTORY_DEFAULT_LIMIT}); a last line says how many more matched.
    `,
    examples: [
      ['The last 50 sessions', '$0 history'],
      [
        'Failed sessions of one agent in the last two hours',
        '$0 history --agent reviewer --outcome failed --since 2h',
      ],
      ['Every session of a work unit, as JSON', '$0 history --work-unit PR-42 --json'],
    ],
  });

  agent = Option.String('--agent', { description: 'Only sessions of this agent' });
  outcome = Option.String('--outcome', {
    description: `Only sessions with this outcome (${OUTCOMES.join(', ')})`,
    validator: isOneOf(OUTCOMES),
  });
  workUnit = Option.String('--work-unit', {
    description: 'Only sessions of this work unit',
    validator: isWorkUnit,
  });
  since = Option.String('--since', {
    description: 'Only sessions accepted since this time, or this long ago (2h)',
    validator: isSince,
  });
  limit = Option.String('--limit', {
    description: `At most this many sessions (1 to ${HISTORY_MAX_LIMIT}; default ${HISTORY_DEFAULT_LIMIT})`,
    validator: isWholeNumber(1, HISTORY_MAX_LIMIT),
  });
  json = Option.Boolean('--json', false, {
    description: 'Print {"sessions": [records...], "more": N} as one JSON object',
  });

  async execute(): Promise<number> {
    const { socket, json, agent, outcome, workUnit, since, limit } = this;
    return runHistory({ socket, json, agent, outcome, workUnit, since, limit }, this.context);
  }
}
