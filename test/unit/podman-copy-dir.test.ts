/**
 * `podman cp` into a container of a remote host gets a temp dir of its own (Podman 4.3 leaves its copy of
 * the archive in TMPDIR), named with the daemon's pid, so that the next start removes one a killed daemon
 * left (removeLeftTempDirs).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { removeLeftTempDirs } from '../../src/adapters/output-channel.js';
import { makeTempDir } from '../helpers/resources.js';
import { standInPodman } from '../helpers/stand-in-podman.js';

describe('a copy into a container', () => {
  it("runs podman with a TMPDIR named with the daemon's pid, removed after the call", async () => {
    const dir = makeTempDir('agentd-unit-cpdir-');
    const { client, bin } = standInPodman(
      dir,
      (self) => `cat > "$TMPDIR/archive"
echo "$TMPDIR" > '${self}.tmpdir'
`,
    );
    await client.copyIntoContainer('agentd-x-y', new Uint8Array(4096));
    const tmp = readFileSync(`${bin}.tmpdir`, 'utf8').trim();
    expect(basename(tmp)).toMatch(new RegExp(`^agentd-cp-${process.pid}-`));
    expect(existsSync(tmp)).toBe(false);
    // One this daemon's start finds (its pid alive: its own) is not taken for a dead daemon's.
    expect(removeLeftTempDirs(dirname(tmp))).toEqual([]);
  });
});
