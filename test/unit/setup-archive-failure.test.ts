/**
 * The setup step's archive of /agentd/out when it cannot be written (the state dir is full as the
 * session ends): the record says so, and why, instead of "the command did not run to its end". The
 * archiving part of the step's copy_out runs in /bin/sh; a full filesystem is /dev/full, which the part
 * file links to. No Podman.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionFiles } from '../../src/adapters/session-files.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';
import { finishedRecord } from '../helpers/session-record.js';
import { archiving } from '../helpers/setup-archive.js';

afterEach(() => cleanupAll());

/**
 * Runs the archiving with the copy directory `copy`: as the agent's user is as this user here. With
 * `freeBlocks`, a `stat` first on the PATH says the copy directory's filesystem has that many 4 KiB
 * blocks free.
 */
function archive(out: string, copy: string, freeBlocks?: number): void {
  const script = `as_user() { "$@"; }\ncopy_dir="$1"\ncopy_max=1000000\narchive() {\n${archiving(out)}\n}\narchive\n`;
  let env = process.env;
  if (freeBlocks !== undefined) {
    const bin = makeTempDir('agentd-unit-archive-bin-');
    writeFileSync(
      join(bin, 'stat'),
      `#!/bin/sh\ncase "$*" in *%a*) echo ${freeBlocks} ;; *%S*) echo 4096 ;; *) exit 1 ;; esac\n`,
      { mode: 0o755 },
    );
    env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` };
  }
  execFileSync('/bin/sh', ['-c', script, 'sh', copy], { stdio: 'pipe', env });
}

function setup() {
  const stateDir = makeTempDir('agentd-unit-archive-');
  const files = new SessionFiles(stateDir);
  const id = '0000000000000001';
  const paths = files.paths(id);
  mkdirSync(paths.copy, { recursive: true });
  const out = makeTempDir('agentd-unit-archive-out-');
  writeFileSync(join(out, 'result.txt'), 'done\n'.repeat(1000));
  return { stateDir, files, paths, out, id };
}

describe("the setup step's output archive", () => {
  it('is written whole when there is room, with no note', () => {
    const { paths, out } = setup();
    archive(out, paths.copy);
    expect(existsSync(paths.archive)).toBe(true);
    expect(existsSync(`${paths.archive}.part`)).toBe(false);
    expect(existsSync(paths.withheld)).toBe(false);
  });

  it('that the full state dir has no room for leaves why beside it, and no part', () => {
    const { paths, out } = setup();
    symlinkSync('/dev/full', `${paths.archive}.part`);
    archive(out, paths.copy);
    expect(existsSync(paths.archive)).toBe(false);
    expect(existsSync(`${paths.archive}.part`)).toBe(false);
    expect(readFileSync(paths.withheld, 'utf8')).toBe(
      "the state dir was full when the session ended: its output could not be archived (free space on the state dir's filesystem: No space left on device)",
    );
  });

  it('is written when it fits in what is free beyond the 128 KiB the state dir keeps', () => {
    const { paths, out } = setup();
    // 32 KiB beyond the 128 KiB: the archive of 5,000 bytes (10 KiB with tar's padding) fits.
    archive(out, paths.copy, 40);
    expect(existsSync(paths.archive)).toBe(true);
    expect(existsSync(paths.withheld)).toBe(false);
  });

  it('that would take the 128 KiB the state dir keeps is not kept, and the note says what was free', () => {
    const { paths, out } = setup();
    // 4 KiB beyond the 128 KiB: the archive does not fit; it is cut there, never into them, and removed.
    archive(out, paths.copy, 33);
    expect(existsSync(paths.archive)).toBe(false);
    expect(existsSync(`${paths.archive}.part`)).toBe(false);
    expect(readFileSync(paths.withheld, 'utf8')).toBe(
      "the state dir was full when the session ended: its output could not be archived (free space on the state dir's filesystem: No space left on device, 4 KiB free beyond the 128 KiB agentd keeps for its other writes)",
    );
  });

  it('is not written at all when no more than the 128 KiB the state dir keeps is free', () => {
    const { paths, out } = setup();
    archive(out, paths.copy, 20);
    expect(existsSync(paths.archive)).toBe(false);
    expect(existsSync(`${paths.archive}.part`)).toBe(false);
    expect(readFileSync(paths.withheld, 'utf8')).toMatch(
      /No space left on device, none free beyond the 128 KiB/,
    );
  });

  it('not written for lack of room: the sealed record says so, not that the command did not end', async () => {
    const { stateDir, files, paths, out, id } = setup();
    symlinkSync('/dev/full', `${paths.archive}.part`);
    archive(out, paths.copy);
    const keeper = new RecordKeeper(
      { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
      files,
      pino({ level: 'silent' }),
    );
    const record = finishedRecord(id, 'succeeded');
    const output = await keeper.seal(record, join(stateDir, 'none.log'));
    expect(output?.missing).toMatch(
      /^the state dir was full when the session ended: its output could not be archived/,
    );
  });
});
