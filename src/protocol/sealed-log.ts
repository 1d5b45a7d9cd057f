import { join } from 'node:path';
import { RECORD_FILES } from '../adapters/sealed-records.js';

/**
 * Where the log of a finished session is once daemon.history has let go of it: its sealed record's
 * session.log, and the command that packs the record. For the socket's `logs` and the HTTP API's log
 * stream alike. `showOutcome`: also name `agentd show`, for an answer that does not carry the outcome.
 */
export function sealedLogHint(sessionId: string, recordDir: string, showOutcome = false): string {
  const show = showOutcome ? `, \`agentd show ${sessionId}\` shows its outcome` : '';
  return `its log is in its sealed record, ${join(recordDir, RECORD_FILES.log)} (\`agentd export ${sessionId}\` packs the record${show})`;
}
