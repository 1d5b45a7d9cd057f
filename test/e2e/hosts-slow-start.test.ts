/**
 * A host that answers its probe but is slow to reconcile does not hold back the daemon's start: a side
 * Podman host reached through a unix:// proxy that holds every `ps` (containers/json) for a while, as a
 * Podman stalled on a lock would, beside the local Podman. The daemon is ready long before that host's
 * reconciliation ends; the host is down at start, and up once its reconciliation is done.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { type HostProxy, proxyInFrontOf, type SideHosts, startSideHosts } from '../helpers/podman-hosts.js';
import { cleanupAll } from '../helpers/resources.js';

/** How long the proxy holds each `ps` of the slow host. */
const HOLD_MS = 25_000;

let side: SideHosts;
let proxy: HostProxy;
const daemons: TestDaemon[] = [];

beforeAll(async () => {
  side = await startSideHosts(['slow']);
  proxy = await proxyInFrontOf(side, 'slow', (req, _res, forward) => {
    if (/\/containers\/json/.test(req.url ?? '')) setTimeout(forward, HOLD_MS);
    else forward();
  });
}, 300_000);

afterAll(async () => {
  try {
    for (const d of daemons.splice(0)) if (d.running) await d.stop('SIGTERM', 60_000);
    await proxy?.close();
    await side?.close();
  } finally {
    await cleanupAll();
  }
}, 120_000);

describe('a host slow to reconcile at start', () => {
  it('does not hold back the start: it is down at start, and up once its reconciliation is done', async () => {
    const started = Date.now();
    const d = await startDaemon({
      // A probe timeout with room for a loaded machine (a probe that fails would make the host down for
      // another reason); the start then waits 9 s at most.
      daemon: { host_probe_interval: '1s', host_probe_timeout: '3s', podman_timeout: '60s' },
      hosts: [{ name: 'local' }, { name: 'slow', url: `unix://${proxy.socket}` }],
      agents: [{ name: 'quick', image: TEST_IMAGE, command: ['true'], network: 'none' }],
    });
    daemons.push(d);
    const readyAfter = Date.now() - started;
    // Three probe timeouts and the start's own work; the old start waited for the held `ps` (25 s).
    expect(readyAfter).toBeLessThan(HOLD_MS - 7_000);
    const down = d.logs().find((l) => l.event === 'host.down' && l.host === 'slow');
    expect(down?.atStart).toBe(true);
    expect(String(down?.reason)).toContain(
      'its reconciliation was not done within 9.0s (3 x daemon.host_probe_timeout)',
    );
    const up = await d.waitForLog((l) => l.event === 'host.up' && l.host === 'slow', 60_000);
    expect(up.time as number).toBeGreaterThanOrEqual(started + HOLD_MS);
    const hosts = await d.cli(['hosts', '--json']);
    const rows = (JSON.parse(hosts.stdout) as { hosts: { name: string; state: string }[] }).hosts;
    expect(rows.map((h) => [h.name, h.state])).toEqual([
      ['local', 'up'],
      ['slow', 'up'],
    ]);
  }, 120_000);
});
