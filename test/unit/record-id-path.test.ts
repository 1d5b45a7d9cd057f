/**
 * A session record's id names its files and directories. A record file `..json` saying id `.` was taken
 * for a session, settled and sealed as `<records_dir>/<agent>/.`: the agent's whole records directory
 * made 0555, and the open record directory of a session still running in it taken for sealed (measured
 * with a real daemon: that session's record kept its running session.json, without its log or outcome).
 * Such a record is quarantined; the sealed records refuse a path that is not one session's directory.
 */
import { lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SealedRecords } from '../../src/adapters/sealed-records.js';
import { requestOf } from '../../src/daemon/recovery.js';
import { journalFixtures } from '../helpers/journal-fixture.js';
import { sessionRecord } from '../helpers/session-record.js';

const { journalIn, tempDir } = journalFixtures('agentd-unit-record-id-');

const RUNNING = '00000000000000a2';
const writable = (dir: string) => (lstatSync(dir).mode & 0o200) !== 0;

const daemonIn = () => journalIn();

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
    const root = tempDir();
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
