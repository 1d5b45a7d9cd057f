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

/** Runs the archiving with the copy directory `copy`: as the agent's user is as this user here. */
function archive(out: string, copy: string): void {
  const script = `as_user() { "$@"; }\ncopy_dir="$1"\ncopy_max=1000000\narchive() {\n${archiving(out)}\n}\narchive\n`;
  execFileSync('/bin/sh', ['-c', script, 'sh', copy], { stdio: 'pipe' });
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
