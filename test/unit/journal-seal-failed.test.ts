/**
 * A session whose record cannot be sealed for a reason other than room (a link planted for its record
 * directory, a read-only filesystem): no amount of waiting fixes it, so the seal is not made again and
 * the session's output is not kept for it; session.record_unwritten is logged once, the record's output
 * says why, and the work dir goes, as before seals were made again for lack of room.
 */
import { execFileSync } from 'node:child_process';
import type * as fs from 'node:fs';
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { markNothingToSearch } from '../../src/adapters/output-archive.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import { isSealPending } from '../../src/daemon/record-keeper.js';
import { requestOf } from '../../src/daemon/recovery.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';
import { journalOver } from '../helpers/journal-fixture.js';

/** The errno the next mkdir of a record's out/ fails with (once). */
const faults = vi.hoisted(() => ({ mkdirOut: undefined as string | undefined }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const mkdirSync = ((path: fs.PathLike, options?: fs.MakeDirectoryOptions) => {
    const code = faults.mkdirOut;
    if (code !== undefined && String(path).endsWith('/out')) {
      faults.mkdirOut = undefined;
      throw Object.assign(new Error(`${code}: mkdir '${path}'`), { code, syscall: 'mkdir', path });
    }
    return real.mkdirSync(path, options);
  }) as typeof real.mkdirSync;
  const mocked = { ...real, mkdirSync };
  return { ...mocked, default: mocked };
});

