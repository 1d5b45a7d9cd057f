/**
 * `user_namespace: auto` (each session in a user namespace of its own): the configuration that takes it
 * and refuses what it cannot keep working, the podman flags of its containers, and the check of the
 * `containers` ranges in /etc/subuid and /etc/subgid that doctor runs and start fails on.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cli } from 'clipanion';
import { afterEach, describe, expect, it } from 'vitest';
import { containerArgs, USER_NAMESPACE_SIZE } from '../../src/adapters/podman.js';
import {
  freeRangeStart,
  parseSubordinateIds,
  type SubordinateRange,
} from '../../src/adapters/subordinate-ids.js';
import { buildCli } from '../../src/cli/cli.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';
import type { AgentConfig, Settings } from '../../src/config/types.js';
import { AGENT_UID } from '../../src/constants.js';
import { checkUserNamespaces } from '../../src/daemon/preflight.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import { planRun } from '../../src/sessions/run-plan.js';
import { AGENTS, request } from '../helpers/machine-fakes.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

const FILE = '/etc/agentd/agentd.yaml';
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

function config(extra: string): string {
  return `agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${extra}`;
}

function problems(text: string): ConfigError['problems'] {
  try {
    parseConfig(text, FILE, ENV, 1000);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('user_namespace: in the configuration', () => {
  it('is host by default and auto when asked', () => {
    const plain = parseConfig(config(''), FILE, ENV, 1000);
    expect(plain.agents[0]?.userNamespace).toBe('host');
    const auto = parseConfig(config('    user_namespace: auto\n'), FILE, ENV, 1000);
    expect(auto.agents[0]?.userNamespace).toBe('auto');
  });

  it('takes daemon.user_namespace for agents that set none; an agent says host to keep what auto refuses', () => {
    const text = [
      'daemon:',
      '  user_namespace: auto',
      config(''),
      '  - name: cached',
      '    image: localhost/agentd-base:bookworm',
      '    command: ["run"]',
      '    user_namespace: host',
      '    caches: { npm: /home/cached/.npm }',
      '',
    ].join('\n');
    const settings = parseConfig(text, FILE, ENV, 1000);
    expect(settings.agents.map((a) => a.userNamespace)).toEqual(['auto', 'host']);
    // An agent that inherits auto is told to say host, not to remove a key it does not have.
    const [problem] = problems(text.replace('    user_namespace: host\n', ''));
    expect(problem?.path).toBe('agents[1].caches');
    expect(problem?.message).toContain('user_namespace: auto (from daemon.user_namespace)');
    expect(problem?.message).toContain('give this agent user_namespace: host');
    expect(problems(`daemon:\n  user_namespace: yes\n${config('')}`)[0]?.path).toBe('daemon.user_namespace');
  });

  it('refuses another value, naming the two', () => {
    const [problem] = problems(config('    user_namespace: private\n'));
    expect(problem?.path).toBe('agents[0].user_namespace');
    expect(problem?.message).toContain('must be host');
    expect(problem?.message).toContain('auto');
  });

  it('refuses caches, read-write mounts and the host network with it, each at its key and with the fix', () => {
    const found = problems(
      config(
        [
          '    user_namespace: auto',
          '    network: host',
          '    caches: { npm: /home/demo/.npm }',
          '    mounts:',
          '      - { source: /tmp, target: /data }',
          '      - { source: /var/tmp, target: /scratch, read_only: false }',
          '',
        ].join('\n'),
      ),
    );
    const at = (path: string) => found.find((p) => p.path === path);
    expect(at('agents[0].caches')?.message).toContain('remove caches:, or remove user_namespace: auto');
    expect(at('agents[0].mounts[1].read_only')?.message).toContain('make the mount read-only');
    expect(at('agents[0].network')?.message).toContain('use bridge or none');
    // The read-only mount is fine.
    expect(at('agents[0].mounts[0].read_only')).toBeUndefined();
    expect(found.filter((p) => p.message.includes('user_namespace'))).toHaveLength(3);
  });

  it('is shown by validate for the agents that have it', async () => {
    const dir = makeTempDir('agentd-unit-userns-');
    const file = join(dir, 'agentd.yaml');
    const second = '  - name: plain\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n';
    writeFileSync(
      file,
      `daemon:\n  state_dir: ${join(dir, 'state')}\n${config('    user_namespace: auto\n')}${second}`,
    );
    let out = '';
    const stdout = new PassThrough().on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    const code = await (await buildCli('validate')).run(['validate', '--config', file], {
      ...Cli.defaultContext,
      stdout,
      stderr: new PassThrough(),
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(code).toBe(0);
    expect(out.match(/user_namespace auto: each session runs as host uids of its own/g)).toHaveLength(1);
    expect(out.indexOf('user_namespace auto')).toBeLessThan(out.indexOf('- plain:'));
  });

  it('keeps caches, read-write mounts and the host network for agents without it', () => {
    const found = problems(
      config(
        [
          '    network: host',
          '    caches: { npm: /home/demo/.npm }',
          '    mounts:',
          '      - { source: /var/tmp, target: /scratch, read_only: false }',
          '',
        ].join('\n'),
      ),
    );
    expect(found.filter((p) => p.message.includes('user_namespace'))).toEqual([]);
  });
});

describe('user_namespace: auto → podman flags', () => {
  const settings = { instanceId: 'e'.repeat(32), stopGraceMs: 1000, workDir: '/w', copyHosts: ['far'] };
  const agent = (userNamespace: 'host' | 'auto') => ({ ...(AGENTS[1] as AgentConfig), userNamespace });
  const argv = (userNamespace: 'host' | 'auto', host?: string) => {
    const session = assembleSession(request('0123456789abcdef', 'norepo'), agent(userNamespace), {
      credentials: [],
    });
    return containerArgs(planRun(session, settings, host).container);
  };

  it('asks for a range of its own, big enough for the agent user, and hands the output place to its root', () => {
    const args = argv('auto');
    expect(args).toContain(`--userns=auto:size=${USER_NAMESPACE_SIZE}`);
    expect(USER_NAMESPACE_SIZE).toBeGreaterThan(AGENT_UID);
    // Only the session's own output directory is chowned (U); nothing else is.
    const volumes = args.filter((_, i) => args[i - 1] === '--volume');
    expect(volumes.filter((v) => v.endsWith(',U'))).toEqual([
      '/w/0123456789abcdef/out:/run/agentd/out:rw,nosuid,nodev,U',
    ]);
  });

  it('leaves a plain agent as it was: no user namespace, nothing chowned', () => {
    const args = argv('host');
    expect(args.join(' ')).not.toContain('--userns');
    expect(args.join(' ')).not.toContain(',U');
  });

  it('copies the output out on a host that does not see this machine, with nothing to chown', () => {
    const args = argv('auto', 'far');
    expect(args).toContain(`--userns=auto:size=${USER_NAMESPACE_SIZE}`);
    expect(args.join(' ')).not.toContain(',U');
  });
});

describe('the containers ranges check', () => {
  const auto = { ...(AGENTS[1] as AgentConfig), userNamespace: 'auto' as const };
  const plain = { ...(AGENTS[1] as AgentConfig), userNamespace: 'host' as const };
  const settings = (agents: AgentConfig[], hosts: Settings['hosts'] = []) =>
    ({ agents, hosts, daemon: { maxSessions: 4 } }) as unknown as Settings;
  const files =
    (subuid: string, subgid = subuid) =>
    (path: string): SubordinateRange[] | undefined =>
      parseSubordinateIds(path === '/etc/subuid' ? subuid : subgid);

  it('says nothing when no agent uses it, or when the daemon is not root', () => {
    expect(checkUserNamespaces(settings([plain]), 0, files(''))).toEqual([]);
    expect(checkUserNamespaces(settings([auto]), 1000, files(''))).toEqual([]);
  });

  it('fails without a containers range, with a line to add that overlaps no entry', () => {
    const [result] = checkUserNamespaces(
      settings([auto]),
      0,
      files('alice:100000:65536\nbob:2000000:65536\n', 'alice:100000:65536\n'),
    );
    expect(result?.status).toBe('fail');
    expect(result?.message).toContain('/etc/subuid and /etc/subgid have no containers range');
    expect(result?.message).toContain(auto.name);
    expect(result?.fix).toContain(`containers:${2000000 + 65536}:${32 * USER_NAMESPACE_SIZE}`);
  });

  it('fails when only one file has it, naming that one', () => {
    const [result] = checkUserNamespaces(settings([auto]), 0, files('containers:2000000:2000000\n', ''));
    expect(result?.status).toBe('fail');
    expect(result?.message).toContain('/etc/subgid has no containers range');
  });

  it('warns when fewer sessions fit than may run, and is ok when all fit', () => {
    const [few] = checkUserNamespaces(settings([auto]), 0, files('containers:2000000:131072\n'));
    expect(few?.status).toBe('warn');
    expect(few?.message).toContain('hold 2 sessions');
    const [ok] = checkUserNamespaces(settings([auto]), 0, files('containers:2000000:2000000\n'));
    expect(ok?.status).toBe('ok');
    expect(ok?.message).toContain('30 sessions');
  });

  it('leaves an agent that runs only on another machine to that machine', () => {
    const far = [{ name: 'far', url: 'ssh://u@far/run/podman/podman.sock', maxSessions: 2, labels: {} }];
    expect(checkUserNamespaces(settings([auto], far), 0, files(''))).toEqual([]);
  });
});

describe('a free range', () => {
  it('starts at 2,000,000 past every entry that overlaps it', () => {
    expect(freeRangeStart([[]], 100)).toBe(2_000_000);
    expect(freeRangeStart([parseSubordinateIds('a:100000:65536\n')], 100)).toBe(2_000_000);
    expect(
      freeRangeStart(
        [parseSubordinateIds('a:1999990:20\nb:2000050:100\n'), parseSubordinateIds('c:2000150:10\n')],
        100,
      ),
    ).toBe(2000160);
    // A gap big enough before the next entry is taken.
    expect(freeRangeStart([parseSubordinateIds('a:2000000:10\nb:3000000:10\n')], 100)).toBe(2000010);
  });

  it('skips malformed lines, as Podman does', () => {
    expect(parseSubordinateIds('# comment\ncontainers:2000000:2000000\nbad\nx:1\n')).toEqual([
      { user: 'containers', start: 2000000, count: 2000000 },
    ]);
  });
});
