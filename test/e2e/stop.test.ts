/**
 * `agentd stop` against a real daemon and the real CLI: it asks the daemon to shut down as a first SIGTERM
 * does, says which running session it waits for, and exits 0 only once the daemon has exited (its socket and
 * pid file gone), the session finished as it would have, and nothing of the daemon's left in Podman.
 * --force cancels what runs, as a second SIGTERM does. The wait's rules are in test/unit/stop.test.ts.
 */
import { existsSync, rmSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { gitAndGate, leftoversAfterCleanup, startDaemon } from '../helpers/daemon.js';
import { makeTempDir } from '../helpers/resources.js';

/**
 * A Unix socket in front of the daemon's that holds every request line naming a shutdown until `release`:
 * the window between `stop`'s status and its shutdown, made as wide as a test needs. Once the daemon no
 * longer answers, it closes and removes its socket, as the daemon's own would be gone.
 */
function holdingProxy(upstream: string) {
  const path = join(makeTempDir('agentd-e2e-stop-'), 'proxy.sock');
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let held: () => void = () => {};
  const holding = new Promise<void>((resolve) => {
    held = resolve;
  });
  const server: Server = createServer((client) => {
    const daemon = connect(upstream);
    client.on('error', () => daemon.destroy());
    daemon.on('error', () => {
      client.destroy();
      server.close();
      rmSync(path, { force: true });
    });
    daemon.pipe(client);
    let buffered = '';
    let sending = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl + 1);
        buffered = buffered.slice(nl + 1);
        sending = sending.then(async () => {
          if (line.includes('"shutdown"')) {
            held();
            await released;
          }
          daemon.write(line);
        });
      }
    });
  });
  const listening = new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    listening,
    holding,
    release: () => release(),
    close: () => {
      server.close();
      rmSync(path, { force: true });
    },
  };
}

const { gate, agent } = gitAndGate();

