/**
 * What a state dir that takes no writes is reported as (src/adapters/state-files.ts): the errno the
 * filesystem gave, not Node's stand-in, and the fix for it. The failing calls are stubbed: the tests run
 * on a writable disk with room and inodes to spare.
 */
import { existsSync, type StatsFs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ensurePrivateDir } from '../../src/adapters/ownership.js';
import { SessionFiles } from '../../src/adapters/session-files.js';
import { StateDirError } from '../../src/adapters/state-files.js';
import { makeTempDir } from '../helpers/resources.js';

const stub: {
  /** Every mkdirSync fails: with ENOENT when recursive (as Node 20 reports EROFS), else this errno. */
  mkdirCode?: string;
  /** What statfsSync returns, instead of the real filesystem's figures. */
  statfs?: Partial<StatsFs>;
} = {};

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  const failing = (code: string) => Object.assign(new Error(`${code}: stubbed`), { code });
  return {
    ...actual,
    mkdirSync: ((...args: Parameters<typeof actual.mkdirSync>) => {
      if (stub.mkdirCode !== undefined) {
        const options = args[1];
        const recursive = typeof options === 'object' && options !== null && options.recursive === true;
        throw failing(recursive ? 'ENOENT' : stub.mkdirCode);
      }
      return actual.mkdirSync(...args);
    }) as typeof actual.mkdirSync,
    statfsSync: ((...args: Parameters<typeof actual.statfsSync>) => {
      const real = actual.statfsSync(...args);
      return stub.statfs === undefined ? real : { ...real, ...stub.statfs };
    }) as typeof actual.statfsSync,
  };
});

afterEach(() => {
  delete stub.mkdirCode;
  delete stub.statfs;
});

const ID = '0123456789abcdef';

describe('a read-only state dir', () => {
  it("is reported as EROFS with the remount fix, not as the ENOENT of Node's recursive mkdir", () => {
    const files = new SessionFiles(makeTempDir('agentd-unit-errno-'));
    stub.mkdirCode = 'EROFS';
    let error: unknown;
    try {
      files.prepare(ID);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(StateDirError);
    expect((error as StateDirError).errno).toBe('EROFS');
    expect((error as StateDirError).message).toBe(
      `state dir not writable: cannot prepare the work directory of session ${ID} (EROFS on ${files.paths(ID).dir}); the filesystem is read-only; remount it read-write or move daemon.state_dir`,
    );
  });

  it('is reported as EROFS when the daemon makes its own directories, with the fix', () => {
    const dir = join(makeTempDir('agentd-unit-errno-'), 'state', 'sessions');
    stub.mkdirCode = 'EROFS';
    expect(() => ensurePrivateDir(dir, 'sessions directory')).toThrow(
      `cannot create sessions directory ${dir}: EROFS; the filesystem is read-only; remount it read-write`,
    );
  });

  it('makes the directories once the first missing one could be made alone', () => {
    const dir = join(makeTempDir('agentd-unit-errno-'), 'a', 'b', 'c');
    ensurePrivateDir(dir, 'work directory');
    expect(existsSync(dir)).toBe(true);
  });
});

describe('a state dir with no free inodes', () => {
  it('says inodes (df -i), not free space, when blocks remain', () => {
    const path = join(makeTempDir('agentd-unit-errno-'), 'sessions', `${ID}.json`);
    stub.statfs = { files: 200, ffree: 0, bfree: 1000, bavail: 1000 };
    const error = new StateDirError(
      `record session ${ID}`,
      path,
      Object.assign(new Error('x'), { code: 'ENOSPC' }),
    );
    expect(error.full).toBe(true);
    expect(error.message).toMatch(
      new RegExp(
        `^state dir full: cannot record session ${ID} \\(ENOSPC on .*\\); no free inodes on that filesystem .*\\(see df -i\\): remove files`,
      ),
    );
    expect(error.message).not.toMatch(/free space on that filesystem/);
  });

  it('says free space when the blocks are used up, or the filesystem has no inode limit', () => {
    const path = join(makeTempDir('agentd-unit-errno-'), `${ID}.json`);
    const enospc = Object.assign(new Error('x'), { code: 'ENOSPC' });
    stub.statfs = { files: 200, ffree: 0, bfree: 0, bavail: 0 };
    expect(new StateDirError('record', path, enospc).message).toMatch(/; free space on that filesystem$/);
    // btrfs: no inode limit, and ffree 0 all the same.
    stub.statfs = { files: 0, ffree: 0, bfree: 1000, bavail: 1000 };
    expect(new StateDirError('record', path, enospc).message).toMatch(/; free space on that filesystem$/);
    stub.statfs = { files: 200, ffree: 10, bfree: 0, bavail: 0 };
    expect(new StateDirError('record', path, enospc).message).toMatch(/; free space on that filesystem$/);
  });
});
