import { formatDuration } from '../duration.js';
import type { SessionRecord } from '../sessions/records.js';

/** The last line of a followed session: outcome, exit code and duration. */
export function outcomeLine(record: SessionRecord): string {
  const parts = [`session ${record.id} ${record.outcome ?? 'unknown'}`];
  if (record.exitCode !== undefined) parts.push(`exit code ${record.exitCode}`);
  if (record.durationMs !== undefined) parts.push(`in ${formatDuration(record.durationMs)}`);
  const line = parts.join(', ');
  return record.message && record.outcome !== 'succeeded' ? `${line}: ${record.message}` : line;
}
