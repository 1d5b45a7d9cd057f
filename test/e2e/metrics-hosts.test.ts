/**
 * agentd_recovered_sessions_total counts the sessions of an earlier daemon that a host down at start
 * recovers once it is back, not only those the start's own reconciliation recovered: a side Podman host
 * whose service is killed while a session of a crashed daemon runs on it (its container runs on), and
 * started again once the next daemon is up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchDaemon, leftoversOfDaemons, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { leftoversOnHosts, type SideHost, type SideHosts, startSideHosts } from '../helpers/podman-hosts.js';
import { cleanupAll } from '../helpers/resources.js';

const TOKEN = 'metrics-hosts-e2e-token';

let git: GitServer;
let side: SideHosts;
let host: SideHost;
const daemons: TestDaemon[] = [];

beforeAll(async () => {
  const started = await Promise.allSettled([
    startGitServer().then((g) => (git = g)),
    startSideHosts(['m']).then((s) => (side = s)),
  ]);
  for (const result of started) if (result.status === 'rejected') throw result.reason;
  host = side.hosts[0] as SideHost;
}, 300_000);

afterAll(async () => {
  // What the daemons left here and on the side host is read once they stopped, before side.close()
  // and cleanupAll() remove it unseen, and fails the file.
  let left: string[] = [];
  try {
    if (host !== undefined && host.pid === undefined) await host.start();
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
    await side?.close();
  } finally {
    await cleanupAll();
    await git?.stop();
  }
  expect(left, 'podman objects the test daemons left behind').toEqual([]);
}, 120_000);

async function scrape(d: TestDaemon): Promise<string> {
  const listening = await d.waitForLog((l) => l.event === 'http.listening');
  const response = await fetch(`${String(listening.address)}/metrics`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(response.status).toBe(200);
  return response.text();
}

describe('agentd_recovered_sessions_total', () => {
  it('counts a session of an earlier daemon adopted by a host that was down at start, once it is back', async () => {
    const config = {
      daemon: {
        host_probe_interval: '1s',
        host_probe_timeout: '5s',
        http: {
          listen: '127.0.0.1:0',
          tokens: [{ name: 'view', source: 'env:AGENTD_E2E_METRICS_TOKEN', scopes: ['read'] }],
        },
      },
      hosts: [{ name: 'local' }, { name: 'm', url: host.url }],
      agents: [
        {
          name: 'pinned',
          image: TEST_IMAGE,
          command: ['sh', '-c', 'echo started; sleep 300'],
          repo: git.url(),
          network: 'host',
          hosts: ['m'],
        },
      ],
    };
    const env = { AGENTD_E2E_METRICS_TOKEN: TOKEN };
    const first = await startDaemon(config, { env });
    daemons.push(first);
    const triggered = await first.cli(['trigger', 'pinned', '--detach']);
    expect(triggered.code, triggered.stderr).toBe(0);
    const id = triggered.stdout.trim();
    await first.waitForPhase(id, 'running');
    // A crash: the session's container runs on, on a host whose service then dies too.
    first.signal('SIGKILL');
    await first.waitForExit();
    await host.kill();

    const second = launchDaemon(first.files, { env });
    daemons.push(second);
    await second.ready();
    const down = await second.waitForLog((l) => l.event === 'host.down' && l.host === 'm');
    expect(down.atStart).toBe(true);
    expect(await scrape(second)).toMatch(/^agentd_recovered_sessions_total\{how="adopted"\} 0$/m);

    await host.start();
    const up = await second.waitForLog((l) => l.event === 'host.up' && l.host === 'm', 120_000);
    expect(up.adopted).toEqual([id]);
    const text = await scrape(second);
    expect(text).toMatch(/^agentd_recovered_sessions_total\{how="adopted"\} 1$/m);
    expect(text).toMatch(/^agentd_sessions_running 1$/m);

    const cancelled = await second.cli(['cancel', id]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect((await second.waitForOutcome(id, 120_000)).outcome).toBe('cancelled');
    expect(await scrape(second)).toMatch(
      /^agentd_sessions_finished_total\{agent="pinned",outcome="cancelled"\} 1$/m,
    );
    expect(await second.stop()).toBe(0);
  }, 300_000);
});
