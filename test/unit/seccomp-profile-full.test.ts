/**
 * The session containers' seccomp profile on a state dir without room (src/adapters/seccomp-profile.ts):
 * an earlier start's file with the same profile is used as it is, and one that cannot be written is
 * never replaced by Podman's default (it is `unwritten`, written later). The failing write is stubbed:
 * the tests run on a disk with room.
 */
import { chmodSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  deriveSeccompProfile,
  prepareSeccompProfile,
  SECCOMP_PROFILE_FILE,
} from '../../src/adapters/seccomp-profile.js';
import { StateDirError } from '../../src/adapters/state-files.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

/** The errno every writeFileAtomic fails with while set. */
const fail: { errno?: string } = {};

vi.mock('../../src/adapters/state-files.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/adapters/state-files.js')>();
  return {
    ...actual,
    writeFileAtomic: (...args: Parameters<typeof actual.writeFileAtomic>) => {
      const [path, , options] = args;
      if (fail.errno !== undefined) {
        const cause = Object.assign(new Error(`${fail.errno}: stubbed`), { code: fail.errno });
        throw new actual.StateDirError(options.operation, path, cause);
      }
      return actual.writeFileAtomic(...args);
    },
  };
});

afterEach(async () => {
  delete fail.errno;
  await cleanupAll();
});

const DEFAULT_PROFILE = {
  defaultAction: 'SCMP_ACT_ERRNO',
  syscalls: [
    { names: ['read', 'write', 'clone', 'unshare'], action: 'SCMP_ACT_ALLOW' },
    { names: ['clone3'], action: 'SCMP_ACT_ALLOW' },
  ],
};

/** Podman's default profile in a file, a state dir, and the text of the profile derived from it. */
function setup() {
  const dir = makeTempDir('agentd-unit-seccomp-full-');
  const source = join(dir, 'seccomp.json.default');
  writeFileSync(source, JSON.stringify(DEFAULT_PROFILE));
  const state = makeTempDir('agentd-unit-seccomp-full-state-');
  const derived = deriveSeccompProfile(JSON.stringify(DEFAULT_PROFILE));
  if (!('profile' in derived)) throw new Error(derived.problem);
  const text = `${JSON.stringify(derived.profile, null, 2)}\n`;
  const locate = async () => ({ enabled: true, profilePath: source });
  return { source, state, path: join(state, SECCOMP_PROFILE_FILE), text, locate };
}

describe('seccomp profile on a full state dir', () => {
  it("uses an earlier start's file holding exactly the derived profile, without writing it", async () => {
    const { source, state, path, text, locate } = setup();
    writeFileSync(path, text, { mode: 0o600 });
    fail.errno = 'ENOSPC';
    expect(await prepareSeccompProfile(locate, state)).toEqual({ path, source });
    expect(readFileSync(path, 'utf8')).toBe(text);
  });

  it("never falls back to Podman's default: an unwritten profile keeps its path and is written later", async () => {
    const { source, state, path, text, locate } = setup();
    // An earlier start's profile, derived from another default.
    writeFileSync(path, `${text.trimEnd()} \n`, { mode: 0o600 });
    fail.errno = 'ENOSPC';
    const prepared = await prepareSeccompProfile(locate, state);
    expect(prepared).toMatchObject({ path, source, unwritten: { error: expect.any(StateDirError) } });
    if (!('unwritten' in prepared) || prepared.unwritten === undefined) throw new Error('not unwritten');
    expect(prepared.unwritten.error.code).toBe('STATE_DIR_FULL');
    expect(prepared.unwritten.error.message).toMatch(
      /state dir full: cannot write the session containers' seccomp profile \(ENOSPC on .*seccomp\.json\)/,
    );
    expect(() => prepared.unwritten?.write()).toThrow(StateDirError);
    delete fail.errno;
    prepared.unwritten.write();
    expect(readFileSync(path, 'utf8')).toBe(text);
  });

  it.each([
    [
      'writable by others',
      (path: string, text: string) => {
        writeFileSync(path, text);
        chmodSync(path, 0o666);
      },
    ],
    [
      'a link to a file with that text',
      (path: string, text: string) => {
        writeFileSync(`${path}.elsewhere`, text, { mode: 0o600 });
        symlinkSync(`${path}.elsewhere`, path);
      },
    ],
  ])('does not use a file %s', async (_, plant) => {
    const { state, path, text, locate } = setup();
    plant(path, text);
    fail.errno = 'ENOSPC';
    expect(await prepareSeccompProfile(locate, state)).toMatchObject({
      path,
      unwritten: { error: expect.any(StateDirError) },
    });
  });
});
