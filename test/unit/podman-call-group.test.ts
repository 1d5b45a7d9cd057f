/**
 * A podman call past its deadline returns even when something podman started lives on holding its output
 * pipes: the call's whole process group is killed, not the podman process alone (a stop waited for such a
 * call for ever).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PodmanClient } from '../../src/adapters/podman.js';
import { standInPodman } from '../helpers/stand-in-podman.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-group-'));
const started: number[] = [];
afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (killed, not yet reaped by init) is gone too.
  try {
    return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('a podman call past its deadline', () => {
  it.each([
    ['a short call', (client: PodmanClient) => client.version()],
    [
      'a read of container files',
      (client: PodmanClient) => client.readContainerFiles('c', '/run/secrets/agentd'),
    ],
  ])('returns when a child of podman holds its output (%s)', { timeout: 20_000 }, async (_, run) => {
    // The child ignores SIGTERM and keeps podman's stdout and stderr open for 60 s.
    const { bin } = standInPodman(
      dir,
      (self) => `trap '' TERM
sleep 60 &
echo $! > '${self}.child'
wait
`,
    );
    const client = new PodmanClient({ bin, timeoutMs: 300 });
    const error = await run(client).then(
      () => expect.fail('the call succeeded'),
      (e: unknown) => e,
    );
    const child = Number(readFileSync(`${bin}.child`, 'utf8'));
    started.push(child);
    expect(error).toMatchObject({ code: 'PODMAN_TIMEOUT' });
    // Killed with its group: its pipes close early in its exit, before it is a zombie, so on a loaded
    // machine it may still be on its way out when the call returns. Not alive 60 s as it would be without.
    for (let waited = 0; alive(child) && waited < 10_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(alive(child)).toBe(false);
  });
});

describe('a podman call that exited while something it started holds its output', () => {
  it('returns at its deadline, and what holds the output is killed', { timeout: 20_000 }, async () => {
    // podman itself exits 0 at once; its child keeps stdout and stderr open for 60 s. The call's end
    // waits for its output to close, so only the deadline ends it: then the group goes, though the
    // podman process is no longer there to be killed (before, the call waited the 60 s).
    const { bin } = standInPodman(
      dir,
      (self) => `sleep 60 &
echo $! > '${self}.child'
exit 0
`,
    );
    const client = new PodmanClient({ bin, timeoutMs: 300 });
    const began = Date.now();
    const error = await client.version().then(
      () => expect.fail('the call succeeded'),
      (e: unknown) => e,
    );
    const child = Number(readFileSync(`${bin}.child`, 'utf8'));
    started.push(child);
    expect(error).toMatchObject({ code: 'PODMAN_TIMEOUT' });
    expect(Date.now() - began).toBeLessThan(10_000);
    for (let waited = 0; alive(child) && waited < 10_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(alive(child)).toBe(false);
  });
});
