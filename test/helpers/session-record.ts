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
