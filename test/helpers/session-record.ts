import type { SessionRecord } from '../../src/sessions/records.js';

/** A queued session's record as the state dir keeps it, for tests of the store and its files. */
export function sessionRecord(id: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    version: 1,
    id,
    agent: 'demo',
    repo: 'git://127.0.0.1/x.git',
    acceptedAt: '2025-01-01T00:00:00.000Z',
    phase: 'queued',
    phases: [{ phase: 'queued', at: '2025-01-01T00:00:00.000Z' }],
    ...extra,
  };
}

/** A session's record as it is sealed: finished now, with `outcome`. */
export function finishedRecord(id: string, outcome: SessionRecord['outcome']): SessionRecord {
  const at = new Date().toISOString();
  return {
    version: 1,
    id,
    agent: 'demo',
    repo: 'git://127.0.0.1/r.git',
    acceptedAt: at,
    finishedAt: at,
    phase: 'finished',
    phases: [{ phase: 'queued', at }],
    outcome,
  };
}
