/**
 * Files the daemon reads whole at start (session records, a record directory's session.json,
 * schedules.json) are read only within a bound: one larger than agentd writes is refused by its size,
 * never read into memory. The old code read a sparse 1 GiB record whole at start (1.1 GB RSS, 3.4 s),
 * quarantined it as "it cannot be read (ERR_STRING_TOO_LONG)", and took a 2 MiB one for a record.
 */
import { mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SealedRecords } from '../../src/adapters/sealed-records.js';
import { RECORD_MAX_BYTES, SessionStore } from '../../src/adapters/session-store.js';
import { ScheduleLog } from '../../src/daemon/schedule-log.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';
import { makeTempDir } from '../helpers/resources.js';
import { sessionRecord } from '../helpers/session-record.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = makeTempDir('agentd-unit-size-bound-');
  dirs.push(dir);
  return dir;
}

/** A record agentd could have written, padded with spaces (still JSON, still that record) to `bytes`. */
function padded(id: string, bytes: number, extra = {}): string {
  const json = JSON.stringify(sessionRecord(id, extra));
  return json + ' '.repeat(bytes - json.length);
}

const GIB = 1024 * 1024 * 1024;

describe('a session record larger than agentd writes', () => {
  it('is quarantined by its size, naming it, and never read: a sparse 1 GiB one and a padded 2 MiB one', () => {
    const store = new SessionStore(tempDir(), sessionRecordSchema);
    const huge = join(store.dir, '00000000000000c1.json');
    writeFileSync(huge, '');
    truncateSync(huge, GIB);
    writeFileSync(join(store.dir, '00000000000000c2.json'), padded('00000000000000c2', 2 * 1024 * 1024));
    // Up to the bound, a record is read as it always was.
    writeFileSync(join(store.dir, '00000000000000c3.json'), padded('00000000000000c3', RECORD_MAX_BYTES));
    const bad: string[] = [];
    const records = store.list((q) => bad.push(`${q.file.split('/').pop()}: ${q.reason}`));
    expect(records.map((r) => r.id)).toEqual(['00000000000000c3']);
    expect(bad.sort()).toEqual([
      `00000000000000c1.json: it is ${GIB} bytes, more than any session record agentd writes (at most ${RECORD_MAX_BYTES})`,
      `00000000000000c2.json: it is ${2 * 1024 * 1024} bytes, more than any session record agentd writes (at most ${RECORD_MAX_BYTES})`,
    ]);
  });

  it('in a record directory: its session.json is not read, as if unreadable', () => {
    const root = tempDir();
    const records = new SealedRecords(join(root, 'records'));
    const id = '00000000000000d1';
    const dir = join(root, 'records', 'demo', id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'session.json'), padded(id, 2 * 1024 * 1024, { phase: 'running' }));
    expect(records.find(id)).toEqual({ dir, sealed: false, json: undefined });
  });
});

describe('schedules.json larger than agentd writes', () => {
  it('is ignored with a warning naming its size, not read', () => {
    const state = tempDir();
    const entry = JSON.stringify({
      version: 1,
      agents: { nightly: { cron: '0 3 * * *', since: '2026-01-01T00:00:00.000Z' } },
    });
    writeFileSync(join(state, 'schedules.json'), entry + ' '.repeat(17 * 1024 * 1024));
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const since = new ScheduleLog(state, log).load([
      { name: 'nightly', schedule: { cron: '0 3 * * *' } } as never,
    ]);
    expect(since).toEqual({});
    expect(lines.map((l) => l.event)).toEqual(['daemon.schedules_unreadable']);
    expect(String(lines[0]?.msg)).toMatch(/is \d+ bytes, more than agentd writes there \(at most 16777216\)/);
  });
});
