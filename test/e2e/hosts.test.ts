/**
 * Sessions on a pool of Podman hosts, end to end: extra `podman system service` processes with their own
 * storage stand in for other machines (unix:// sockets, and one behind an sshd on a loopback port,
 * reached over ssh://), the test image loaded into each once for this file. The real daemon and CLI
 * place sessions, follow them when a host's service dies and comes back, drain hosts, and reconcile
 * each host; afterwards nothing of the daemons is left on any host.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_AGENT, LABEL_HOST, LABEL_INSTANCE, LABEL_SESSION } from '../../src/constants.js';
import { secretName } from '../../src/runner/names.js';
import {
  type DaemonFiles,
  type LogLine,
  launchDaemon,
  leftoversOfDaemons,
  prepareDaemon,
  runCli,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { type Gate, startGate } from '../helpers/gate.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { leftoversOnHosts, type SideHost, type SideHosts, startSideHosts } from '../helpers/podman-hosts.js';
import { cleanupAll } from '../helpers/resources.js';

let git: GitServer;
let gate: Gate;
let side: SideHosts;
const daemons: TestDaemon[] = [];

/** Host a and b over unix://, c over ssh:// when sshd is there (else over unix://). */
let a: SideHost;
let b: SideHost;
let c: SideHost;

beforeAll(async () => {
  // allSettled: when one fails, afterAll still finds and stops the others (Promise.all would leave
  // them starting unseen, their server and temp dir left behind).
  const started = await Promise.allSettled([
    startGitServer().then((g) => (git = g)),
    startGate().then((g) => (gate = g)),
    startSideHosts(['a', 'b'], { ssh: 'c' }).then((s) => (side = s)),
  ]);
  for (const result of started) if (result.status === 'rejected') throw result.reason;
  [a, b, c] = side.hosts as [SideHost, SideHost, SideHost];
  if (side.noSsh !== undefined) {
    // Without sshd the third host is reached like the others; the report says why.
    process.stderr.write(`hosts.test: no ssh:// host: ${side.noSsh}\n`);
  }
}, 300_000);

afterEach(async () => {
  // A test that failed halfway may leave a host's service dead.
  for (const host of side.hosts) if (host.pid === undefined) await host.start();
  gate.open();
  const stopped = daemons.splice(0);
  for (const d of stopped) if (d.running) await d.stop('SIGTERM', 60_000);
  gate.hold();
  // A drained daemon leaves nothing on any host; side.close() would empty the hosts unseen at the end.
  const left = await leftoversOnHosts(
    side.hosts,
    stopped.map((d) => d.prefix),
  );
  expect(left, 'podman objects the stopped daemons left on the hosts').toEqual([]);
  expect(await leftoversOfDaemons(), 'podman objects the test daemons left on this machine').toEqual([]);
});

afterAll(async () => {
  try {
    await side?.close();
  } finally {
    await cleanupAll();
    await Promise.allSettled([git?.stop(), gate?.close()]);
  }
});

function hostsConfig(extra: Record<string, Record<string, unknown>> = {}) {
  return [
    { name: 'a', url: a.url, max_sessions: 2, ...extra.a },
    { name: 'b', url: b.url, max_sessions: 1, labels: { zone: 'b' }, ...extra.b },
    {
      name: 'c',
      url: c.url,
      max_sessions: 1,
      ...(side.ssh === undefined ? {} : { identity: side.ssh.identity }),
      ...extra.c,
    },
  ];
}

function agents() {
  const agent = (name: string, command: string[], extra: Record<string, unknown> = {}) => ({
    name,
    image: TEST_IMAGE,
    command,
    repo: git.url(),
    network: 'host',
    ...extra,
  });
  return [
    agent('gated', gate.command),
    agent('quick', ['sh', '-c', 'echo quick on $AGENTD_AGENT']),
    agent('pinned', gate.command, { hosts: ['b'] }),
    agent('zoned', ['true'], { host_labels: { zone: 'b' } }),
    // On c (ssh://): its work is copied in and its output out, not mounted from this machine.
    agent(
      'worker',
      [
        'sh',
        '-c',
        [
          'cat "$AGENTD_REQUEST_FILE"; echo; cat "$AGENTD_INPUT_DIR/notes.md"',
          '{ echo x >> "$AGENTD_REQUEST_FILE"; } 2>/dev/null || echo "request not writable"',
          '{ echo x > "$AGENTD_INPUT_DIR/new"; } 2>/dev/null || echo "inputs not writable"',
          'mkdir -p "$AGENTD_OUTPUT_DIR/deep" && echo "result of $AGENTD_SESSION_ID" > "$AGENTD_OUTPUT_DIR/deep/result.txt"',
        ].join('\n'),
      ],
      { hosts: ['c'] },
    ),
  ];
}

