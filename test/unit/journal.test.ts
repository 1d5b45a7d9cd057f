import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SessionFiles, StagedFilesFullError } from '../../src/adapters/session-files.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import { SessionJournal } from '../../src/daemon/journal.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import { requestOf } from '../../src/daemon/recovery.js';
import { type SessionRecord, sessionRecordSchema } from '../../src/sessions/records.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function journalIn(stateDir: string, historyLimit: number, maxStagedBytes?: number) {
  const log = pino({ level: 'silent' });
  const store = new SessionStore(stateDir, sessionRecordSchema);
  const files = new SessionFiles(stateDir, maxStagedBytes);
  const keeper = new RecordKeeper(
    { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
    files,
    log,
  );
  return { store, files, journal: new SessionJournal(store, files, keeper, log, historyLimit) };
}

function finished(i: number): SessionRecord {
  const at = (s: number) => new Date(Date.UTC(2026, 10, 26, 8, i, s)).toISOString();
  return {
    version: 1,
    id: `00000000000000${String(i).padStart(2, '0')}`,
    agent: 'demo',
    repo: 'git://127.0.0.1/r.git',
    acceptedAt: at(0),
    finishedAt: at(30),
    phase: 'finished',
    phases: [{ phase: 'queued', at: at(0) }],
    outcome: 'succeeded',
  };
}

describe('SessionJournal at start', () => {
  it('keeps daemon.history finished records from the start on, in memory and in the state dir', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const earlier = journalIn(stateDir, 100);
    for (let i = 1; i <= 5; i++) earlier.store.put(finished(i));
    const running: SessionRecord = { ...finished(6), phase: 'running' };
    delete running.outcome;
    delete running.finishedAt;
    earlier.store.put(running);

    const { journal } = journalIn(stateDir, 2);
    const pruned: string[] = [];
    journal.onPruned = (ids) => pruned.push(...ids);
    const { unfinished } = journal.load(() => {});
    expect(unfinished.map((r) => r.id)).toEqual([running.id]);
    await journal.recover();

    // The three oldest finished are gone; the newest two and the unfinished one stay.
    expect(pruned.sort()).toEqual([1, 2, 3].map((i) => finished(i).id));
    expect(journal.history({ limit: 100 }).sessions.map((r) => r.id)).toEqual([
      running.id,
      finished(5).id,
      finished(4).id,
    ]);
    expect(
      readdirSync(join(stateDir, 'sessions'))
        .filter((f) => f.endsWith('.json'))
        .sort(),
    ).toEqual([4, 5, 6].map((i) => `${finished(i).id}.json`));
  });
});

describe('SessionJournal at start, with files staged by the daemon before', () => {
  it('counts the staged files of the sessions it goes on with against what all staged files may take', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const limit = 3 * 1024 * 1024;
    const payload = {
      request: Buffer.alloc(1024 * 1024, 'r'),
      inputs: [{ name: 'data.bin', bytes: Buffer.alloc(1024 * 1024, 'i') }],
    };
    const earlier = journalIn(stateDir, 100);
    const queued: SessionRecord = { ...finished(1), phase: 'queued' };
    delete queued.outcome;
    delete queued.finishedAt;
    earlier.store.put(queued);
    await earlier.files.stage(queued.id, payload);
    // A finished session's files are removed at the start, and are not counted.
    earlier.store.put(finished(2));
    await earlier.files.stage(finished(2).id, payload);

    const next = journalIn(stateDir, 100, limit);
    next.journal.load(() => {});
    await next.journal.recover();
    expect(next.files.sessions()).toEqual([queued.id]);
    // 2 MiB of the 3 are the queued session's: another 2 MiB would pass the bound.
    await expect(next.files.stage('00000000000000aa', payload)).rejects.toThrow(StagedFilesFullError);
    // Once it has run, its room is free again.
    next.files.remove(queued.id);
    await next.files.stage('00000000000000aa', payload);
  });
});

describe('SessionJournal settling many sessions at once', () => {
  it('keeps the newest daemon.history finished records, pruned every 20 outcomes', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const { journal } = journalIn(stateDir, 3);
    journal.load(() => {});
    await journal.recover();
    const pruned: string[] = [];
    journal.onPruned = (ids) => pruned.push(...ids);
    // 45 sessions of an earlier daemon, rebuilt from their containers: 40 settled one after the other (as
    // a restart settles them), 5 left unfinished.
    const records = Array.from({ length: 45 }, (_, i): SessionRecord => {
      const { finishedAt: _f, outcome: _o, ...rest } = finished(i);
      return { ...rest, id: i.toString(16).padStart(16, '0'), phase: 'creating' };
    });
    for (const r of records) journal.rebuilt(r);
    // One millisecond apart, so that which are newest is plain.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      let now = Date.parse('2026-12-02T00:00:00.000Z');
      for (const r of records.slice(0, 40)) {
        vi.setSystemTime(now++);
        await journal.finish(requestOf(r), { outcome: 'abandoned', phase: 'creating', message: 'gone' });
      }
    } finally {
      vi.useRealTimers();
    }
    const ids = (list: SessionRecord[]) => list.map((r) => r.id).sort();
    const kept = ids([...records.slice(37, 40), ...records.slice(40)]);
    expect(
      readdirSync(join(stateDir, 'sessions'))
        .filter((n) => n.endsWith('.json'))
        .map((n) => n.slice(0, -'.json'.length))
        .sort(),
    ).toEqual(kept);
    expect(pruned.sort()).toEqual(ids(records.slice(0, 37)));
    expect(records.map((r) => journal.has(r.id))).toEqual(records.map((r) => kept.includes(r.id)));
    expect(journal.recent(10).map((r) => r.id)).toEqual(
      records
        .slice(37, 40)
        .map((r) => r.id)
        .reverse(),
    );
  });
});
