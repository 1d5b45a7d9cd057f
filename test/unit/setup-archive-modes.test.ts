/**
 * The setup step's archive of /agentd/out keeps what the agent made unreadable to itself (chmod 000 on
 * a file or a directory): tar, run as the agent's user, left it out without a word. The archiving part
 * of the step's copy_out runs in /bin/sh, as an unprivileged user (root reads any file). No Podman.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';
import { archiving } from '../helpers/setup-archive.js';

afterEach(() => cleanupAll());

/** The agent's user: nobody when the test runs as root (which reads anything), else the test's user. */
const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

describe("the setup step's output archive", () => {
  it('keeps a file and a directory the agent made unreadable to itself', () => {
    const out = makeTempDir('agentd-unit-modes-out-');
    const copy = makeTempDir('agentd-unit-modes-copy-');
    mkdirSync(join(out, 'locked', 'inner'), { recursive: true });
    writeFileSync(join(out, 'locked', 'inner', 'deep.txt'), 'deep\n');
    writeFileSync(join(out, 'secret-mode.txt'), 'kept\n');
    writeFileSync(join(out, 'plain.txt'), 'plain\n');
    if (asRoot) execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, out]);
    chmodSync(join(out, 'secret-mode.txt'), 0);
    chmodSync(join(out, 'locked', 'inner'), 0);
    chmodSync(join(out, 'locked'), 0);
    const asUser = asRoot
      ? `as_user() { setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups "$@"; }`
      : 'as_user() { "$@"; }';
    const script = `${asUser}\ncopy_dir="$1"\ncopy_max=1000000\narchive() {\n${archiving(out)}\n}\narchive\n`;
    try {
      execFileSync('/bin/sh', ['-c', script, 'sh', copy], { stdio: 'pipe' });
    } finally {
      // Removable by the cleanup whoever runs the test.
      execFileSync('chmod', ['-R', 'u+rwX', out]);
    }
    const listing = execFileSync('tar', ['-tf', join(copy, 'out.tar')], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .sort();
    expect(listing).toEqual([
      './',
      './locked/',
      './locked/inner/',
      './locked/inner/deep.txt',
      './plain.txt',
      './secret-mode.txt',
    ]);
  });
});
