import { describe, expect, it } from 'vitest';
import { parseSince, queryHistory, SessionIndex } from '../../src/sessions/history.js';
import type { SessionRecord } from '../../src/sessions/records.js';

const NOW = Date.parse('2026-11-26T12:00:00Z');

function record(id: string, fields: Partial<SessionRecord>): SessionRecord {
  return {
    version: 1,
    id,
    agent: 'demo',
    repo: 'git://127.0.0.1/r.git',
    acceptedAt: '2026-11-26T10:00:00.000Z',
    phase: 'finished',
    phases: [],
    ...fields,
  };
}

const RECORDS = [
  record('0000000000000001', {
    acceptedAt: '2026-11-26T08:00:00.000Z',
    outcome: 'succeeded',
    finishedAt: '2026-11-26T08:01:00.000Z',
  }),
  record('0000000000000002', {
    acceptedAt: '2026-11-26T09:00:00.000Z',
    outcome: 'failed',
    agent: 'other',
    finishedAt: '2026-11-26T09:30:00.000Z',
  }),
  record('0000000000000003', {
    acceptedAt: '2026-11-26T11:00:00.000Z',
    outcome: 'succeeded',
    workUnit: 'W',
    finishedAt: '2026-11-26T11:01:00.000Z',
  }),
  record('0000000000000004', { acceptedAt: '2026-11-26T11:30:00.000Z', phase: 'running' }),
];
const ids = (page: { sessions: SessionRecord[] }) => page.sessions.map((r) => r.id.slice(-1));

describe('history', () => {
  it('lists every record newest accepted first; filters combine', () => {
    expect(ids(queryHistory(RECORDS, {}, NOW))).toEqual(['4', '3', '2', '1']);
    expect(ids(queryHistory(RECORDS, { agent: 'demo' }, NOW))).toEqual(['4', '3', '1']);
    expect(ids(queryHistory(RECORDS, { outcome: 'succeeded' }, NOW))).toEqual(['3', '1']);
    expect(ids(queryHistory(RECORDS, { workUnit: 'W' }, NOW))).toEqual(['3']);
    expect(ids(queryHistory(RECORDS, { since: '2h' }, NOW))).toEqual(['4', '3']);
    expect(ids(queryHistory(RECORDS, { since: '2026-11-26T09:00:00Z', agent: 'demo' }, NOW))).toEqual([
      '4',
      '3',
    ]);
    expect(queryHistory(RECORDS, { limit: 1 }, NOW)).toMatchObject({ more: 3 });
  });

  it('reads since as a time or a duration back from now', () => {
    expect(parseSince('90m', NOW)).toBe(NOW - 90 * 60_000);
    expect(parseSince('2026-11-26', NOW)).toBe(Date.parse('2026-11-26'));
    expect(parseSince('2026-11-26T08:00:00+01:00', NOW)).toBe(Date.parse('2026-11-26T07:00:00Z'));
    for (const bad of ['yesterday', '2026', '26/11/2026', '2026-13-45', ''])
      expect(parseSince(bad, NOW), bad).toBeUndefined();
  });

  it('the index keeps one record per session and its newest finished ones for status', () => {
    const index = new SessionIndex(RECORDS);
    index.set({
      ...(RECORDS[3] as SessionRecord),
      outcome: 'cancelled',
      finishedAt: '2026-11-26T11:40:00.000Z',
    });
    expect(index.size).toBe(4);
    expect(index.recent(2).map((r) => r.id.slice(-1))).toEqual(['4', '3']);
    index.delete('0000000000000004');
    expect(index.get('0000000000000004')).toBeUndefined();
  });
});
