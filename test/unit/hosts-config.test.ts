import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Actor } from 'xstate';
import type { ServiceNotifier } from '../../src/adapters/sd-notify.js';
import { hostChanges } from '../../src/config/diff.js';
import { hostAllowed, hostsOf, hostUrlProblem } from '../../src/config/hosts.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import type { HostConfig, Settings } from '../../src/config/types.js';
import { createReloader } from '../../src/daemon/reload.js';
import type { daemonMachine } from '../../src/machines/daemon.machine.js';
import { placeQueued } from '../../src/sessions/placement.js';

const FILE = '/etc/agentd/agentd.yaml';
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };
const dir = mkdtempSync(join(tmpdir(), 'agentd-hosts-config-'));
const KEY = join(dir, 'id_ed25519');
writeFileSync(KEY, 'not really a key', { mode: 0o600 });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function agent(extra = '', name = 'demo'): string {
  return `  - name: ${name}\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${extra}`;
}

function parse(text: string) {
  return parseConfig(text, FILE, ENV, 1000);
}

function problems(text: string): { path: string; message: string; line?: number }[] {
  try {
    parse(text);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the configuration to be rejected');
}

function expectProblem(text: string, path: string, ...fragments: string[]) {
  const found = problems(text);
  const problem = found.find((p) => p.path === path);
  expect(problem, `no problem at ${path}; got:\n${JSON.stringify(found, null, 2)}`).toBeDefined();
  for (const fragment of fragments) expect(problem?.message).toContain(fragment);
}

const HOSTS = `hosts:
  - name: build1
    url: unix:///run/podman/podman.sock
    max_sessions: 2
    labels: { gpu: "yes", zone: 1 }
  - name: build2
    url: ssh://agentd@build2.example:2222/run/podman/podman.sock?secure=true
    identity: ${KEY}
  - name: loop
    url: tcp://127.0.0.1:8080
    insecure: true
    max_sessions: 1
`;

describe('hosts: in the configuration', () => {
  it('reads each host; without daemon.max_sessions the hosts together set it', () => {
    const settings = parse(
      `${HOSTS}agents:\n${agent('    hosts: [build1, build2]\n')}${agent('    host_labels: { gpu: "yes" }\n', 'gpu')}`,
    );
    expect(settings.hosts).toEqual([
      {
        name: 'build1',
        url: 'unix:///run/podman/podman.sock',
        maxSessions: 2,
        labels: { gpu: 'yes', zone: '1' },
      },
      {
        name: 'build2',
        url: 'ssh://agentd@build2.example:2222/run/podman/podman.sock?secure=true',
        identity: KEY,
        maxSessions: 4,
        labels: {},
      },
      { name: 'loop', url: 'tcp://127.0.0.1:8080', maxSessions: 1, labels: {} },
    ]);
    expect(settings.daemon.maxSessions).toBe(7);
    expect(settings.agents[0]?.hosts).toEqual(['build1', 'build2']);
    expect(settings.agents[1]?.hostLabels).toEqual({ gpu: 'yes' });
    expect(hostsOf(settings).map((h) => h.name)).toEqual(['build1', 'build2', 'loop']);
  });

  it('keeps an explicit daemon.max_sessions as the limit over all hosts', () => {
    expect(parse(`daemon:\n  max_sessions: 3\n${HOSTS}agents:\n${agent()}`).daemon.maxSessions).toBe(3);
  });

  it('without hosts: sessions run on the local Podman, host `local`, with daemon.max_sessions slots', () => {
    const settings = parse(`daemon:\n  max_sessions: 5\nagents:\n${agent()}`);
    expect(settings.hosts).toEqual([]);
    expect(hostsOf(settings)).toEqual([{ name: 'local', maxSessions: 5, labels: {} }]);
  });

  it('refuses tcp:// without insecure: true, and says why', () => {
    expectProblem(
      `hosts:\n  - name: x\n    url: tcp://127.0.0.1:8080\nagents:\n${agent()}`,
      'hosts[0].url',
      'neither encryption nor authentication',
      'insecure: true',
    );
  });

  it.each([
    ['http://build1/run/podman.sock', 'uses http://, which Podman cannot reach'],
    ['unix://relative.sock', 'absolute path'],
    ['ssh://build1/run/podman/podman.sock', 'names the user and the host'],
    ['ssh://agentd:hunter2@build1/run/podman/podman.sock', 'carries a password'],
    ['ssh://agentd@build1', 'path of the Podman socket'],
    ['ssh://agentd@build1/run/p.sock?identity=/x', 'no query but ?secure=true'],
    ['tcp://127.0.0.1', 'names the host and the port'],
    ['tcp://agentd:hunter2@127.0.0.1:8080', 'tcp://host:port and nothing else'],
    ['not a url', 'is not a URL'],
    // A password with a `/` ends the authority a URL parser reads before the `@`.
    ['ssh://agentd:hun/ter2hunter2@build1/run/podman/podman.sock', 'is not a URL (not repeated here'],
  ])('refuses the url %s', (url, fragment) => {
    expectProblem(`hosts:\n  - name: x\n    url: "${url}"\nagents:\n${agent()}`, 'hosts[0].url', fragment);
    expect(hostUrlProblem(url)).toContain(fragment);
    // A password is never repeated where the problem goes (logs, the reload reply, validate).
    expect(hostUrlProblem(url)).not.toContain('hunter2');
  });

  it('refuses keys that do not fit the url, and a missing key file', () => {
    expectProblem(
      `hosts:\n  - name: x\n    url: unix:///run/p.sock\n    identity: ${KEY}\nagents:\n${agent()}`,
      'hosts[0].identity',
      'ssh:// urls only',
    );
    expectProblem(
      `hosts:\n  - name: x\n    url: unix:///run/p.sock\n    insecure: true\nagents:\n${agent()}`,
      'hosts[0].insecure',
      'only applies to tcp://',
    );
    expectProblem(
      `hosts:\n  - name: x\n    url: ssh://a@h/run/p.sock\n    identity: ${join(dir, 'missing')}\nagents:\n${agent()}`,
      'hosts[0].identity',
      'does not exist',
      'ssh-keygen',
    );
  });

  it('refuses two hosts with one name, or two entries for one engine', () => {
    const text = `hosts:\n  - name: x\n    url: unix:///a.sock\n  - name: x\n    url: unix:///a.sock\n  - name: y\n  - name: z\nagents:\n${agent()}`;
    expectProblem(text, 'hosts[1].name', 'already used by hosts[0]');
    expectProblem(text, 'hosts[1].url', 'same url');
    expectProblem(text, 'hosts[3]', 'only one host may be the local podman');
  });

  it('refuses an agent that could run nowhere', () => {
    expectProblem(
      `${HOSTS}agents:\n${agent('    hosts: [build9]\n')}`,
      'agents[0].hosts[0]',
      'not a configured host',
      'build1, build2, loop',
    );
    expectProblem(`${HOSTS}agents:\n${agent('    hosts: []\n')}`, 'agents[0].hosts', 'could run nowhere');
    expectProblem(
      `${HOSTS}agents:\n${agent('    hosts: [build2]\n    host_labels: { gpu: "yes" }\n')}`,
      'agents[0].host_labels',
      'no configured host among build2 has the labels',
    );
    expectProblem(`agents:\n${agent('    hosts: [x]\n')}`, 'agents[0].hosts', 'no hosts: are configured');
  });

  it('names a bad host name, and an unknown key under a host', () => {
    expectProblem(`hosts:\n  - name: Build_1!\nagents:\n${agent()}`, 'hosts[0].name', 'not a host name');
    expectProblem(
      `hosts:\n  - name: b\n    urls: unix:///x.sock\nagents:\n${agent()}`,
      'hosts[0].urls',
      'did you mean "url"?',
    );
  });
});

describe('which host a session may use', () => {
  it('follows the agent’s hosts: and host_labels:', () => {
    const host = { name: 'b1', labels: { gpu: 'yes' } };
    expect(hostAllowed({ hostLabels: {} }, host)).toBe(true);
    expect(hostAllowed({ hosts: ['b2'], hostLabels: {} }, host)).toBe(false);
    expect(hostAllowed({ hosts: ['b1'], hostLabels: { gpu: 'yes' } }, host)).toBe(true);
    expect(hostAllowed({ hostLabels: { gpu: 'no' } }, host)).toBe(false);
  });

  it('places oldest first on the most free slots, skipping what cannot run, within the daemon-wide limit', () => {
    const any = { agent: { hostLabels: {} } };
    const pinned = { agent: { hosts: ['a'], hostLabels: {} } };
    const hosts = [
      { name: 'a', maxSessions: 2, running: 2, labels: {}, accepting: true },
      { name: 'b', maxSessions: 4, running: 1, labels: {}, accepting: true },
      { name: 'c', maxSessions: 9, running: 0, labels: {}, accepting: false },
    ];
    const queue = [pinned, any, any, any];
    expect(placeQueued(queue, hosts, 10).map((p) => [queue.indexOf(p.session), p.host])).toEqual([
      [1, 'b'],
      [1, 'b'],
      [1, 'b'],
    ]);
    expect(placeQueued(queue, hosts, 2)).toHaveLength(2);
  });
});

describe('reloading hosts', () => {
  const host = (name: string, extra: Partial<HostConfig> = {}): HostConfig => ({
    name,
    url: `unix:///run/${name}.sock`,
    maxSessions: 2,
    labels: {},
    ...extra,
  });

  it('applies max_sessions and labels; a host added, removed or moved waits for a restart', () => {
    const { hosts, restartNeeded } = hostChanges(
      [host('a'), host('b'), host('c')],
      [
        host('a', { maxSessions: 5, labels: { x: '1' } }),
        host('b', { url: 'unix:///elsewhere.sock' }),
        host('d'),
      ],
    );
    expect(hosts).toEqual([host('a', { maxSessions: 5, labels: { x: '1' } }), host('b'), host('c')]);
    expect(restartNeeded.map((p) => p.key)).toEqual(['hosts.b', 'hosts.c', 'hosts.d']);
  });
});

describe('tcp:// hosts that sessions can reach', () => {
  const tcpHost = (url: string) => `hosts:\n  - name: loop\n    url: "${url}"\n    insecure: true\n`;

  it('refuses one on a loopback address when an agent has network: host, naming host and agents', () => {
    const text = `${tcpHost('tcp://127.0.0.1:8080')}agents:\n${agent('    network: host\n', 'scout')}${agent('    network: none\n', 'quiet')}${agent()}`;
    const [problem, ...rest] = problems(text);
    expect(rest).toEqual([]);
    expect(problem).toMatchObject({ path: 'hosts[0].url', line: 3 });
    expect(problem?.message).toBe(
      "tcp://127.0.0.1:8080 (host loop) is Podman's API without authentication, root on that machine for " +
        'whoever reaches the port, and agent scout (network: host) can reach it from its sessions ' +
        "(network: host shares this machine's 127.0.0.1); use unix:// or ssh://, or give the agent " +
        'network: bridge or none',
    );
  });

  it.each(['tcp://localhost:8080', 'tcp://[::1]:8080', 'tcp://127.0.0.2:8080'])(
    'reads %s as loopback: bridge and none agents may be configured with it',
    (url) => {
      const text = `${tcpHost(url)}agents:\n${agent()}${agent('    network: none\n', 'quiet')}`;
      expect(parse(text).hosts[0]?.url).toBe(url);
      expectProblem(
        `${tcpHost(url)}agents:\n${agent('    network: host\n')}`,
        'hosts[0].url',
        'agent demo (network: host) can reach it',
      );
    },
  );

  it.each([
    'tcp://10.0.0.5:8080',
    'tcp://0.0.0.0:8080',
    'tcp://build1.example:8080',
    'tcp://[::ffff:127.0.0.1]:8080',
  ])('refuses %s when an agent has any network but none', (url) => {
    const text = `${tcpHost(url)}agents:\n${agent('', 'bridged')}${agent('    network: host\n', 'hosted')}${agent('    network: none\n', 'quiet')}`;
    expectProblem(
      text,
      'hosts[0].url',
      "is Podman's API without authentication",
      'agents bridged (network: bridge), hosted (network: host) can reach it from their sessions',
      'use unix:// or ssh://, or give those agents network: none',
    );
    expect(problems(text)[0]?.message).not.toContain('quiet');
    expect(parse(`${tcpHost(url)}agents:\n${agent('    network: none\n', 'quiet')}`).hosts).toHaveLength(1);
  });

  it('counts every agent, wherever it may run, and names at most five', () => {
    const pinned = Array.from({ length: 7 }, (_, i) => agent('    hosts: [unix]\n', `a${i}`)).join('');
    const text = `hosts:\n  - { name: unix, url: "unix:///run/p.sock" }\n  - { name: far, url: "tcp://10.0.0.5:8080", insecure: true }\nagents:\n${pinned}`;
    expectProblem(
      text,
      'hosts[1].url',
      'agents a0 (network: bridge), ',
      'a4 (network: bridge), 2 more can reach it',
    );
  });

  it('is refused by a reload too: it reads the file through the same loader', async () => {
    const file = join(dir, 'reload.yaml');
    writeFileSync(file, `${tcpHost('tcp://127.0.0.1:8080')}agents:\n${agent('    network: host\n')}`);
    const actor = {
      getSnapshot: () => ({
        context: { agents: [], maxSessions: 1, sessions: {}, queue: [] },
        matches: () => false,
      }),
    } as unknown as Actor<typeof daemonMachine>;
    const reload = createReloader({
      started: { file } as Settings,
      actor,
      log: pino({ level: 'silent' }),
      notify: { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier,
    });
    const reply = await reload('request');
    expect(reply.type).toBe('reload_failed');
    expect(reply.message).toContain('hosts[0].url');
    expect(reply.message).toContain('agent demo (network: host) can reach it');
  });
});
