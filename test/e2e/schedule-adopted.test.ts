/** overlap: skip across a daemon that dies: the session its schedule made, adopted, still holds it back. */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchDaemon, leftoversOfDaemons, prepareDaemon } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll } from '../helpers/resources.js';

let git: GitServer;

beforeAll(async () => {
  git = await startGitServer();
});

afterAll(async () => {
  await git?.stop();
});

afterEach(async () => {
  const left = await leftoversOfDaemons();
  await cleanupAll();
  expect(left, 'podman objects the test daemons left behind').toEqual([]);
});

describe('a scheduled session adopted after the daemon died', () => {
  it('holds its schedule back (overlap: skip): the firings while it runs make no session', async () => {
    const files = prepareDaemon({
      agents: [
        {
          name: 'tick',
          image: TEST_IMAGE,
          repo: git.url(),
          network: 'host',
          command: ['sh', '-c', 'sleep 12'],
          schedule: '*/2 * * * * *',
        },
      ],
    });
    const first = launchDaemon(files);
    await first.ready();
    const running = await first.waitForLog((l) => l.event === 'session.phase' && l.phase === 'running');
    first.signal('SIGKILL');
    await first.waitForExit();

    const second = launchDaemon(files);
    await second.ready();
    await second.waitForOutcome(String(running.session));
    // The old code forgot the adopted session came from the schedule, and the next firing made another.
    expect(second.logs().filter((l) => l.event === 'session.accepted')).toEqual([]);
    const skipped = second.logs().filter((l) => l.event === 'schedule.skipped');
    expect(skipped.length).toBeGreaterThan(0);
    expect(String(skipped[0]?.reason)).toContain(String(running.session));
    expect(await second.stop()).toBe(0);
  }, 120_000);
});
