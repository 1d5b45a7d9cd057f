/**
 * SIGHUP while the daemon starts or stops must not kill it (its default action): measured on the old
 * code, one 600 ms after `agentd start` and one during the stop (a notification in flight) each ended the
 * daemon by SIGHUP, without daemon.stopped. See src/daemon/hangup.ts.
 */
import { createServer, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchDaemon, leftoversOfDaemons, prepareDaemon, startDaemon } from '../helpers/daemon.js';
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

describe('SIGHUP while the daemon starts or stops', () => {
  it('while starting: the daemon comes up and re-reads the file once; it stops cleanly', async () => {
    const d = launchDaemon(
      prepareDaemon({ agents: [{ name: 'a', image: TEST_IMAGE, command: ['true'], network: 'none' }] }),
    );
    // Logged once the start is under way (runDaemon has begun), before the podman calls that precede the socket.
    await d.waitForLog((l) => l.event === 'daemon.preflight');
    for (let i = 0; i < 100; i++) d.child.kill('SIGHUP');
    await d.ready();
    await d.waitForLog((l) => l.event === 'daemon.reloaded');
    d.child.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
    expect(d.logs().some((l) => l.event === 'daemon.stopped')).toBe(true);
  }, 120_000);

  it('while stopping with a notification in flight: the daemon still stops cleanly', async () => {
    const held: Socket[] = [];
    // Takes the webhook's connection and never answers: the stop gives the notification its grace.
    const hole = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
    const address = hole.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const d = await startDaemon(
        {
          agents: [
            {
              name: 'a',
              image: TEST_IMAGE,
              command: ['true'],
              network: 'none',
              repo: git.url(),
              notify: [{ url: `http://127.0.0.1:${port}/hook`, secret: 'env:HOOK_SECRET' }],
            },
          ],
        },
        { env: { HOOK_SECRET: 'x' } },
      );
      const triggered = await d.cli(['trigger', 'a', '--detach']);
      expect(triggered.code, triggered.stderr).toBe(0);
      await d.waitForLog((l) => l.event === 'session.outcome');
      d.child.kill('SIGTERM');
      await d.waitForLog((l) => l.event === 'daemon.shutdown');
      await new Promise((resolve) => setTimeout(resolve, 500));
      for (let i = 0; i < 100; i++) d.child.kill('SIGHUP');
      expect(await d.exited).toEqual({ code: 0, signal: null });
      expect(d.logs().some((l) => l.event === 'daemon.stopped')).toBe(true);
    } finally {
      for (const socket of held) socket.destroy();
      hole.close();
    }
  }, 120_000);
});
