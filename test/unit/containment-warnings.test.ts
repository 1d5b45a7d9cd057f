/**
 * What weakens containment without being refused: NET_RAW and NET_ADMIN on a network (validate, the
 * start's preflight, doctor), and cgroup v1, which leaves sessions' socket buffers outside their memory
 * limit (the start's preflight, doctor).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cli } from 'clipanion';
import { afterEach, describe, expect, it } from 'vitest';
import { cgroupVersion, cgroupVersionOf } from '../../src/adapters/fs-checks.js';
import { buildCli } from '../../src/cli/cli.js';
import { parseConfig } from '../../src/config/load.js';
import { configWarnings } from '../../src/config/warnings.js';
import {
  checkCgroups,
  checkConfigWarnings,
  type PreflightPodman,
  runPreflight,
} from '../../src/daemon/preflight.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

const FILE = '/etc/agentd/agentd.yaml';
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

function agent(extra = '', name = 'demo'): string {
  return `  - name: ${name}\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${extra}`;
}

function parse(text: string) {
  return parseConfig(text, FILE, ENV, 1000);
}

const CAPABLE = `agents:\n${agent('    cap_add: [net_raw]\n', 'sniffer')}${agent('    network: host\n    cap_add: [NET_ADMIN, NET_RAW]\n', 'router')}${agent('    network: none\n    cap_add: [NET_RAW]\n', 'pinger')}${agent('    cap_add: [NET_BIND_SERVICE]\n', 'server')}`;

describe('NET_RAW and NET_ADMIN with a network', () => {
  it('are warned about, per agent, with the network they reach; without a network, or other capabilities, not', () => {
    expect(configWarnings(parse(CAPABLE))).toEqual([
      {
        path: 'agents[0].cap_add',
        agent: 'sniffer',
        message:
          "NET_RAW with network: bridge: the agent's sessions can read and forge other sessions' traffic on the shared bridge",
        fix: 'remove NET_RAW from cap_add, or give the agent network: none',
      },
      {
        path: 'agents[1].cap_add',
        agent: 'router',
        message:
          "NET_RAW and NET_ADMIN with network: host: the agent's sessions can read and forge this host's traffic, other sessions' and the daemon's included, and change the host's addresses, routes and firewall",
        fix: 'remove NET_RAW and NET_ADMIN from cap_add, or give the agent network: none',
      },
    ]);
  });

  it('are a warning of the start’s preflight and of doctor, beside the cgroup check', async () => {
    expect(checkConfigWarnings(parse(CAPABLE)).map((r) => [r.check, r.status])).toEqual([
      ['agent sniffer: cap_add', 'warn'],
      ['agent router: cap_add', 'warn'],
    ]);
    const dir = makeTempDir('agentd-unit-warnings-');
    // An engine where all is well; the cheap checks ask nothing more of it.
    const podman = {
      version: async () => '4.3.1',
      probe: async () => '4.3.1',
      imageExists: async () => true,
      smokeRun: async () => undefined,
      inspectRemoteImage: async () => undefined,
      rootless: async () => true,
    } as PreflightPodman;
    const results = await runPreflight({
      settings: parseConfig(`daemon:\n  state_dir: ${join(dir, 'state')}\n${CAPABLE}`, FILE, ENV, 1000),
      podman,
      env: ENV,
      depth: 'cheap',
    });
    expect(results.find((r) => r.check === 'agent sniffer: cap_add')).toMatchObject({
      status: 'warn',
      fix: 'remove NET_RAW from cap_add, or give the agent network: none',
    });
    // This machine's own cgroup version is checked there too.
    expect(results.some((r) => r.check === 'cgroups')).toBe(cgroupVersion() !== undefined);
  });

  it('are printed by validate, which still passes the file; --json lists them', async () => {
    const dir = makeTempDir('agentd-unit-validate-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(file, `daemon:\n  state_dir: ${join(dir, 'state')}\n${CAPABLE}`);
    const text = await validate(['validate', '--config', file]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      "\nwarning: agents[0].cap_add: NET_RAW with network: bridge: the agent's sessions can read and forge other sessions' traffic on the shared bridge; remove NET_RAW from cap_add, or give the agent network: none\n",
    );
    expect(text.stdout).toContain('warning: agents[1].cap_add: NET_RAW and NET_ADMIN with network: host');
    expect(text.stdout).not.toContain('agents[2].cap_add');
    const json = await validate(['validate', '--config', file, '--json']);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { valid: boolean; warnings: { path: string }[] };
    expect(parsed.valid).toBe(true);
    expect(parsed.warnings.map((w) => w.path)).toEqual(['agents[0].cap_add', 'agents[1].cap_add']);
  });
});

async function validate(argv: string[]): Promise<{ code: number; stdout: string }> {
  const stdout = new PassThrough();
  let text = '';
  stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const code = await (await buildCli(argv[0])).run(argv, {
    ...Cli.defaultContext,
    stdout,
    stderr: new PassThrough(),
  });
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout: text };
}

describe('cgroup version', () => {
  const local = parse(`agents:\n${agent()}`);

  it('warns on cgroup v1, which does not charge socket buffers to the memory limit, with the fix', () => {
    const [check, ...rest] = checkCgroups(local, () => 'v1');
    expect(rest).toEqual([]);
    expect(check).toMatchObject({ check: 'cgroups', status: 'warn' });
    expect(check?.message).toContain("does not charge a session's socket buffer memory to its memory limit");
    expect(check?.fix).toContain('systemd.unified_cgroup_hierarchy=1');
  });

  it('passes cgroup v2, and says nothing when /sys/fs/cgroup is neither', () => {
    expect(checkCgroups(local, () => 'v2')).toEqual([
      {
        check: 'cgroups',
        status: 'ok',
        message: "cgroup v2: sessions' socket buffers count against their memory limit",
      },
    ]);
    expect(checkCgroups(local, () => undefined)).toEqual([]);
  });

  it('looks at this machine only when sessions run here: without hosts, or on a unix:// or loopback tcp:// host', () => {
    const hosts = (list: string) => parse(`hosts:\n${list}agents:\n${agent('    network: none\n')}`);
    const asked = (settings: ReturnType<typeof parse>) => {
      let count = 0;
      checkCgroups(settings, () => {
        count += 1;
        return 'v1';
      });
      return count;
    };
    const key = join(makeTempDir('agentd-unit-cgroup-key-'), 'id');
    writeFileSync(key, 'not a key', { mode: 0o600 });
    const ssh = `  - { name: far, url: "ssh://a@far.example/run/p.sock", identity: ${key} }\n`;
    expect(asked(hosts(ssh))).toBe(0);
    expect(asked(hosts(`${ssh}  - { name: near, url: "unix:///run/p.sock" }\n`))).toBe(1);
    expect(asked(hosts(`  - { name: loop, url: "tcp://127.0.0.1:8080", insecure: true }\n`))).toBe(1);
    expect(asked(hosts(`  - { name: tcp, url: "tcp://10.0.0.5:8080", insecure: true }\n`))).toBe(0);
  });

  it('is read from the statfs type of /sys/fs/cgroup: cgroup2fs is v2, a tmpfs of v1 controllers or a v1 cgroup is v1', () => {
    expect(cgroupVersionOf(0x63677270)).toBe('v2');
    expect(cgroupVersionOf(0x01021994)).toBe('v1');
    expect(cgroupVersionOf(0x27e0eb)).toBe('v1');
    expect(cgroupVersionOf(0x9fa0)).toBeUndefined();
  });
});

describe('a credential value pasted into a command or an env value', () => {
  const TOKEN = 'ghp_16C7e42F292c6912E7710c838347Ae178B4a';
  const PASTED = `agents:\n${agent(`    env:\n      MODE: fast\n      API_KEY: ${TOKEN}\n`, 'leaky').replace(
    'command: ["run"]',
    `command: ["sh", "-c", "curl -H 'Authorization: Bearer ${TOKEN}' https://example.invalid/x\\necho done", "--key=QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="]`,
  )}${agent('', 'clean')}`;

  it('is warned about, naming the argument or variable and never the value', () => {
    const warnings = configWarnings(parse(PASTED));
    expect(warnings.map((w) => w.path)).toEqual([
      'agents[0].command[2]',
      'agents[0].command[3]',
      'agents[0].env.API_KEY',
    ]);
    expect(JSON.stringify(warnings)).not.toContain(TOKEN);
    expect(warnings[0]?.fix).toContain('credentials:');
  });

  it('is shown as <hidden> by validate, the rest of the command as written, and warned about', async () => {
    const dir = makeTempDir('agentd-unit-pasted-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(file, PASTED);
    for (const json of [false, true]) {
      const { code, stdout } = await validate(['validate', '--config', file, ...(json ? ['--json'] : [])]);
      expect(code).toBe(0);
      expect(stdout).not.toContain(TOKEN);
      expect(stdout).not.toContain('QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY');
      expect(stdout).toContain('Authorization: Bearer <hidden>');
      expect(stdout).toContain('--key=<hidden>');
      expect(stdout).toContain('agents[0].env.API_KEY');
    }
  });
});
