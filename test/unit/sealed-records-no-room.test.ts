/**
 * A seal on a filesystem with no room (src/adapters/sealed-records.ts): the record is left open, never
 * sealed as it is, and says how the session ended; a later seal, once there is room, completes it.
 * ENOSPC is injected at the write that runs out of room (node:fs mocked for the module under test).
 */
import { execFileSync } from 'node:child_process';
import type * as fs from 'node:fs';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SealedRecords } from '../../src/adapters/sealed-records.js';
import { makeTempDir } from '../helpers/resources.js';

const faults = vi.hoisted(() => ({ mkdirOut: false, writeLog: false }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const noRoom = (syscall: string, path: string) =>
    Object.assign(new Error(`ENOSPC: no space left on device, ${syscall} '${path}'`), {
      code: 'ENOSPC',
      syscall,
      path,
    });
  const isOut = (path: unknown) => typeof path === 'string' && path.endsWith('/out');
  // The record's log (not the session's, which the seal reads), written in place or through a temp file.
  const isLog = (path: unknown) =>
    typeof path === 'string' && /\/records\/.*\/session\.log(\.\d+\.[0-9a-f]+\.tmp)?$/.test(path);
  const mkdirSync = ((path: fs.PathLike, options?: fs.MakeDirectoryOptions) => {
    if (faults.mkdirOut && isOut(path)) {
      faults.mkdirOut = false;
      throw noRoom('mkdir', String(path));
    }
    return real.mkdirSync(path, options);
  }) as typeof real.mkdirSync;
  const writeFileSync = ((path: fs.PathOrFileDescriptor, data: string | NodeJS.ArrayBufferView, options) => {
    if (faults.writeLog && isLog(path)) {
      faults.writeLog = false;
      // What a full disk does: the file is made, nothing is written into it.
      real.writeFileSync(path, '', { flag: 'wx', mode: 0o600 });
      throw noRoom('write', String(path));
    }
    return real.writeFileSync(path, data, options);
  }) as typeof real.writeFileSync;
  const openSync = ((path: fs.PathLike, flags?: fs.OpenMode, mode?: fs.Mode | null) => {
    if (faults.writeLog && isLog(path)) {
      faults.writeLog = false;
      throw noRoom('open', String(path));
    }
    return real.openSync(path, flags ?? 'r', mode);
  }) as typeof real.openSync;
  const mocked = { ...real, mkdirSync, writeFileSync, openSync };
  return { ...mocked, default: mocked };
});

const ID = '0123456789abcdef';

afterEach(() => {
  faults.mkdirOut = false;
  faults.writeLog = false;
});

/** A session's work: an output archive of one 300 KB file, and its log. */
function work(dir: string): { archive: string; log: string } {
  const tree = mkdtempSync(join(dir, 'tree-'));
  writeFileSync(join(tree, 'result.bin'), Buffer.alloc(300 * 1024, 'r'));
  const archive = join(dir, 'out.tar');
  execFileSync('tar', ['-cf', archive, '-C', tree, '.']);
  const log = join(dir, 'session.log');
  writeFileSync(log, 'line one\nline two\n');
  return { archive, log };
}

function sealOf(records: SealedRecords, { archive, log }: { archive: string; log: string }) {
  return records.seal({
    agent: 'demo',
    sessionId: ID,
    log,
    archive,
    archiveLimit: 1 << 20,
    json: (output) => ({ id: ID, phase: 'finished', outcome: 'succeeded', output }),
    pending: { id: ID, phase: 'finished', outcome: 'succeeded' },
  } as Parameters<SealedRecords['seal']>[0]);
}

const json = (dir: string) =>
  JSON.parse(readFileSync(join(dir, 'session.json'), 'utf8')) as Record<string, unknown>;
const sealed = (dir: string) => (lstatSync(dir).mode & 0o222) === 0;

describe('sealed records on a filesystem with no room', () => {
  for (const [what, fault] of [
    ['out/ cannot be made (no inode left)', 'mkdirOut'],
    ['the log cannot be written (no block left)', 'writeLog'],
  ] as const) {
    it(`leaves the record open with how the session ended when ${what}, and completes it on the next seal`, async () => {
      const dir = makeTempDir('agentd-unit-records-');
      const records = new SealedRecords(join(dir, 'records'));
      const session = work(dir);
      const recordDir = records.dirOf('demo', ID);
      // As it was written while the session ran.
      records.write('demo', ID, { id: ID, phase: 'running' });
      await records.settled();

      faults[fault] = true;
      await expect(sealOf(records, session)).rejects.toThrow(/ENOSPC/);
      // Not sealed as it is (session.json of a running session, an empty log and out/): open, saying
      // how the session ended, with no empty log in the place of the real one.
      expect(sealed(recordDir)).toBe(false);
      expect(json(recordDir)).toMatchObject({ phase: 'finished', outcome: 'succeeded' });
      expect(readdirSync(recordDir).filter((n) => n.startsWith('session.log'))).toEqual([]);
      expect(records.prune(0, 0)).toEqual([]);

      // Room again: the next seal completes it.
      const { output } = await sealOf(records, session);
      expect(output).toMatchObject({ files: 1, bytes: 300 * 1024, skipped: 0, truncated: false });
      expect(sealed(recordDir)).toBe(true);
      expect(readFileSync(join(recordDir, 'session.log'), 'utf8')).toBe('line one\nline two\n');
      expect(lstatSync(join(recordDir, 'out', 'result.bin')).size).toBe(300 * 1024);
      expect(json(recordDir)).toMatchObject({ outcome: 'succeeded', output: { files: 1 } });
      expect(readdirSync(recordDir).sort()).toEqual(['out', 'session.json', 'session.log']);
    });
  }
});