/** The daemon's environment: HOME holds the ssh host's key in ~/.ssh/known_hosts, so podman checks it. */
function env(): Record<string, string> {
  return side.ssh === undefined ? {} : { HOME: side.ssh.knownHostsHome };
}

async function fleet(daemon: Record<string, unknown> = {}, files?: DaemonFiles): Promise<TestDaemon> {
  const config = {
    daemon: { host_probe_interval: '1s', host_probe_timeout: '5s', ...daemon },
    hosts: hostsConfig(),
    agents: agents(),
  };
  const d = files ? launchDaemon(files, { env: env() }) : await startDaemon(config, { env: env() });
  if (files) await d.ready();
  daemons.push(d);
  return d;
}

async function trigger(d: TestDaemon, agent: string): Promise<string> {
  const result = await d.cli(['trigger', agent, '--detach']);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
}

interface Status {
  running: { id: string; host?: string }[];
  queued: { id: string }[];
}

async function status(d: TestDaemon): Promise<Status> {
  const result = await d.cli(['status', '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Status;
}

interface HostRow {
  name: string;
  state: string;
  drained: boolean;
  running: number;
  maxSessions: number;
  version?: string;
}

async function hosts(d: TestDaemon): Promise<HostRow[]> {
  const result = await d.cli(['hosts', '--json']);
  expect(result.code, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as { hosts: HostRow[] }).hosts;
}

/** What the daemons of this file left on every host: containers and secrets under their prefix. */
function leftovers(prefix: string): Promise<string[]> {
  return leftoversOnHosts(side.hosts, [prefix]);
}

function outcomesOf(d: TestDaemon, id: string): LogLine[] {
  return d.logs().filter((l) => l.event === 'session.outcome' && l.session === id);
}

describe('a pool of Podman hosts', () => {
  it('spreads a burst over the hosts within their limits; status, hosts and records say where each runs', async () => {
    const d = await fleet();
    const rows = await hosts(d);
    expect(rows.map((h) => [h.name, h.state, h.maxSessions])).toEqual([
      ['a', 'up', 2],
      ['b', 'up', 1],
      ['c', 'up', 1],
    ]);
    expect(rows.every((h) => h.version === '4.3.1')).toBe(true);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await trigger(d, 'gated'));
    await gate.waitFor(4);
    const s = await status(d);
    const placed = Object.fromEntries(s.running.map((r) => [r.id, r.host]));
    expect(Object.values(placed).sort()).toEqual(['a', 'a', 'b', 'c']);
    expect(s.queued.map((q) => q.id)).toEqual([ids[4]]);
    expect((await hosts(d)).map((h) => h.running)).toEqual([2, 1, 1]);
    // Each container runs on its host, labelled with the instance and the host.
    for (const host of side.hosts) {
      const containers = await host.containers(d.prefix);
      expect(containers.map((x) => x.labels[LABEL_HOST])).toEqual(
        Object.values(placed).filter((h) => h === host.name),
      );
      for (const container of containers) expect(container.labels[LABEL_INSTANCE]).toBe(d.files.instanceId);
    }
    gate.open();
    for (const id of ids) expect((await d.waitForOutcome(id)).outcome, id).toBe('succeeded');
    for (const id of ids.slice(0, 4)) expect(d.record(id)?.host).toBe(placed[id]);
    expect(['a', 'b', 'c']).toContain(d.record(ids[4] as string)?.host);
    expect(await leftovers(d.prefix)).toEqual([]);
  });

  it('runs an agent pinned to a host, or restricted by labels, only there', async () => {
    gate.open();
    const d = await fleet();
    const ids = [
      await trigger(d, 'pinned'),
      await trigger(d, 'pinned'),
      await trigger(d, 'zoned'),
      await trigger(d, 'zoned'),
    ];
    for (const id of ids) {
      expect((await d.waitForOutcome(id)).outcome, id).toBe('succeeded');
      expect(d.record(id)?.host, id).toBe('b');
    }
    expect(await leftovers(d.prefix)).toEqual([]);
  });

  it("keeps a session whose host's service dies: new sessions go elsewhere, and it is followed again when the host is back", async () => {
    const d = await fleet();
    const pinned = await trigger(d, 'pinned');
    await gate.waitFor(1);
    // The command is at the gate; the daemon may not have read the running marker yet (a loaded machine).
    await d.waitForPhase(pinned, 'running');
    await b.kill();
    await d.waitForLog((l) => l.event === 'host.down' && l.host === 'b');
    const row = (await hosts(d)).find((h) => h.name === 'b');
    expect(row).toMatchObject({ state: 'down', running: 1 });
    // New sessions go to the other hosts; one that may run only on b waits.
    const elsewhere = await trigger(d, 'quick');
    expect((await d.waitForOutcome(elsewhere)).outcome).toBe('succeeded');
    expect(d.record(elsewhere)?.host).not.toBe('b');
    const waiting = await trigger(d, 'pinned');
    expect((await status(d)).queued.map((q) => q.id)).toEqual([waiting]);
    // The first session is not lost: its container runs on at the gate.
    expect(outcomesOf(d, pinned)).toEqual([]);
    await b.start();
    await d.waitForLog((l) => l.event === 'host.up' && l.host === 'b');
    gate.open();
    const first = await d.waitForOutcome(pinned);
    expect(first).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    const log = await d.cli(['logs', pinned]);
    expect(log.stdout).toMatch(/waiting\n(.*\n)*released/);
    expect((await d.waitForOutcome(waiting)).outcome).toBe('succeeded');
    expect(d.record(waiting)?.host).toBe('b');
    for (const id of [pinned, elsewhere, waiting]) expect(outcomesOf(d, id), id).toHaveLength(1);
    expect(await leftovers(d.prefix)).toEqual([]);
  });

  it('settles a session abandoned when its host stays away past the grace period; the host reconciles it away when it is back', async () => {
    const d = await fleet({ host_down_grace: '3s' });
    const pinned = await trigger(d, 'pinned');
    await gate.waitFor(1);
    // The command is at the gate; the daemon may not have read the running marker yet (a loaded machine).
    await d.waitForPhase(pinned, 'running');
    await b.kill();
    const outcome = await d.waitForOutcome(pinned);
    expect(outcome).toMatchObject({ outcome: 'abandoned' });
    expect(String(outcome.message)).toMatch(/lost the connection to host b while running/);
    expect(outcomesOf(d, pinned)).toHaveLength(1);
    await b.start();
    await d.waitForLog((l) => l.event === 'host.up' && l.host === 'b');
    // Its container ran on at the gate; reconciling b removed it.
    expect(await b.containers(d.prefix)).toEqual([]);
    expect(outcomesOf(d, pinned)).toHaveLength(1);
  });

  it('hands a session on a host that does not see this machine its request and inputs, and brings its output back', async () => {
    const d = await fleet();
    const dir = mkdtempSync(join(tmpdir(), 'agentd-hosts-work-'));
    try {
      writeFileSync(join(dir, 'notes.md'), 'the notes\n');
      const result = await d.cli([
        'trigger',
        'worker',
        '--json',
        '--request',
        'the request',
        '--input',
        `notes.md=${join(dir, 'notes.md')}`,
      ]);
      const reply = JSON.parse(result.stdout) as { sessionId: string; outcome: string };
      expect(reply.outcome, result.stdout + result.stderr).toBe('succeeded');
      const id = reply.sessionId;
      expect(d.record(id)?.host).toBe('c');
      const log = (await d.cli(['logs', id])).stdout;
      expect(log).toContain('the request\nthe notes\nrequest not writable\ninputs not writable\n');
      const record = d.record(id) as { recordDir?: string } | undefined;
      expect(readFileSync(join(record?.recordDir ?? '', 'out', 'deep', 'result.txt'), 'utf8')).toBe(
        `result of ${id}\n`,
      );
      expect(await leftovers(d.prefix)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drains a host: no new sessions go there until it is undrained', async () => {
    gate.open();
    const d = await fleet();
    const drained = await d.cli(['hosts', 'drain', 'a']);
    expect(drained.stdout, drained.stderr).toMatch(/^host a drained/);
    expect((await hosts(d)).find((h) => h.name === 'a')).toMatchObject({ state: 'up', drained: true });
    const during = [await trigger(d, 'quick'), await trigger(d, 'quick'), await trigger(d, 'quick')];
    for (const id of during) {
      expect((await d.waitForOutcome(id)).outcome).toBe('succeeded');
      expect(d.record(id)?.host, id).not.toBe('a');
    }
    expect((await d.cli(['hosts', 'undrain', 'a'])).code).toBe(0);
    // a has the most free slots again.
    const after = await trigger(d, 'quick');
    expect((await d.waitForOutcome(after)).outcome).toBe('succeeded');
    expect(d.record(after)?.host).toBe('a');
    const unknown = await d.cli(['hosts', 'drain', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no host "nope"; known hosts: a, b, c/);
  });

  it('doctor checks every host: reachable, its Podman, a smoke run and the images there; one that is not says how to fix it', async () => {
    const files = prepareDaemon({
      hosts: [
        ...hostsConfig(),
        { name: 'gone', url: `unix://${a.dir}/nobody-listens.sock`, max_sessions: 1 },
      ],
      agents: agents(),
    });
    const result = await runCli(['doctor', '--config', files.configPath], { env: env() });
    expect(result.code, result.stdout).toBe(1);
    const lines = result.stdout.split('\n');
    const row = (check: string) => lines.find((l) => l.includes(` ${check}: `)) ?? `no ${check} row`;
    for (const host of side.hosts) {
      expect(row(`host ${host.name}`)).toMatch(new RegExp(`^ok +host ${host.name}: podman 4\\.3\\.1 at `));
      expect(row(`host ${host.name}: runtime`)).toMatch(/^ok .*podman run --rm .* true works/);
      expect(row(`host ${host.name}: image ${TEST_IMAGE}`)).toMatch(/^ok .*present/);
    }
    if (side.ssh !== undefined) {
      expect(row('host c: transport')).toMatch(/^ok .*ssh with the key .* \(mode 0600\)/);
      expect(row('host c: host key')).toMatch(/^warn .*known_hosts/);
    }
    expect(row('host gone')).toMatch(/^fail +host gone: probe the host: cannot reach the Podman host/);
    expect(result.stdout).toMatch(/fix: Start the Podman API service on that socket/);
    expect(result.stdout).not.toMatch(/host gone: runtime/);
  });

  it("reconciles every host at start, removing only its own instance's objects there", async () => {
    const files = prepareDaemon({
      daemon: { host_probe_interval: '1s' },
      hosts: hostsConfig(),
      agents: agents(),
    });
    const foreign = `agentd-0f0f0f0f-x-${'f'.repeat(16)}`;
    const planted: Record<string, { ours: string[]; theirs: string[] }> = {};
    for (const host of side.hosts) {
      const session = `${host.name.charCodeAt(0).toString(16)}`.padEnd(16, '0');
      const ourContainer = `${files.prefix}quick-${session}`;
      const ourSecret = secretName(files.instanceId, session, 0);
      // As agentd labels its own: a container is touched only if its name is the one its labels give.
      await plantContainer(host, ourContainer, {
        [LABEL_INSTANCE]: files.instanceId,
        [LABEL_HOST]: host.name,
        [LABEL_AGENT]: 'quick',
        [LABEL_SESSION]: session,
      });
      await plantSecret(host, ourSecret, { [LABEL_INSTANCE]: files.instanceId });
      await plantContainer(host, `${foreign}-${host.name}`, { [LABEL_INSTANCE]: '0f'.repeat(16) });
      await plantSecret(host, `${foreign}-0`, { [LABEL_INSTANCE]: '0f'.repeat(16) });
      planted[host.name] = {
        ours: [ourContainer, ourSecret],
        theirs: [`${foreign}-${host.name}`, `${foreign}-0`],
      };
    }
    const d = await fleet({}, files);
    for (const host of side.hosts) {
      const reconciled = d.logs().find((l) => l.event === 'daemon.reconciled' && l.host === host.name);
      expect(reconciled, host.name).toMatchObject({ removedContainers: 1, removedSecrets: 1 });
      const names = [
        ...(await host.containers('agentd-')).map((x) => x.name),
        ...(await host.secrets('agentd-')),
      ];
      expect(names.sort(), host.name).toEqual([...(planted[host.name]?.theirs ?? [])].sort());
      await host.podman(['rm', '--force', `${foreign}-${host.name}`]);
      await host.podman(['secret', 'rm', `${foreign}-0`]);
    }
  });
});

async function plantContainer(host: SideHost, name: string, labels: Record<string, string>): Promise<void> {
  const args = [
    'create',
    '--name',
    name,
    ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
  ];
  const created = await host.podman([...args, '--network', 'none', TEST_IMAGE, 'true']);
  expect(created.exitCode, created.stderr).toBe(0);
}

async function plantSecret(host: SideHost, name: string, labels: Record<string, string>): Promise<void> {
  const { execa } = await import('execa');
  const labelArgs = Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  // Podman reads `-` only from a real pipe: `cat` bridges Node's socket to one.
  await execa(
    'sh',
    [
      '-c',
      'cat | exec podman "$@"',
      'podman',
      '--url',
      `unix://${host.socket}`,
      'secret',
      'create',
      ...labelArgs,
      name,
      '-',
    ],
    {
      input: 'planted',
    },
  );
}
