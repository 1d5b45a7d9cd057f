/**
 * A session record's id names its files and directories. A record file `..json` saying id `.` was taken
 * for a session, settled and sealed as `<records_dir>/<agent>/.`: the agent's whole records directory
 * made 0555, and the open record directory of a session still running in it taken for sealed (measured
 * with a real daemon: that session's record kept its running session.json, without its log or outcome).
 * Such a record is quarantined; the sealed records refuse a path that is not one session's directory.
 */
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SealedRecords } from '../../src/adapters/sealed-records.js';
import { SessionFiles } from '../../src/adapters/session-files.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import { SessionJournal } from '../../src/daemon/journal.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import { requestOf } from '../../src/daemon/recovery.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';
import { sessionRecord } from '../helpers/session-record.js';

const dirs: string[] = [];
const closing: (() => void)[] = [];
afterEach(() => {
  for (const close of closing.splice(0)) close();
  for (const dir of dirs.splice(0)) {
    // What a seal made 0555 must be writable again to be removed.
    rmSync(dir, { recursive: true, force: true });
  }
});

const RUNNING = '00000000000000a2';
const writable = (dir: string) => (lstatSync(dir).mode & 0o200) !== 0;

function daemonIn() {
  const stateDir = mkdtempSync(join(tmpdir(), 'agentd-unit-record-id-'));
  dirs.push(stateDir);
  const log = pino({ level: 'silent' });
  const store = new SessionStore(stateDir, sessionRecordSchema);
  const files = new SessionFiles(stateDir);
  const keeper = new RecordKeeper(
    { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
    files,
    log,
  );
  closing.push(() => keeper.close());
  return { stateDir, store, journal: new SessionJournal(store, files, keeper, log, 200) };
}

describe("a stored record's id", () => {
  it.each([
    ['.', '..json'],
    ['..', '...json'],
    ['notes', 'notes.json'],
    ['00000000000000A1', '00000000000000A1.json'],
  ])('%j (file %s) is quarantined; no record directory is sealed for it', async (id, file) => {
    const daemon = daemonIn();
    // A session of the same agent, still running: its record directory is open.
    const open = join(daemon.stateDir, 'records', 'demo', RUNNING);
    mkdirSync(open, { recursive: true, mode: 0o700 });
    writeFileSync(join(open, 'session.json'), JSON.stringify(sessionRecord(RUNNING, { phase: 'running' })));
    writeFileSync(
      join(daemon.store.dir, `${RUNNING}.json`),
      JSON.stringify(sessionRecord(RUNNING, { phase: 'running', recordDir: open })),
    );
    writeFileSync(
      join(daemon.store.dir, file),
      JSON.stringify(
        sessionRecord(id, { phase: 'running', recordDir: join(daemon.stateDir, 'records', 'demo', id) }),
      ),
    );
    const reasons: string[] = [];
    const { unfinished } = daemon.journal.load((bad) => reasons.push(bad.reason));
    expect(reasons).toEqual([
      `it is not a session record: its id ${JSON.stringify(id)} is not a session id (16 lowercase hex characters)`,
    ]);
    expect(unfinished.map((r) => r.id)).toEqual([RUNNING]);
    // Recovery would settle what load returned (its container gone: abandoned), sealing its record.
    for (const record of unfinished.filter((r) => r.id !== RUNNING))
      await daemon.journal.finish(requestOf(record), { outcome: 'abandoned', phase: 'running' });
    expect(writable(join(daemon.stateDir, 'records', 'demo'))).toBe(true);
    expect(writable(open)).toBe(true);
    expect(readdirSync(join(daemon.stateDir, 'records', 'demo'))).toEqual([RUNNING]);
  });
});

describe('the sealed records', () => {
  it.each([
    ['demo', '.'],
    ['demo', '..'],
    ['.', '00000000000000a3'],
    ['demo/../..', '00000000000000a3'],
  ])('refuse to write or seal agent %j, session %j: not one session directory', async (agent, id) => {
    const root = mkdtempSync(join(tmpdir(), 'agentd-unit-record-id-'));
    dirs.push(root);
    const records = new SealedRecords(join(root, 'records'));
    mkdirSync(join(root, 'records', 'demo', RUNNING), { recursive: true, mode: 0o700 });
    await expect(
      records.seal({ agent, sessionId: id, archiveLimit: 1024, json: () => ({}) }),
    ).rejects.toThrow(/not a session id and an agent name/);
    expect(writable(join(root, 'records'))).toBe(true);
    expect(writable(join(root, 'records', 'demo'))).toBe(true);
    expect(writable(join(root, 'records', 'demo', RUNNING))).toBe(true);
  });
});
