import { formatDuration } from '../duration.js';

export interface OutcomeRecord {
  id: string;
  agent?: string;
  outcome?: string;
  exitCode?: number;
  signal?: string;
  message?: string;
  durationMs?: number;
  phase?: string;
}

/** The last line of a followed session: outcome, exit code and duration. */
export function outcomeLine(record: OutcomeRecord): string {
  const parts = [`session ${record.id} ${record.outcome ?? 'unknown'}`];
  if (record.exitCode !== undefined) parts.push(`exit code ${record.exitCode}`);
  if (record.durationMs !== undefined) parts.push(`in ${formatDuration(record.durationMs)}`);
  const line = parts.join(', ');
  return record.message && record.outcome !== 'succeeded' ? `${line}: ${record.message}` : line;
}
