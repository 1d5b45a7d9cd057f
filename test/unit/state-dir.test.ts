import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { withoutFinalLineEnding } from '../../src/adapters/credentials.js';
import { ensurePrivateDir, untrustedSocketProblem } from '../../src/adapters/ownership.js';
import { claimPidFile } from '../../src/adapters/pid-file.js';
import { QUARANTINE_MAX_FILES, SessionStore, type StateDirError } from '../../src/adapters/session-store.js';
import { SessionLog } from '../../src/runner/session-log.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';
import { sessionRecord } from '../helpers/session-record.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-state-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const record = sessionRecord;

const ID = '0123456789abcdef';
const isRoot = process.geteuid?.() === 0;

describe('owning the daemon directories', () => {
  it('creates a missing directory 0700 and accepts it', () => {
    const dir = join(tempDir(), 'state');
    ensurePrivateDir(dir, 'state dir');
    expect(existsSync(dir)).toBe(true);
  });

  it('refuses a directory that group or others may write, naming the path, owner, mode and fix', () => {
    const dir = join(tempDir(), 'state');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    expect(() => ensurePrivateDir(dir, 'state dir')).toThrow(
      new RegExp(
        `state dir ${dir} is owned by uid \\d+.* with mode 0777: group or others may write to it. Fix: chmod 700 ${dir}`,
      ),
    );
  });

  it.skipIf(!isRoot)('refuses a directory owned by another user', () => {
    const dir = join(tempDir(), 'run');
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    expect(() => ensurePrivateDir(dir, 'socket directory')).toThrow(
      /socket directory .* is owned by uid 65534 \(nobody\) with mode 0700, but agentd runs as uid 0 \(root\).*Fix: chown 0 /,
    );
  });

  it('refuses a symbolic link in place of a directory', () => {
    const base = tempDir();
    mkdirSync(join(base, 'real'), { mode: 0o700 });
    symlinkSync(join(base, 'real'), join(base, 'state'));
    expect(() => ensurePrivateDir(join(base, 'state'), 'state dir')).toThrow(/is a symbolic link/);
  });

  it.skipIf(!isRoot)(
    'a client trusts only a socket of root or its own user, in a directory nobody else controls',
    () => {
      const dir = join(tempDir(), 'run');
      mkdirSync(dir, { mode: 0o700 });
      const path = join(dir, 'fake.sock');
      writeFileSync(path, '');
      expect(untrustedSocketProblem(path)).toMatch(/is not a socket/);
      expect(untrustedSocketProblem(join(dir, 'missing.sock'))).toBeUndefined();
    },
  );
});

