/**
 * What a daemon keeps of the agents it started with once a reload replaced them all: nothing. The
 * settings the daemon started with are held for its whole life (runStart's and runDaemon's frames,
 * supervise's closures, the reloader's `started`, the daemon machine's input, which XState keeps), and
 * each of them held the start's agents: measured with bench/reload-memory.mjs's file of 52,401 one-line
 * agents, a heap of 120 MB alive after a reload that changed them all, against 68 MB once released. The
 * reloader's chain held the last reply too (20 names of each change). Read from a heap snapshot of the
 * real daemon (--heapsnapshot-signal, which collects garbage first): no string of the start's agents'
 * names is left; on the old code, all 200 were.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { launchDaemon, leftoversOfDaemons, prepareDaemon, writeDaemonConfig } from '../helpers/daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll } from '../helpers/resources.js';

afterEach(async () => {
  const left = await leftoversOfDaemons();
  await cleanupAll();
  expect(left, 'podman objects the test daemons left behind').toEqual([]);
});

const agents = (prefix: string) =>
  Array.from({ length: 200 }, (_, i) => ({
    name: `${prefix}-${i}`,
    image: TEST_IMAGE,
    command: ['echo', prefix],
    network: 'none',
  }));

/** The strings of the heap snapshot the daemon writes into `dir`, once it is whole. */
async function snapshotStrings(dir: string): Promise<string[]> {
  for (let i = 0; i < 600; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const file = readdirSync(dir).find((name) => name.endsWith('.heapsnapshot'));
    if (file === undefined) continue;
    const path = join(dir, file);
    const size = statSync(path).size;
    await new Promise((resolve) => setTimeout(resolve, 500));
    if (size === 0 || statSync(path).size !== size) continue;
    try {
      return (JSON.parse(readFileSync(path, 'utf8')) as { strings: string[] }).strings;
    } catch {
      // Not whole yet.
    }
  }
  throw new Error(`no heap snapshot written in ${dir}`);
}

describe("a daemon's configuration file", () => {
  it('is not kept by the daemon: its agents hold strings of their own, not slices of the text', async () => {
    // The strings of the loaded agents were views of the file's text, which the daemon kept for its life
    // (3.9 MB for a 4 MiB file): 98 to 99 MB of idle RSS for 10,000 agents of 15 lines, 92 MB once copied.
    const files = prepareDaemon({ agents: agents('started') });
    const head = readFileSync(files.configPath, 'utf8').slice(0, 64);
    const daemon = launchDaemon(files, {
      cwd: files.dir,
      env: { NODE_OPTIONS: '--heapsnapshot-signal=SIGUSR2' },
    });
    await daemon.ready();
    daemon.signal('SIGUSR2');
    const strings = await snapshotStrings(files.dir);
    expect(strings.filter((s) => /^started-\d+$/.test(s)).length).toBeGreaterThanOrEqual(200);
    expect(strings.filter((s) => s.startsWith(head)).length, 'strings that are the whole text').toBe(0);
    expect(await daemon.stop()).toBe(0);
  }, 120_000);
});

describe('a reload that replaces every agent', () => {
  it("leaves nothing of the start's agents in the daemon's heap", async () => {
    const files = prepareDaemon({ agents: agents('started') });
    const daemon = launchDaemon(files, {
      cwd: files.dir,
      env: { NODE_OPTIONS: '--heapsnapshot-signal=SIGUSR2' },
    });
    await daemon.ready();
    writeDaemonConfig(files, { agents: agents('reloaded') });
    const reply = await daemon.request({ type: 'reload' });
    expect(reply).toMatchObject({ type: 'reloaded', counts: { added: 200, removed: 200 } });
    daemon.signal('SIGUSR2');
    const strings = await snapshotStrings(files.dir);
    expect(strings.filter((s) => /^reloaded-\d+$/.test(s)).length).toBeGreaterThanOrEqual(200);
    expect(strings.filter((s) => /^started-\d+$/.test(s))).toEqual([]);
    expect(await daemon.stop()).toBe(0);
  }, 120_000);
});
