import { formatDuration } from '../duration.js';
import type { SessionRecord } from '../sessions/records.js';

/** The last line of a followed session: outcome, exit code and duration. */
export function outcomeLine(record: SessionRecord): string {
  const parts = [`session ${record.id} ${outcomeText(record)}`];
  if (record.exitCode !== undefined) parts.push(`exit code ${record.exitCode}`);
  if (record.durationMs !== undefined) parts.push(`in ${formatDuration(record.durationMs)}`);
  const line = parts.join(', ');
  const plain = record.outcome === 'succeeded' && (record.kind === undefined || record.kind === 'success');
  return record.message && !plain ? `${line}: ${record.message}` : line;
}

/** `succeeded`, `succeeded (blocked)`, `failed (work_failed)`: the outcome and, when it says more, the kind. */
export function outcomeText(record: Pick<SessionRecord, 'outcome' | 'kind'>): string {
  const outcome = record.outcome ?? 'unknown';
  const plain = record.kind === undefined || record.kind === 'success' || record.kind === 'failure';
  return plain ? outcome : `${outcome} (${record.kind})`;
}

/** What `trigger --json` and `wait --json` print: the outcome on top, `code` the exit code. */
export function outcomeJson(record: SessionRecord, code: number): Record<string, unknown> {
  return {
    sessionId: record.id,
    agent: record.agent,
    outcome: record.outcome,
    kind: record.kind,
    exitCode: record.exitCode,
    signal: record.signal,
    message: record.message,
    durationMs: record.durationMs,
    code,
  };
}

/** One line per record: id, agent, outcome (or phase), exit code, duration, when, repository. */
export function recordLine(r: SessionRecord): string {
  const state = r.outcome === undefined ? r.phase : outcomeText(r);
  const code = r.exitCode === undefined ? '' : ` (exit ${r.exitCode})`;
  const took = r.durationMs === undefined ? '' : `  ${formatDuration(r.durationMs)}`;
  return `  ${r.id}  ${r.agent}  ${state}${code}${took}  ${r.finishedAt ?? r.acceptedAt}  ${r.repo}`;
}
