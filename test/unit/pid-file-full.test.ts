/**
 * The pid file on a state dir without room, or read-only (src/adapters/pid-file.ts): a daemon whose pid
 * could not be written still holds its file, writes the pid once there is room, and a second daemon is
 * refused meanwhile. The failing writes and opens are stubbed: the tests run as root, on a disk with room.
 */
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { claimPidFile } from '../../src/adapters/pid-file.js';
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