const dirs: string[] = [];
const closing: (() => unknown)[] = [];
afterEach(async () => {
  faults.mkdirOut = undefined;
  vi.restoreAllMocks();
  for (const close of closing.splice(0)) await close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const ID = '00000000000000f2';

function daemonIn(stateDir: string) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const { store, files, keeper, journal } = journalOver(stateDir, log, 100);
  const published: string[] = [];
  journal.followAll((event) => {
    if (event.type === 'outcome') published.push(event.sessionId);
  });
  closing.push(() => keeper.close());
  const events = (name: string) => lines.filter((l) => l.event === name);
  return { store, files, keeper, journal, published, lines, events };
}

type Daemon = ReturnType<typeof daemonIn>;

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** A session accepted and run: its container left an archive of one file in its work dir. */
async function ran(daemon: Daemon) {
  daemon.journal.load(() => {});
  await daemon.journal.recover();
  const request = requestOf({
    version: 1,
    id: ID,
    agent: 'demo',
    repo: 'git://127.0.0.1/r.git',
    acceptedAt: new Date().toISOString(),
    phase: 'queued',
    phases: [],
  });
  daemon.journal.accept(request, 1 << 20);
  daemon.journal.phase(ID, 'running');
  const tree = tempDir('agentd-seal-failed-out-');
  writeFileSync(join(tree, 'result.txt'), 'done\n');
  const paths = daemon.files.paths(ID);
  execFileSync('tar', ['-cf', paths.archive, '-C', tree, '.']);
  markNothingToSearch(paths.archive, paths.searched);
  await daemon.keeper.settled();
  return request;
}

const ended = { outcome: 'succeeded', phase: 'running', exitCode: 0 } as const;

/** What a session whose seal was given up has: the reason in its record, its work dir gone. */
function expectGivenUp(daemon: Daemon, stateDir: string, reason: RegExp): void {
  const output = daemon.journal.record(ID)?.output;
  expect(output).toMatchObject({ files: 0, missing: expect.stringMatching(reason) });
  expect(output?.missing).toMatch(/could not be sealed.*session\.record_unwritten/);
  expect(isSealPending(output)).toBe(false);
  expect(new SessionStore(stateDir, sessionRecordSchema).read(ID)?.output).toEqual(output);
  expect(daemon.files.sessions()).toEqual([]);
  const record = daemon.journal.record(ID);
  if (record) expect(daemon.keeper.waiting(record)).toBe(false);
}

describe('a seal that fails for a reason other than room', () => {
  it('a link planted for the record directory: logged once as unwritten, never made again, the work dir removed', async () => {
    const stateDir = tempDir('agentd-seal-failed-');
    const daemon = daemonIn(stateDir);
    const request = await ran(daemon);
    const recordDir = daemon.keeper.dirOf('demo', ID);
    const elsewhere = tempDir('agentd-seal-failed-elsewhere-');
    rmSync(recordDir, { recursive: true });
    symlinkSync(elsewhere, recordDir);

    await daemon.journal.finish(request, ended);
    expect(daemon.published).toEqual([ID]);
    expectGivenUp(daemon, stateDir, /symbolic link/);
    expect(daemon.events('session.record_unwritten')).toEqual([
      expect.objectContaining({ level: 40, session: ID, code: 'UNSAFE_PATH' }),
    ]);
    expect(daemon.events('session.record_unsealed')).toEqual([]);

    // Nothing to make again, however late: no attempt, no line, nothing written through the link.
    await daemon.keeper.retry(Number.MAX_SAFE_INTEGER);
    daemon.journal.flush();
    await daemon.keeper.retry(Number.MAX_SAFE_INTEGER);
    expect(daemon.events('session.record_unwritten')).toHaveLength(1);
    expect(daemon.events('session.record_unsealed')).toEqual([]);
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it('a read-only filesystem (EROFS): not made again, the work dir removed', async () => {
    const stateDir = tempDir('agentd-seal-failed-');
    const daemon = daemonIn(stateDir);
    const request = await ran(daemon);
    faults.mkdirOut = 'EROFS';
    await daemon.journal.finish(request, ended);
    expect(faults.mkdirOut).toBeUndefined();
    expectGivenUp(daemon, stateDir, /EROFS/);
    expect(daemon.events('session.record_unwritten')).toEqual([
      expect.objectContaining({ session: ID, code: 'EROFS' }),
    ]);
    expect(daemon.events('session.record_unsealed')).toEqual([]);
    await daemon.keeper.retry(Number.MAX_SAFE_INTEGER);
    expect(daemon.events('session.record_unwritten')).toHaveLength(1);
  });

  it('a seal that waited for room and then fails otherwise is given up: its work dir removed, its record says why', async () => {
    const stateDir = tempDir('agentd-seal-failed-');
    const daemon = daemonIn(stateDir);
    const request = await ran(daemon);
    faults.mkdirOut = 'ENOSPC';
    await daemon.journal.finish(request, ended);
    expect(daemon.files.sessions()).toEqual([ID]);
    expect(isSealPending(daemon.journal.record(ID)?.output)).toBe(true);

    faults.mkdirOut = 'EROFS';
    await daemon.keeper.retry(Number.MAX_SAFE_INTEGER);
    expect(faults.mkdirOut).toBeUndefined();
    expectGivenUp(daemon, stateDir, /EROFS/);
    expect(daemon.events('session.record_unsealed')).toHaveLength(1);
    expect(daemon.events('session.record_unwritten')).toHaveLength(1);
    expect(daemon.events('session.record_sealed')).toEqual([]);
    // Not tried again.
    await daemon.keeper.retry(Number.MAX_SAFE_INTEGER);
    expect(daemon.events('session.record_unwritten')).toHaveLength(1);
    expect(daemon.published).toEqual([ID]);
  });

  it('at a start: a record whose seal fails otherwise has its work dir removed, its outcome not published again', async () => {
    const stateDir = tempDir('agentd-seal-failed-');
    const first = daemonIn(stateDir);
    const request = await ran(first);
    faults.mkdirOut = 'ENOSPC';
    await first.journal.finish(request, ended);
    first.keeper.close();
    expect(first.files.sessions()).toEqual([ID]);

    const next = daemonIn(stateDir);
    expect(next.journal.load(() => {}).unfinished).toEqual([]);
    faults.mkdirOut = 'EROFS';
    await next.journal.recover();
    expect(faults.mkdirOut).toBeUndefined();
    expectGivenUp(next, stateDir, /EROFS/);
    expect(existsSync(next.files.paths(ID).archive)).toBe(false);
    expect(next.events('session.record_unsealed')).toEqual([]);
    expect(next.published).toEqual([]);
  });
});
