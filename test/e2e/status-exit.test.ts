/**
 * What `agentd status` tells a script, against real daemons: 0 only when the daemon is ready and a Podman
 * host answers; 14 while no host answers (sessions wait: what /readyz answers 503 for), 12 while it drains.
 * The status is printed the same whatever the code. A degraded daemon's 10 is in
 * test/reliability/state-dir.test.ts (it needs a full tmpfs); every state's code in
 * test/unit/status-exit.test.ts.
 */
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { leftoversOfDaemons, startDaemon } from '../helpers/daemon.js';
import { type Gate, startGate } from '../helpers/gate.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

let git: GitServer;
let gate: Gate;

beforeAll(async () => {
  [git, gate] = await Promise.all([startGitServer(), startGate()]);
});

afterAll(async () => {
  await Promise.allSettled([git?.stop(), gate?.close()]);
});

afterEach(async () => {
  gate.hold();
  const left = await leftoversOfDaemons();
  await cleanupAll();
  expect(left, 'podman objects the test daemons left behind').toEqual([]);
});

function agent(name: string, command: string[]) {
  return { name, image: TEST_IMAGE, command, repo: git.url(), network: 'host' };
}

describe('agentd status exit codes', () => {
  it('exits 14 while no Podman host answers, saying which; the JSON says ready with noHost', async () => {
    // A host whose socket nobody listens on: down from the start, the daemon ready all the same.
    const nowhere = join(makeTempDir('agentd-e2e-status-'), 'podman.sock');
    const d = await startDaemon({
      agents: [agent('quick', ['echo', 'hi'])],
      hosts: [{ name: 'gone', url: `unix://${nowhere}` }],
    });
    // Before, this exited 0: a health check saw a healthy daemon that could start no session.
    const text = await d.cli(['status']);
    expect(text.code, text.stderr).toBe(EXIT.noHost);
    expect(text.stderr).toBe('');
    expect(text.stdout.split('\n').slice(0, 2)).toEqual([
      expect.stringMatching(new RegExp(`^agentd \\S+: ready, pid ${d.pid}, `)),
      'no Podman host answers (gone: down): sessions wait in the queue until one does; `agentd hosts` says why',
    ]);
    const json = await d.cli(['status', '--json']);
    expect(json.code, json.stderr).toBe(EXIT.noHost);
    expect(JSON.parse(json.stdout)).toMatchObject({
      state: 'ready',
      noHost:
        'no Podman host answers (gone: down): sessions wait in the queue until one does; `agentd hosts` says why',
      pid: d.pid,
    });
    expect(await d.stop()).toBe(0);
  });

  it('exits 0 when ready with the local Podman, and 12 while it drains a running session', async () => {
    const d = await startDaemon({ agents: [agent('held', gate.command)] });
    const ready = await d.cli(['status', '--json']);
    expect(ready.code, ready.stderr).toBe(EXIT.succeeded);
    expect(JSON.parse(ready.stdout)).not.toHaveProperty('noHost');
    const id = (await d.cli(['trigger', 'held', '--detach'])).stdout.trim();
    await gate.waitFor(1);
    d.signal('SIGTERM');
    await d.waitForLog((l) => l.event === 'daemon.shutdown');
    const draining = await d.cli(['status']);
    expect(draining.code, draining.stderr).toBe(EXIT.shuttingDown);
    expect(draining.stdout).toMatch(/^agentd \S+: shutdown\.draining, /);
    gate.open();
    expect((await d.waitForOutcome(id)).outcome).toBe('succeeded');
    expect(await d.waitForExit()).toBe(0);
  });
});