afterEach(async () => {
  gate.hold();
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

describe('agentd stop', () => {
  it('drains the daemon, waits for its running session and for the process, then exits 0', async () => {
    gate.hold();
    const d = await startDaemon({ agents: [agent('gated', gate.command)] });
    const accepted = await d.cli(['trigger', 'gated', '--detach']);
    expect(accepted.code, accepted.stderr).toBe(0);
    const id = accepted.stdout.trim();
    await gate.waitFor(1);
    const stop = d.spawnCli(['stop']);
    await stop.waitForStdout(
      new RegExp(
        `^asked agentd \\(pid ${d.pid}\\) to shut down: 1 running session\\(s\\) to finish: ${id} \\(gated\\)`,
        'm',
      ),
    );
    // Draining: new triggers are refused, the session goes on; `stop` has not returned.
    const refused = await d.cli(['trigger', 'gated', '--detach']);
    expect(refused.code).toBe(EXIT.retry);
    expect(d.running).toBe(true);
    gate.open();
    const result = await stop.result;
    expect(result.code, result.stderr).toBe(EXIT.succeeded);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(new RegExp(`agentd \\(pid ${d.pid}\\) stopped after \\S+\n$`));
    // Exited by the time `stop` said so (its parent, this test, may reap it a moment later), cleanly, and
    // with what it holds removed.
    expect(await d.waitForExit(5000)).toBe(0);
    expect(existsSync(d.files.socketPath)).toBe(false);
    expect(existsSync(d.files.pidFile)).toBe(false);
    const outcome = await d.waitForOutcome(id);
    expect(outcome.outcome).toBe('succeeded');
    expect(await d.leftovers()).toEqual({ containers: [], secrets: [] });
  });

  it('a SIGTERM landing between its status and its shutdown does not make its shutdown the second: the session finishes', async () => {
    gate.hold();
    const d = await startDaemon({ agents: [agent('gated', gate.command)] });
    const accepted = await d.cli(['trigger', 'gated', '--detach']);
    expect(accepted.code, accepted.stderr).toBe(0);
    const id = accepted.stdout.trim();
    await gate.waitFor(1);
    const proxy = holdingProxy(d.files.socketPath);
    try {
      await proxy.listening;
      const stop = d.spawnCli(['stop', '--socket', proxy.path]);
      await proxy.holding;
      // systemd (or another operator) stops it too, after `stop` read it `ready`.
      d.signal('SIGTERM');
      await d.waitForLog((l) => l.event === 'daemon.shutdown');
      proxy.release();
      await d.waitForLog((l) => l.event === 'daemon.shutdown_requested');
      // Before, the daemon took `stop`'s shutdown for the second and cancelled the session here.
      expect(d.logs().some((l) => l.event === 'daemon.cancelling')).toBe(false);
      expect(d.running).toBe(true);
      gate.open();
      const result = await stop.result;
      expect(result.code, result.stderr).toBe(EXIT.succeeded);
      expect(await d.waitForExit(5000)).toBe(0);
      expect((await d.waitForOutcome(id)).outcome).toBe('succeeded');
      expect(d.logs().some((l) => l.event === 'daemon.cancelling')).toBe(false);
    } finally {
      proxy.close();
    }
  });

  it('a signal while the stop writes its last records and gives notifications their grace does not end it mid-way: exit 0', async () => {
    // A webhook that takes the POST and never answers: the stop gives it its grace (5 s).
    const held: Socket[] = [];
    let posted: () => void = () => {};
    const posting = new Promise<void>((resolve) => {
      posted = resolve;
    });
    const hook = createServer((socket) => {
      held.push(socket);
      socket.on('error', () => {});
      posted();
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    try {
      const port = (hook.address() as AddressInfo).port;
      const d = await startDaemon(
        {
          agents: [agent('quick', ['true'])],
          daemon: { notify: [{ url: `http://127.0.0.1:${port}/hook`, secret: 'env:AGENTD_E2E_HOOK_KEY' }] },
        },
        { env: { AGENTD_E2E_HOOK_KEY: 'stop-hook-key-0123456789abcdef' } },
      );
      const run = await d.cli(['trigger', 'quick']);
      expect(run.code, run.stderr).toBe(EXIT.succeeded);
      await posting;
      d.signal('SIGTERM');
      // Its socket closed: the machine has stopped and the daemon waits for the POST under way.
      const closing = Date.now();
      while (existsSync(d.files.socketPath) && Date.now() - closing < 20_000)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(existsSync(d.files.socketPath)).toBe(false);
      expect(d.running).toBe(true);
      // Before, the signal's default action ended it here: exit 143, no daemon.stopped, the pid file left.
      d.signal('SIGTERM');
      expect(await d.waitForExit(30_000)).toBe(0);
      expect(d.logs().some((l) => l.event === 'daemon.signal' && l.finishing === true)).toBe(true);
      expect(d.logs().some((l) => l.event === 'daemon.stopped')).toBe(true);
      expect(existsSync(d.files.pidFile)).toBe(false);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => hook.close(() => resolve()));
    }
  });

  it('--force cancels the running session, as a second SIGTERM does, and exits 0 once the daemon has gone', async () => {
    gate.hold();
    const d = await startDaemon({ agents: [agent('gated', gate.command)] });
    const accepted = await d.cli(['trigger', 'gated', '--detach']);
    const id = accepted.stdout.trim();
    await gate.waitFor(1);
    const result = await d.cli(['stop', '--force', '--json']);
    expect(result.code, result.stderr).toBe(EXIT.succeeded);
    expect(JSON.parse(result.stdout)).toMatchObject({ stopped: true, pid: d.pid, code: 0 });
    expect(await d.waitForExit(5000)).toBe(0);
    expect(existsSync(d.files.socketPath)).toBe(false);
    expect(existsSync(d.files.pidFile)).toBe(false);
    expect((await d.waitForOutcome(id)).outcome).toBe('cancelled');
    expect(await d.leftovers()).toEqual({ containers: [], secrets: [] });
    // Nothing answers any more: the usual 69.
    expect((await d.cli(['stop'])).code).toBe(EXIT.unreachable);
  });
});
