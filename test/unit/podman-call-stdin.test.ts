/**
 * What a short podman call (`rm`, `secret rm`, `ps`, ...) gets on its stdin: nothing to read (/dev/null)
 * when it is given no input, instead of an empty input, which made a socket pair and a stream in the
 * daemon for every call (about 1 ms of its CPU a call, two of every session); a call with input still
 * reads exactly its bytes. Through the real PodmanClient with a stand-in `podman` script.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { standInPodman } from '../helpers/stand-in-podman.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-call-stdin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a short podman call's stdin", () => {
  it('is /dev/null when the call has no input', async () => {
    const { bin, client } = standInPodman(
      dir,
      (self) => `readlink /proc/self/fd/0 > '${self}.stdin'\ncat >/dev/null\n`,
    );
    await client.removeContainers(['c']);
    expect(readFileSync(`${bin}.stdin`, 'utf8').trim()).toBe('/dev/null');
  });

  it('carries exactly the input of a call that has one (a secret value)', async () => {
    const { bin, client } = standInPodman(dir, (self) => `cat > '${self}.in'\n`);
    const value = new Uint8Array([0, 1, 2, 255, 10, 65]);
    await client.createSecret('s', value, {});
    expect([...readFileSync(`${bin}.in`)]).toEqual([...value]);
  });
});
