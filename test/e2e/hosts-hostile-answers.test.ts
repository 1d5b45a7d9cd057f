/**
 * A host whose Podman API answers with megabytes (a compromised or wrong endpoint): a side Podman host
 * reached through a unix:// proxy that rewrites some answers, which the podman client hands on as they
 * came (a version, an error message). The host stays down, and what the log and `agentd hosts` say of
 * it stays small.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LogLine, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { type HostProxy, proxyInFrontOf, type SideHosts, startSideHosts } from '../helpers/podman-hosts.js';
import { cleanupAll } from '../helpers/resources.js';

/** What the proxy does to the answers of the odd host now. */
let mode: 'huge-version' | 'huge-error' = 'huge-version';
let side: SideHosts;
let proxy: HostProxy;
const daemons: TestDaemon[] = [];

beforeAll(async () => {
  side = await startSideHosts(['odd']);
  proxy = await proxyInFrontOf(side, 'odd', (req, res, forward) => {
    const url = req.url ?? '';
    if (mode === 'huge-version' && /\/version$/.test(url)) {
      // A version of 5 MB.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ Version: 'V'.repeat(5_000_000), ApiVersion: '4.3.1', Components: [] }));
      return;
    }
    if (mode === 'huge-error' && /\/containers\/json/.test(url)) {
      // Podman prints the engine's message as it came: 500 KB on one stderr line.
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ cause: 'x', message: 'E'.repeat(500_000), response: 500 }));
      return;
    }
    forward();
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

/** The longest line the daemon logged, in characters. */
const longest = (lines: LogLine[]) => Math.max(...lines.map((l) => JSON.stringify(l).length));

describe('a host that answers with megabytes', () => {
  it('stays down with a short reason; the daemon and the other host go on', async () => {
    const d = await startDaemon({
      daemon: { host_probe_interval: '1s', host_probe_timeout: '5s' },
      hosts: [{ name: 'local' }, { name: 'odd', url: `unix://${proxy.socket}` }],
      agents: [{ name: 'quick', image: TEST_IMAGE, command: ['true'], network: 'none' }],
    });
    daemons.push(d);
    const down = await d.waitForLog((l) => l.event === 'host.down' && l.host === 'odd', 30_000);
    expect(String(down.reason)).toContain("probe the host: podman's answer was larger than any Podman gives");
    // Its engine's 500 KB message, to the next reconciliation's `ps`.
    mode = 'huge-error';
    const since = d.logs().length;
    const again = await d.waitForLog(
      (l) => l.event === 'host.down' && l.host === 'odd' && String(l.reason).includes('list containers'),
      30_000,
    );
    expect(String(again.reason).length).toBeLessThan(2_000);
    expect(String(again.reason)).toContain('EEEE…');
    // A few retries later: every line short, the host's row short, the daemon answering at once.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(longest(d.logs())).toBeLessThan(10_000);
    expect(d.logs().length - since).toBeGreaterThan(1);
    // The host retries (probe, reconcile, down again): a row read during a retry says `reconciling`.
    // It must never say `up`, and reads `down` between retries.
    let rows: [string, string][] = [];
    for (let read = 0; read < 20; read++) {
      const started = Date.now();
      const hosts = await d.cli(['hosts', '--json']);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(hosts.stdout.length).toBeLessThan(10_000);
      const listed = (JSON.parse(hosts.stdout) as { hosts: { name: string; state: string }[] }).hosts;
      rows = listed.map((h) => [h.name, h.state]);
      expect(rows).toContainEqual(['local', 'up']);
      expect(rows).not.toContainEqual(['odd', 'up']);
      if (rows.some(([name, state]) => name === 'odd' && state === 'down')) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(rows).toEqual([
      ['local', 'up'],
      ['odd', 'down'],
    ]);
  }, 120_000);
});
