/**
 * An idempotency key lets go of its session once that session's outcome is recorded, also when the host
 * reconciliation that recorded it fails afterwards (README: `--key`). A side Podman host behind a unix://
 * proxy that refuses container removals: a crashed daemon's session runs on there, and the next daemon
 * (whose configuration dropped its agent) settles it `abandoned` at start, then cannot stop its
 * container, so the host stays down and no `host.up` comes. The daemon's clock is moved past the key
 * window (a preloaded module shifts Date.now): the key must then make a new session.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  launchDaemon,
  leftoversOfDaemons,
  startDaemon,
  type TestDaemon,
  writeDaemonConfig,
} from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import {
  type HostProxy,
  leftoversOnHosts,
  proxyInFrontOf,
  type SideHost,
  type SideHosts,
  startSideHosts,
} from '../helpers/podman-hosts.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

/** The key window (24 h) and a little more. */
const PAST_WINDOW_MS = 25 * 3600 * 1000;

let git: GitServer;
let side: SideHosts;
let proxy: HostProxy;
/** Set: the proxy answers every container removal with an error, as a failing host would. */
let refuseRemovals = false;
const daemons: TestDaemon[] = [];

beforeAll(async () => {
  const started = await Promise.allSettled([
    startGitServer().then((g) => (git = g)),
    startSideHosts(['k']).then((s) => (side = s)),
  ]);
  for (const result of started) if (result.status === 'rejected') throw result.reason;
  proxy = await proxyInFrontOf(side, 'k', (req, res, forward) => {
    if (refuseRemovals && req.method === 'DELETE' && /\/containers\//.test(req.url ?? '')) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ cause: 'test', message: 'removal refused by the test', response: 500 }));
    } else forward();
  });
}, 300_000);

afterAll(async () => {
  let left: string[] = [];
  try {
    refuseRemovals = false;
    const stopped = daemons.splice(0);
    for (const d of stopped) if (d.running) await d.stop('SIGTERM', 60_000);
    left = [
      ...(await leftoversOfDaemons()),
      ...(side === undefined
        ? []
        : await leftoversOnHosts(
            side.hosts,
            stopped.map((d) => d.prefix),
          )),
    ];
    await proxy?.close();
    await side?.close();
  } finally {
    await cleanupAll();
    await git?.stop();
  }
  expect(left, 'podman objects the test daemons left behind').toEqual([]);
}, 120_000);

function host(): SideHost {
  return side.hosts[0] as SideHost;
}

function agent(name: string, command: string[]) {
  return { name, image: TEST_IMAGE, command, repo: git.url(), network: 'host', hosts: ['k'] };
}

describe('an idempotency key of a session settled by a reconciliation that then failed', () => {
  it('makes a new session once the key window has passed', async () => {
    const daemon = { host_probe_interval: '1s', host_probe_timeout: '5s' };
    // Sessions attach through the host's own socket (the proxy does not pass attach's upgraded
    // connection on); the daemon whose reconciliation must fail reaches it through the proxy.
    const direct = [{ name: 'k', url: host().url }];
    const proxied = [{ name: 'k', url: `unix://${proxy.socket}` }];
    const first = await startDaemon({
      daemon,
      hosts: direct,
      agents: [agent('pinned', ['sh', '-c', 'echo started; sleep 300']), agent('other', ['true'])],
    });
    daemons.push(first);
    const triggered = await first.cli(['trigger', 'pinned', '--key', 'delivery-1', '--detach']);
    expect(triggered.code, triggered.stderr).toBe(0);
    const id = triggered.stdout.trim();
    await first.waitForPhase(id, 'running');
    // A crash: the session's container runs on.
    first.signal('SIGKILL');
    await first.waitForExit();

    // The next daemon no longer has the agent: the start settles the session `abandoned` (recorded),
    // then fails to stop its container.
    writeDaemonConfig(first.files, { daemon, hosts: proxied, agents: [agent('other', ['true'])] });
    refuseRemovals = true;
    const dir = makeTempDir('agentd-keys-clock-');
    const offsetFile = join(dir, 'offset');
    const preload = join(dir, 'clock.mjs');
    writeFileSync(offsetFile, '0');
    writeFileSync(
      preload,
      `import { readFileSync } from 'node:fs';
const realNow = Date.now.bind(Date);
let offset = 0;
const read = () => {
  try {
    offset = Number(readFileSync(${JSON.stringify(offsetFile)}, 'utf8')) || 0;
  } catch {}
};
read();
setInterval(read, 50).unref();
Date.now = () => realNow() + offset;
`,
    );
    const second = launchDaemon(first.files, {
      env: { NODE_OPTIONS: `--import ${pathToFileURL(preload).href}` },
    });
    daemons.push(second);
    await second.ready();
    const outcome = await second.waitForOutcome(id);
    expect(outcome.outcome).toBe('abandoned');
    const down = await second.waitForLog((l) => l.event === 'host.down' && l.host === 'k');
    expect(down.atStart).toBe(true);
    expect(String(down.reason)).toContain('removal refused by the test');

    // Within the window the key still gives its session (and is refused for another agent)...
    const conflict = await second.cli(['trigger', 'other', '--key', 'delivery-1', '--detach']);
    expect(conflict.code, conflict.stdout).toBe(3);
    expect(conflict.stderr).toContain(`belongs to session ${id}`);
    // ...and past it, the key is free: a new session, not the old one.
    writeFileSync(offsetFile, String(PAST_WINDOW_MS));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const again = await second.cli(['trigger', 'other', '--key', 'delivery-1', '--detach', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const answer = JSON.parse(again.stdout) as { sessionId: string; existing: boolean };
    expect(answer.existing).toBe(false);
    expect(answer.sessionId).not.toBe(id);
    expect(outcomesOf(second, id)).toHaveLength(1);

    // Stopped while the host is still down: the new session leaves the queue `cancelled`.
    expect(await second.stop()).toBe(0);
    expect(outcomesOf(second, answer.sessionId).map((l) => l.outcome)).toEqual(['cancelled']);
    // A daemon that reaches the host again removes the container the failed reconciliation left.
    refuseRemovals = false;
    writeDaemonConfig(first.files, { daemon, hosts: direct, agents: [agent('other', ['true'])] });
    const third = launchDaemon(first.files);
    daemons.push(third);
    await third.ready();
    // Its stop waits for a reconciliation the start left going.
    expect(await third.stop()).toBe(0);
    expect(await host().containers(first.prefix)).toEqual([]);
  }, 300_000);
});

function outcomesOf(d: TestDaemon, id: string) {
  return d.logs().filter((l) => l.event === 'session.outcome' && l.session === id);
}
