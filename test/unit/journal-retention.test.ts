import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, expect, it, vi } from 'vitest';
import { SessionFiles } from '../../src/adapters/session-files.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import { SessionJournal } from '../../src/daemon/journal.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import { requestOf } from '../../src/daemon/recovery.js';
import { type SessionRecord, sessionRecordSchema } from '../../src/sessions/records.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-retention-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const record = (i: number): SessionRecord => ({
  version: 1,
  id: i.toString(16).padStart(16, '0'),
  agent: 'demo',
  repo: 'unknown',
  acceptedAt: '2026-12-01T00:00:00.000Z',
  startedAt: '2026-12-01T00:00:00.000Z',
  phase: 'creating',
  phases: [{ phase: 'creating', at: '2026-12-01T00:00:00.000Z' }],
});

it('keeps the newest daemon.history finished records when many sessions are settled at once', async () => {
  const log = pino({ level: 'silent' });
  const store = new SessionStore(join(dir, 'state'), sessionRecordSchema);
  const files = new SessionFiles(join(dir, 'state'));
  const keeper = new RecordKeeper(
    { recordsDir: join(dir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
    files,
    log,
  );
  const journal = new SessionJournal(store, files, keeper, log, 3);
  journal.load(() => {});
  await journal.recover();
  const pruned: string[] = [];
  journal.onPruned = (ids) => pruned.push(...ids);
  // 45 records of an earlier daemon's sessions: 40 settled now, one after the other (as a restart
  // settles them), 5 left unfinished.
  const records = Array.from({ length: 45 }, (_, i) => record(i));
  for (const r of records) journal.rebuilt(r);
  // One millisecond apart, so that which are newest is plain.
  vi.useFakeTimers({ toFake: ['Date'] });
  let now = Date.parse('2026-12-02T00:00:00.000Z');
  for (const r of records.slice(0, 40)) {
    vi.setSystemTime(now++);
    await journal.finish(requestOf(r), { outcome: 'abandoned', phase: 'creating', message: 'gone' });
  }
  vi.useRealTimers();
  const onDisk = readdirSync(join(dir, 'state', 'sessions'))
    .filter((n) => n.endsWith('.json'))
    .map((n) => n.slice(0, -5))
    .sort();
  // Pruned every 20 outcomes: the 3 newest finished are kept, and every unfinished one.
  const kept = [...records.slice(37, 40), ...records.slice(40)].map((r) => r.id).sort();
  expect(onDisk).toEqual(kept);
  expect(pruned.sort()).toEqual(
    records
      .slice(0, 37)
      .map((r) => r.id)
      .sort(),
  );
  expect(records.map((r) => journal.has(r.id))).toEqual(records.map((r) => kept.includes(r.id)));
  expect(journal.recent(10).map((r) => r.id)).toEqual(
    records
      .slice(37, 40)
      .map((r) => r.id)
      .reverse(),
  );
});