describe('session records', () => {
  it('quarantines garbage, truncated, wrong-shape, mismatched and linked records, keeps good ones', () => {
    const state = tempDir();
    const store = new SessionStore(state, sessionRecordSchema);
    const ids = ['1111111111111111', '2222222222222222', '3333333333333333', '4444444444444444'];
    writeFileSync(join(store.dir, `${ids[0]}.json`), 'garbage\x00\xff');
    writeFileSync(join(store.dir, `${ids[1]}.json`), JSON.stringify(record(ids[1] as string)).slice(0, 40));
    writeFileSync(join(store.dir, `${ids[2]}.json`), '[]');
    writeFileSync(join(store.dir, `${ids[3]}.json`), JSON.stringify(record(ID)));
    const target = join(state, 'target.json');
    writeFileSync(target, JSON.stringify(record('5555555555555555')));
    symlinkSync(target, join(store.dir, '5555555555555555.json'));
    store.accept(record(ID));
    const bad: string[] = [];
    const records = store.list((q) => bad.push(`${q.file.split('/').pop()}: ${q.reason}`));
    expect(records.map((r) => r.id)).toEqual([ID]);
    expect(bad.sort()).toEqual([
      expect.stringMatching(new RegExp(`^${ids[0]}.json: it is not JSON \\(Unexpected token 'g'`)),
      expect.stringMatching(new RegExp(`^${ids[1]}.json: it is not JSON`)),
      `${ids[2]}.json: it is not a session record`,
      `${ids[3]}.json: the record says session ${ID}, its file name ${ids[3]}`,
      '5555555555555555.json: it is a symbolic link',
    ]);
    expect(readdirSync(store.quarantineDir)).toHaveLength(5);
    expect(readdirSync(store.dir).sort()).toEqual([`${ID}.json`, 'quarantine']);
    // The link was moved, not followed: its target is untouched.
    expect(JSON.parse(readFileSync(target, 'utf8')).id).toBe('5555555555555555');
  });

  it('names the log a quarantined record leaves in sessions/, and leaves it there', () => {
    const store = new SessionStore(tempDir(), sessionRecordSchema);
    const withLog = '6666666666666666';
    const without = '7777777777777777';
    writeFileSync(join(store.dir, `${withLog}.json`), 'garbage');
    writeFileSync(join(store.dir, `${withLog}.log`), '1 2026-01-01T00:00:00.000Z out hello\n');
    writeFileSync(join(store.dir, `${without}.json`), 'garbage');
    const bad: { file: string; log?: string }[] = [];
    store.list((q) => bad.push({ file: q.file.split('/').pop() as string, log: q.log }));
    expect(bad.sort((a, b) => a.file.localeCompare(b.file))).toEqual([
      { file: `${withLog}.json`, log: join(store.dir, `${withLog}.log`) },
      { file: `${without}.json`, log: undefined },
    ]);
    // Not moved: a session rebuilt from its container's labels goes on from where it ends.
    expect(readdirSync(store.dir).sort()).toEqual([`${withLog}.log`, 'quarantine']);
  });

  it("moves a quarantined record's log beside it at the next start when the session has no record again", () => {
    const state = tempDir();
    const first = new SessionStore(state, sessionRecordSchema);
    const orphan = '8888888888888888';
    const rebuilt = '9999999999999999';
    for (const id of [orphan, rebuilt]) {
      writeFileSync(join(first.dir, `${id}.json`), 'garbage');
      writeFileSync(join(first.dir, `${id}.log`), 'x'.repeat(40_000));
    }
    writeFileSync(join(first.dir, `${orphan}.log.1`), 'y'.repeat(40_000));
    first.list(() => {});
    // This start leaves them: a session rebuilt from its container's labels goes on from where it ends.
    expect(first.tidyQuarantine(() => false)).toMatchObject({ logsMoved: [], removed: 0 });
    expect(readdirSync(first.dir).sort()).toEqual([
      `${orphan}.log`,
      `${orphan}.log.1`,
      `${rebuilt}.log`,
      'quarantine',
    ]);
    // One of them was rebuilt from its container and has a record again; the other has none.
    first.accept(record(rebuilt));
    const next = new SessionStore(state, sessionRecordSchema);
    const ids = next.list(() => {}).map((r) => r.id);
    expect(next.tidyQuarantine((id) => ids.includes(id))).toMatchObject({
      logsMoved: [join(next.dir, `${orphan}.log`), join(next.dir, `${orphan}.log.1`)],
      removed: 0,
    });
    expect(readdirSync(next.dir).sort()).toEqual([`${rebuilt}.json`, `${rebuilt}.log`, 'quarantine']);
    expect(readdirSync(next.quarantineDir).sort()).toEqual([
      expect.stringMatching(new RegExp(`^${orphan}\\.json\\.\\d+$`)),
      expect.stringMatching(new RegExp(`^${orphan}\\.log\\.1\\.\\d+$`)),
      expect.stringMatching(new RegExp(`^${orphan}\\.log\\.\\d+$`)),
      expect.stringMatching(new RegExp(`^${rebuilt}\\.json\\.\\d+$`)),
    ]);
  });

  it(`keeps the newest ${QUARANTINE_MAX_FILES} files in the quarantine, removing older ones at start`, () => {
    const state = tempDir();
    const store = new SessionStore(state, sessionRecordSchema);
    mkdirSync(store.quarantineDir);
    // What earlier starts moved aside, oldest first, a directory planted where a record goes among them.
    const old = Date.now() - 1_000_000;
    for (let i = 0; i < QUARANTINE_MAX_FILES + 50; i++) {
      writeFileSync(
        join(store.quarantineDir, `${i.toString(16).padStart(16, 'a')}.json.${old + i}`),
        'garbage',
      );
    }
    mkdirSync(join(store.quarantineDir, `planted.json.${old - 1}`));
    writeFileSync(join(store.quarantineDir, `planted.json.${old - 1}`, 'inside'), 'x');
    // Not one agentd moved there: left alone.
    writeFileSync(join(store.quarantineDir, 'README'), 'notes');
    writeFileSync(join(store.dir, `${ID}.json`), 'garbage');
    store.list(() => {});
    expect(store.tidyQuarantine(() => false)).toMatchObject({ logsMoved: [], removed: 52 });
    const kept = readdirSync(store.quarantineDir);
    expect(kept).toHaveLength(QUARANTINE_MAX_FILES + 1);
    expect(kept).toContain('README');
    expect(kept).toContainEqual(expect.stringMatching(new RegExp(`^${ID}\\.json\\.\\d+$`)));
    expect(kept).toContain(
      `${(QUARANTINE_MAX_FILES + 49).toString(16).padStart(16, 'a')}.json.${old + QUARANTINE_MAX_FILES + 49}`,
    );
    expect(kept).not.toContain(`${'0'.padStart(16, 'a')}.json.${old}`);
    expect(kept).not.toContain(`planted.json.${old - 1}`);
  });

  it('keeps the newest files the quarantine holds within its bound on disk, removing older ones at start', () => {
    const state = tempDir();
    const limit = 64 * 1024;
    const store = new SessionStore(state, sessionRecordSchema, { quarantineMaxBytes: limit });
    mkdirSync(store.quarantineDir);
    // Ten earlier logs and records of 20 KiB each (random: every block allocated), oldest first, and a
    // directory planted where a record went, older still, holding 200 KiB.
    const old = Date.now() - 1_000_000;
    const name = (i: number) => `${i.toString(16).padStart(16, 'b')}.json.${old + i}`;
    for (let i = 0; i < 10; i++) writeFileSync(join(store.quarantineDir, name(i)), randomBytes(20 * 1024));
    mkdirSync(join(store.quarantineDir, `planted.json.${old - 1}`));
    writeFileSync(join(store.quarantineDir, `planted.json.${old - 1}`, 'inside'), randomBytes(200 * 1024));
    const tidied = store.tidyQuarantine(() => false);
    // Far fewer than QUARANTINE_MAX_FILES, yet only the newest three fit in 64 KiB.
    expect(tidied).toMatchObject({ logsMoved: [], removed: 8 });
    expect(tidied.removedBytes).toBeGreaterThanOrEqual(7 * 20 * 1024 + 200 * 1024);
    expect(tidied.keptBytes).toBeGreaterThanOrEqual(3 * 20 * 1024);
    expect(tidied.keptBytes).toBeLessThanOrEqual(limit);
    expect(readdirSync(store.quarantineDir).sort()).toEqual([name(7), name(8), name(9)]);

    // The newest is kept whatever its size (the warning that moved it there named it); the rest go.
    writeFileSync(join(store.quarantineDir, name(20)), randomBytes(100 * 1024));
    expect(store.tidyQuarantine(() => false)).toMatchObject({ removed: 3 });
    expect(readdirSync(store.quarantineDir)).toEqual([name(20)]);
  });

  it('never writes through a planted link and leaves no temp file', () => {
    const state = tempDir();
    const store = new SessionStore(state, sessionRecordSchema);
    const target = join(state, 'elsewhere');
    writeFileSync(target, 'untouched');
    symlinkSync(target, join(store.dir, `${ID}.json`));
    expect(() => store.accept(record(ID))).toThrow(/state dir not writable: cannot record session/);
    expect(readFileSync(target, 'utf8')).toBe('untouched');
    expect(readdirSync(store.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(store.read(ID)).toBeUndefined();
  });

  it('removes temp files a crash left behind', () => {
    const store = new SessionStore(tempDir(), sessionRecordSchema);
    writeFileSync(join(store.dir, `${ID}.json.123.tmp`), '');
    writeFileSync(join(store.dir, `${ID}.json.123.abcd0123.tmp`), '{');
    store.list();
    expect(readdirSync(store.dir)).toEqual([]);
  });

  it('keeps updates it cannot write in memory, serves them, and writes them once it can', () => {
    const state = tempDir();
    const failures: StateDirError[] = [];
    const store = new SessionStore(state, sessionRecordSchema, { onWriteFailure: (e) => failures.push(e) });
    // A directory where the record goes makes every write of it fail, as a full disk would.
    mkdirSync(join(store.dir, `${ID}.json`));
    store.put(record(ID));
    const updated = store.update(ID, (r) => ({ ...r, phase: 'running' }));
    expect(updated?.phase).toBe('running');
    expect(failures.map((f) => f.code)).toEqual(['STATE_DIR_UNWRITABLE', 'STATE_DIR_UNWRITABLE']);
    expect(store.read(ID)?.phase).toBe('running');
    expect(store.unwritten).toBe(1);
    expect(() => store.flush()).toThrow();
    rmSync(join(store.dir, `${ID}.json`), { recursive: true });
    store.flush();
    expect(store.unwritten).toBe(0);
    expect(JSON.parse(readFileSync(join(store.dir, `${ID}.json`), 'utf8')).phase).toBe('running');
    expect(readdirSync(store.dir).filter((n) => n.includes('probe') || n.endsWith('.tmp'))).toEqual([]);
  });
});

describe('session log', () => {
  it('refuses to append through a planted link; the target stays unchanged', async () => {
    const dir = tempDir();
    const target = join(dir, 'target');
    writeFileSync(target, 'untouched\n');
    symlinkSync(target, join(dir, 'x.log'));
    const log = new SessionLog(join(dir, 'x.log'), 1024);
    log.append('agent-controlled text');
    await log.flushed();
    expect(readFileSync(target, 'utf8')).toBe('untouched\n');
    expect(log.missing).toEqual({ lines: 1, bytes: 22 });
    await log.close();
  });

  it('records a gap once the log can be written again', async () => {
    const dir = tempDir();
    const path = join(dir, 'x.log');
    // Something that is not a file stands where the log goes: nothing can be written for now.
    mkdirSync(path);
    const log = new SessionLog(path, 1024);
    log.append('lost one');
    log.append('lost two');
    await log.flushed();
    expect(log.missing).toEqual({ lines: 2, bytes: 18 });
    rmSync(path, { recursive: true });
    log.append('after');
    await log.close();
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines[0]).toMatch(
      /^- \S+ note \[agentd: 2 line\(s\), 18 bytes of output are missing here: the log could not be written \(EISDIR\) from .* to .*; followers received them live\]$/,
    );
    expect(lines.slice(1)).toEqual([expect.stringMatching(/^3 \S+ out after$/), '']);
    expect(new SessionLog(path, 1024).writtenLines()).toBeUndefined();
  });
});

describe('pid file', () => {
  it('takes over a planted link without following it', () => {
    const dir = tempDir();
    const target = join(dir, 'target');
    writeFileSync(target, '1\n');
    symlinkSync(target, join(dir, 'agentd.pid'));
    const claim = claimPidFile(join(dir, 'agentd.pid'));
    expect(readFileSync(target, 'utf8')).toBe('1\n');
    expect(readFileSync(join(dir, 'agentd.pid'), 'utf8')).toBe(`${process.pid}\n`);
    claim.release();
    expect(existsSync(join(dir, 'agentd.pid'))).toBe(false);
  });
});

describe('file: credentials as bytes', () => {
  it('keeps every byte but one final line ending (LF or CRLF)', () => {
    const latin1 = Buffer.from('pässwörd-1234', 'latin1');
    expect(withoutFinalLineEnding(Buffer.concat([latin1, Buffer.from('\n')]))).toEqual(latin1);
    expect(withoutFinalLineEnding(Buffer.from('tok\r\n'))).toEqual(Buffer.from('tok'));
    expect(withoutFinalLineEnding(Buffer.from('a\r\nb\r\n\n'))).toEqual(Buffer.from('a\r\nb\r\n'));
    expect(withoutFinalLineEnding(Buffer.from('tok\r'))).toEqual(Buffer.from('tok\r'));
    expect(withoutFinalLineEnding(Buffer.alloc(0))).toEqual(Buffer.alloc(0));
  });
});
