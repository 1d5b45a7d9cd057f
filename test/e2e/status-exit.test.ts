/**
 * What `agentd status` tells a script, against real daemons: 0 only when the daemon is ready and a Podman
 * host answers; 14 while no host answers (sessions wait: what /readyz answers 503 for), 12 while it drains.
 * The status is printed the same whatever the code. A degraded daemon's 10 is in
 * test/reliability/state-dir.test.ts (it needs a full tmpfs); every state's code in
 * test/unit/status-exit.test.ts.
 */
import { existsSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import {
  gitAndGate,
  launchDaemon,
  leftoversAfterCleanup,
  prepareDaemon,
  startDaemon,
} from '../helpers/daemon.js';
import { makeTempDir } from '../helpers/resources.js';

const { gate, agent } = gitAndGate();

afterEach(async () => {
  gate.hold();
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

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

  it('exits 11 while the daemon starts (its socket not open yet: the start waits on a stalled host), then 0', async () => {
    // A Podman host that takes the connection and never answers: the start waits for its probe.
    const dir = makeTempDir('agentd-e2e-status-');
    const stallPath = join(dir, 'stall.sock');
    const held: Socket[] = [];
    const stall = createServer((socket) => {
      socket.on('error', () => {});
      held.push(socket);
    });
    await new Promise<void>((resolve) => stall.listen(stallPath, resolve));
    try {
      const files = prepareDaemon({
        agents: [agent('quick', ['echo', 'hi'])],
        daemon: { host_probe_timeout: '4s' },
        hosts: [{ name: 'local' }, { name: 'stall', url: `unix://${stallPath}` }],
      });
      const d = launchDaemon(files);
      const marker = `${files.socketPath}.starting`;
      for (let waited = 0; !existsSync(marker); waited += 20) {
        expect(waited, 'the starting marker').toBeLessThan(30_000);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(existsSync(files.socketPath), 'the socket is not open yet').toBe(false);
      // Before, this said "no agentd daemon answers ... Start one with `agentd start`" and exited 69.
      const starting = await d.cli(['status']);
      expect(starting.code, starting.stderr).toBe(EXIT.notReady);
      expect(starting.stderr).toMatch(
        new RegExp(`^agentd: agentd \\(pid ${d.pid}\\) is starting and has not opened its socket `),
      );
      await d.ready();
      expect(existsSync(marker), 'the marker once the socket is open').toBe(false);
      const ready = await d.cli(['status']);
      expect(ready.code, ready.stderr).toBe(EXIT.succeeded);
      expect(await d.stop()).toBe(0);
      expect(existsSync(marker)).toBe(false);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => stall.close(resolve));
      rmSync(stallPath, { force: true });
    }
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
