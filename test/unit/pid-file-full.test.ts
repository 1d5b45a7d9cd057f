/**
 * The pid file on a state dir without room, or read-only (src/adapters/pid-file.ts): a daemon whose pid
 * could not be written still holds its file, writes the pid once there is room, and a second daemon is
 * refused meanwhile. The failing writes and opens are stubbed: the tests run as root, on a disk with room.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { claimPidFile, EMPTY_PID_GRACE_MS } from '../../src/adapters/pid-file.js';
import type { AgentdError } from '../../src/errors.js';
import { makeTempDir } from '../helpers/resources.js';

/** How many of the next writeSync / openSync calls fail, and with which errno. */
const fail = { writes: 0, writeCode: 'ENOSPC', opens: 0, openCode: 'EROFS' };

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  const failing = (code: string) => Object.assign(new Error(`${code}: stubbed`), { code });
  return {
    ...actual,
    writeSync: ((...args: Parameters<typeof actual.writeSync>) => {
      if (fail.writes > 0) {
        fail.writes--;
        throw failing(fail.writeCode);
      }
      return actual.writeSync(...args);
    }) as typeof actual.writeSync,
    openSync: ((...args: Parameters<typeof actual.openSync>) => {
      if (fail.opens > 0) {
        fail.opens--;
        throw failing(fail.openCode);
      }
      return actual.openSync(...args);
    }) as typeof actual.openSync,
  };
});

function claimError(path: string): AgentdError {
  try {
    claimPidFile(path).release();
  } catch (error) {
    return error as AgentdError;
  }
  throw new Error('the claim succeeded');
}

describe('pid file on a full state dir', () => {
  it('is held while empty, written by writePid once there is room, and refuses a second daemon', () => {
    const path = join(makeTempDir('agentd-unit-pid-full-'), 'agentd.pid');
    fail.writes = 1;
    const claim = claimPidFile(path);
    expect(claim.unwritten).toBe(true);
    expect(readFileSync(path, 'utf8')).toBe('');
    // Empty, but held open by a live daemon: not a stale file.
    expect(claimError(path)).toMatchObject({ code: 'DAEMON_RUNNING' });
    expect(claimError(path).message).toMatch(/holds the pid file .* open \(its pid is not written/);
    claim.writePid();
    expect(claim.unwritten).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
    expect(claimError(path)).toMatchObject({ code: 'DAEMON_RUNNING' });
    claim.release();
    expect(existsSync(path)).toBe(false);
  });

  it('frees the room kept in the state dir and writes the pid at once', () => {
    const path = join(makeTempDir('agentd-unit-pid-full-'), 'agentd.pid');
    fail.writes = 1;
    const freeRoom = vi.fn();
    const claim = claimPidFile(path, { freeRoom });
    expect(freeRoom).toHaveBeenCalledOnce();
    expect(claim.unwritten).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
    claim.release();
  });

  it('writePid throws state_dir_full while there is still no room, and the file stays empty', () => {
    const path = join(makeTempDir('agentd-unit-pid-full-'), 'agentd.pid');
    fail.writes = 2;
    const claim = claimPidFile(path, { freeRoom: () => {} });
    expect(claim.unwritten).toBe(true);
    fail.writes = 1;
    expect(() => claim.writePid()).toThrow(/state dir full: cannot write the pid file/);
    expect(readFileSync(path, 'utf8')).toBe('');
    claim.release();
    expect(existsSync(path)).toBe(false);
  });

  it('refuses a young empty file nobody holds (a daemon starting); takes over an old one', () => {
    const path = join(makeTempDir('agentd-unit-pid-full-'), 'agentd.pid');
    writeFileSync(path, '');
    const error = claimError(path);
    expect(error).toMatchObject({ code: 'DAEMON_RUNNING' });
    expect(error.message).toMatch(/is empty and was made 0s ago: another agentd may be starting/);
    vi.useFakeTimers({ now: Date.now() + EMPTY_PID_GRACE_MS + 1000, toFake: ['Date'] });
    try {
      const claim = claimPidFile(path);
      expect(claim.stalePid).toBe(-1);
      claim.release();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('pid file on a read-only state dir', () => {
  it('says state_dir_unwritable, remount it read-write or move daemon.state_dir', () => {
    const path = join(makeTempDir('agentd-unit-pid-ro-'), 'agentd.pid');
    fail.opens = 1;
    const error = claimError(path);
    expect(error.code).toBe('STATE_DIR_UNWRITABLE');
    expect(error.message).toMatch(
      /cannot create the pid file \(EROFS on .*agentd\.pid\); the filesystem is read-only; remount it read-write or move daemon\.state_dir/,
    );
  });
});
