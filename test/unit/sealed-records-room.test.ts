/**
 * A seal on a filesystem with too little room for the session's output (src/adapters/sealed-records.ts)
 * fails before the disk is full, not once it is: it used to unpack the output until the filesystem had no
 * byte left (every 30 s while the seal waited for room) and then remove it, so that every other write of
 * the daemon in that moment (a trigger's record, a session's log, the notify outbox) failed with ENOSPC.
 * The free space statfs reports is faked (node:fs mocked for the module under test); the disk itself has
 * room, so a seal that does not look at it succeeds.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SealedRecords } from '../../src/adapters/sealed-records.js';
import { StateDirError } from '../../src/adapters/state-files.js';
import { makeTempDir } from '../helpers/resources.js';

const BLOCK = 4096;
const KIB = 1024;
/** What statfs says is free, in bytes; undefined: what the disk says. */
const fake = vi.hoisted(() => ({ free: undefined as number | undefined, calls: 0 }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const statfsSync = ((path: string) => {
    const stats = real.statfsSync(path);
    if (fake.free === undefined) return stats;
    fake.calls++;
    const blocks = Math.floor(fake.free / BLOCK);
    return { ...stats, bsize: BLOCK, bfree: blocks, bavail: blocks };
  }) as typeof real.statfsSync;
  const mocked = { ...real, statfsSync };
  return { ...mocked, default: mocked };
});

const ID = '0123456789abcdef';

afterEach(() => {
  fake.free = undefined;
  fake.calls = 0;
});

/** A session's work: an output archive of `files` (name → size), and a log of `logBytes`. */
function work(dir: string, files: Record<string, number>, logBytes = 20): { archive: string; log: string } {
  const tree = mkdtempSync(join(dir, 'tree-'));
  for (const [name, size] of Object.entries(files)) {
    mkdirSync(join(tree, name, '..'), { recursive: true });
    writeFileSync(join(tree, name), Buffer.alloc(size, 'r'));
  }
  const archive = join(dir, 'out.tar');
  execFileSync('tar', ['-cf', archive, '-C', tree, '.']);
  const log = join(dir, 'session.log');
  writeFileSync(log, Buffer.alloc(logBytes, 'l'));
  return { archive, log };
}

function sealOf(records: SealedRecords, { archive, log }: { archive: string; log: string }) {
  return records.seal({
    agent: 'demo',
    sessionId: ID,
    log,
    archive,
    archiveLimit: 4 << 20,
    json: (output) => ({ id: ID, phase: 'finished', outcome: 'succeeded', output }),
    pending: { id: ID, phase: 'finished', outcome: 'succeeded' },
  } as Parameters<SealedRecords['seal']>[0]);
}

const sealed = (dir: string) => (lstatSync(dir).mode & 0o222) === 0;

async function refusal(
  records: SealedRecords,
  session: { archive: string; log: string },
): Promise<StateDirError> {
  const error = await sealOf(records, session).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StateDirError);
  // A lack of room, as ENOSPC itself: the record keeper waits for room and seals again.
  expect((error as StateDirError).full).toBe(true);
  return error as StateDirError;
}

describe('a seal on a filesystem with too little room for it', () => {
  it('refuses an output larger than the free space before unpacking any of it, saying what it needs and what is free', async () => {
    const dir = makeTempDir('agentd-unit-records-room-');
    const records = new SealedRecords(join(dir, 'records'));
    const session = work(dir, { 'result.bin': 300 * KIB });
    const recordDir = records.dirOf('demo', ID);

    // 200 KiB free beyond the 128 KiB a seal leaves: 300 KiB of output cannot fit.
    fake.free = 128 * KIB + 200 * KIB;
    const error = await refusal(records, session);
    expect(error.message).toMatch(
      /cannot unpack the output into .*\/out: it needs 3\d\d KiB, 328 KiB is free/,
    );
    expect(error.message).toContain('a seal leaves 128 KiB of it free');
    expect(fake.calls).toBeGreaterThan(0);
    expect(sealed(recordDir)).toBe(false);
    expect(JSON.parse(readFileSync(join(recordDir, 'session.json'), 'utf8'))).toMatchObject({
      outcome: 'succeeded',
    });

    // Room again: sealed whole.
    fake.free = 128 * KIB + 400 * KIB;
    const { output } = await sealOf(records, session);
    expect(output).toMatchObject({ files: 1, bytes: 300 * KIB, truncated: false, skipped: 0 });
    expect(sealed(recordDir)).toBe(true);
  });

  it('stops unpacking many small files once their blocks would take the last free space (an archive smaller than the room)', async () => {
    const dir = makeTempDir('agentd-unit-records-room-');
    const records = new SealedRecords(join(dir, 'records'));
    // 100 files of a byte: an archive of about 100 KiB, 400 KiB on disk (a block each).
    const files: Record<string, number> = {};
    for (let i = 0; i < 100; i++) files[`f${i}`] = 1;
    const session = work(dir, files);
    expect(lstatSync(session.archive).size).toBeLessThan(200 * KIB);
    const recordDir = records.dirOf('demo', ID);

    fake.free = 128 * KIB + 200 * KIB;
    const error = await refusal(records, session);
    expect(error.message).toMatch(
      /cannot unpack the output into .*: it needs at least \d+ KiB, 328 KiB is free/,
    );
    expect(sealed(recordDir)).toBe(false);

    fake.free = 128 * KIB + 100 * BLOCK + 8 * BLOCK;
    const { output } = await sealOf(records, session);
    expect(output).toMatchObject({ files: 100, bytes: 100, truncated: false, skipped: 0 });
    expect(sealed(recordDir)).toBe(true);
  });

  it('refuses a log larger than the free space left, saying so', async () => {
    const dir = makeTempDir('agentd-unit-records-room-');
    const records = new SealedRecords(join(dir, 'records'));
    const session = work(dir, { 'small.txt': 10 }, 300 * KIB);
    const recordDir = records.dirOf('demo', ID);

    fake.free = 128 * KIB + 200 * KIB;
    const error = await refusal(records, session);
    expect(error.message).toMatch(/cannot copy the log of session .*: it needs 300 KiB, 328 KiB is free/);
    expect(sealed(recordDir)).toBe(false);
  });
});
