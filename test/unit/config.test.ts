import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  configSearchPath,
  defaultSocketPath,
  defaultStateDir,
  loadConfig,
  parseConfig,
} from '../../src/config/index.js';
import { AgentdError } from '../../src/errors.js';

const FILE = '/etc/agentd/agentd.yaml';
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

/** A minimal valid agent, indented to sit under `agents:`; `extra` lines are appended to it. */
function agent(extra = '', name = 'demo'): string {
  return `  - name: ${name}\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${extra}`;
}

function parse(text: string) {
  return parseConfig(text, FILE, ENV, 1000);
}

function configError(text: string): ConfigError {
  try {
    parse(text);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected the configuration to be rejected');
}

/** Asserts one problem at `path` whose message contains every fragment, also in the rendered message. */
function expectProblem(text: string, path: string, ...fragments: string[]) {
  const error = configError(text);
  const problem = error.problems.find((p) => p.path === path);
  expect(problem, `no problem at ${path}; got:\n${error.message}`).toBeDefined();
  for (const fragment of fragments) expect(problem?.message).toContain(fragment);
  const line = error.message.split('\n').find((l) => l.trimStart().startsWith(`${path} (`));
  expect(line, error.message).toBeDefined();
  for (const fragment of fragments) expect(line).toContain(fragment);
  return { error, problem };
}

describe('parseConfig: valid files', () => {
  it('applies defaults for a non-root user', () => {
    const settings = parse(`agents:\n${agent()}`);
    expect(settings.file).toBe(FILE);
    expect(settings.daemon).toEqual({
      socket: '/run/user/1000/agentd/agentd.sock',
      stateDir: '/home/u/.local/state/agentd',
      maxSessions: 4,
      stopGraceMs: 10_000,
      podmanTimeoutMs: 60_000,
      pullTimeoutMs: 600_000,
      logMaxBytes: 1_048_576,
      historyLimit: 200,
      recordsDir: '/home/u/.local/state/agentd/records',
      recordsMaxAgeMs: 30 * 86_400_000,
      recordsMaxBytes: 10 * 1024 ** 3,
      recordsMaxCount: 100_000,
      recordsMinFree: { bytes: 0 },
      hostProbeIntervalMs: 10_000,
      hostProbeTimeoutMs: 5_000,
      hostDownGraceMs: 600_000,
      notify: [],
    });
    expect(settings.hosts).toEqual([]);
    expect(settings.agents).toEqual([
      {
        name: 'demo',
        image: 'localhost/agentd-base:bookworm',
        command: ['run'],
        network: 'bridge',
        userNamespace: 'host',
        env: {},
        credentials: [],
        repoTokenOrigins: [],
        repoTokenRequired: false,
        allowInsecureHttp: false,
        resources: {
          memory: { bytes: 2 * 1024 ** 3, text: '2g' },
          memorySwap: { bytes: 2 * 1024 ** 3, text: '2g' },
          pids: 4096,
          disk: { bytes: 1024 ** 3, text: '1g' },
          output: { bytes: 64 * 1024 ** 2, text: '64m' },
        },
        capAdd: [],
        mounts: [],
        caches: [],
        notify: [],
        exitCodes: {},
        hostLabels: {},
      },
    ]);
  });

  it('uses system paths for root and XDG_STATE_HOME when set', () => {
    const root = parseConfig(`agents:\n${agent()}`, FILE, ENV, 0);
    expect(root.daemon.socket).toBe('/run/agentd/agentd.sock');
    expect(root.daemon.stateDir).toBe('/var/lib/agentd');
    const xdg = parseConfig(`agents:\n${agent()}`, FILE, { ...ENV, XDG_STATE_HOME: '/st' }, 1000);
    expect(xdg.daemon.stateDir).toBe('/st/agentd');
  });

  it('converts every field', () => {
    const text = `daemon:
  max_sessions: 2
  stop_grace: 1m30s
  pull_timeout: 30m
  log_max_bytes: 4096
  history: 0
agents:
${agent(`    repo: https://example.com/org/repo.git
    timeout: 2h
    network: none
    env: { LOG_LEVEL: info, COUNT: 3, VERSION: 1.10, DEBUG: true }
    credentials:
      - { name: TOKEN, source: env:AGENTD_TOKEN }
    repo_token: REPO_TOKEN
`)}`;
    const settings = parse(text);
    expect(settings.daemon).toMatchObject({
      maxSessions: 2,
      stopGraceMs: 90_000,
      pullTimeoutMs: 1_800_000,
      logMaxBytes: 4096,
      historyLimit: 0,
    });
    expect(settings.agents[0]).toMatchObject({
      repo: 'https://example.com/org/repo.git',
      timeoutMs: 7_200_000,
      network: 'none',
      // Numbers and booleans are kept as written: 1.10 must not become "1.1".
      env: { LOG_LEVEL: 'info', COUNT: '3', VERSION: '1.10', DEBUG: 'true' },
      credentials: [
        { name: 'TOKEN', source: { kind: 'env', name: 'AGENTD_TOKEN', raw: 'env:AGENTD_TOKEN' } },
      ],
      repoToken: { kind: 'env', name: 'REPO_TOKEN', raw: 'REPO_TOKEN' },
    });
  });

  it('reads records_min_free as a share of the filesystem, a size or 0 (none), and refuses anything else', () => {
    const minFree = (value: string) =>
      parse(`daemon:\n  records_min_free: ${value}\nagents:\n${agent()}`).daemon.recordsMinFree;
    expect(minFree('10%')).toEqual({ percent: 10 });
    expect(minFree('2.5%')).toEqual({ percent: 2.5 });
    expect(minFree('2g')).toEqual({ bytes: 2 * 1024 ** 3 });
    expect(minFree('0')).toEqual({ bytes: 0 });
    expect(minFree('"0%"')).toEqual({ bytes: 0 });
    expectProblem(
      `daemon:\n  records_min_free: 60%\nagents:\n${agent()}`,
      'daemon.records_min_free',
      'from 0% to 50%',
    );
    expectProblem(
      `daemon:\n  records_min_free: lots\nagents:\n${agent()}`,
      'daemon.records_min_free',
      'like 5% or a size like 2g',
    );
  });

  it('reads a bare NAME source as env:NAME and keeps absolute file: sources', () => {
    const settings = parse(
      `agents:\n${agent('    credentials:\n      - { name: A, source: MY_TOKEN }\n      - { name: B, source: "file:/run/keys/b" }\n')}`,
    );
    expect(settings.agents[0]?.credentials).toEqual([
      { name: 'A', source: { kind: 'env', name: 'MY_TOKEN', raw: 'MY_TOKEN' } },
      { name: 'B', source: { kind: 'file', path: '/run/keys/b', raw: 'file:/run/keys/b' } },
    ]);
  });

  it('resolves relative paths from the config file directory', () => {
    const text = `daemon:\n  socket: run/agentd.sock\n  state_dir: ../state\nagents:\n${agent(
      '    credentials:\n      - { name: A, source: "file:secrets/a" }\n    repo: https://example.com/r.git\n    repo_token: file:../token\n',
    )}`;
    const settings = parseConfig(text, '/srv/agentd/conf/agentd.yaml', ENV, 1000);
    expect(settings.daemon.socket).toBe('/srv/agentd/conf/run/agentd.sock');
    expect(settings.daemon.stateDir).toBe('/srv/agentd/state');
    expect(settings.agents[0]?.credentials[0]?.source).toEqual({
      kind: 'file',
      path: '/srv/agentd/conf/secrets/a',
      raw: 'file:secrets/a',
    });
    expect(settings.agents[0]?.repoToken).toEqual({
      kind: 'file',
      path: '/srv/agentd/token',
      raw: 'file:../token',
    });
  });

  it('makes the file path absolute', () => {
    expect(parseConfig(`agents:\n${agent()}`, 'conf/agentd.yaml', ENV, 1000).file).toBe(
      join(process.cwd(), 'conf/agentd.yaml'),
    );
  });

  it('accepts the shipped example', async () => {
    const url = new URL('../../examples/agentd.yaml', import.meta.url);
    const settings = parseConfig(await readFile(url, 'utf8'), url.pathname, ENV, 1000);
    expect(settings.agents.map((a) => a.name)).toEqual(['demo', 'reviewer']);
    const [demo, reviewer] = settings.agents;
    expect(demo).toMatchObject({ network: 'host', timeoutMs: 300_000 });
    expect(demo?.credentials[0]?.source).toMatchObject({ kind: 'env', name: 'AGENTD_DEMO_TOKEN' });
    expect(reviewer?.credentials.some((c) => c.source.kind === 'file')).toBe(true);
    expect(reviewer?.repoToken).toBeDefined();
  });
});

describe('parseConfig: rejected files', () => {
  it('rejects an empty file', () => {
    for (const text of ['', '# only a comment\n']) {
      const error = configError(text);
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.message).toContain('the file is empty');
      expect(error.message).toContain('add at least one agent under agents:');
    }
  });

  it('rejects a top level that is not a mapping', () => {
    const error = configError('- name: demo\n');
    expect(error.message).toContain('top level must be a mapping');
    expect(error.problems[0]).toMatchObject({ line: 1, column: 1 });
  });

  it('rejects missing or empty agents', () => {
    expectProblem('daemon:\n  max_sessions: 2\n', 'agents', 'add at least one agent under agents:');
    expectProblem('agents:\n', 'agents', 'add at least one agent under agents:');
    expectProblem('agents: []\n', 'agents', 'add at least one agent under agents:');
    expectProblem('agents: demo\n', 'agents', 'must be a list of agents');
  });

  it('reports YAML syntax errors with line and column', () => {
    const error = configError(`agents:\n  - name: demo\n    image: "unterminated\n`);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]?.line).toBeGreaterThanOrEqual(3);
    expect(error.problems[0]?.column).toBeTypeOf('number');
    expect(error.message).toMatch(
      /^\/etc\/agentd\/agentd\.yaml: 1 problem in the configuration\n {2}line \d+, col \d+: /,
    );
    expect(error.message).toContain('Missing closing');
  });

  it('reports a duplicate YAML key by name', () => {
    const error = configError(`agents:\n${agent('    image: other\n')}`);
    expect(error.problems[0]).toMatchObject({ line: 5, column: 5 });
    expect(error.message).toContain('"image" appears twice; remove or merge the repeated key');
  });

  it('rejects unknown keys at the key itself, listing the allowed keys', () => {
    const { problem } = expectProblem(
      `agents:\n${agent('    imagee: x\n')}`,
      'agents[0].imagee',
      'unknown key "imagee"',
      'allowed keys are name, image, command',
      'did you mean "image"?',
    );
    expect(problem).toMatchObject({ line: 5, column: 5 });
    expectProblem(
      `agent:\n  - x\nagents:\n${agent()}`,
      'agent',
      'unknown key "agent"',
      'allowed keys are daemon, hosts, agents',
    );
    expectProblem(
      `daemon:\n  sockets: /x\nagents:\n${agent()}`,
      'daemon.sockets',
      'allowed keys are socket, state_dir',
    );
    expectProblem(
      `agents:\n${agent('    credentials:\n      - { name: A, source: B, value: x }\n')}`,
      'agents[0].credentials[0].value',
      'allowed keys are name, source',
    );
  });

  it('rejects bad durations', () => {
    expectProblem(
      `agents:\n${agent('    timeout: 10 minutes\n')}`,
      'agents[0].timeout',
      '"10 minutes" is not a duration; write a number with a unit like 90s, 10m or 2h',
    );
    expectProblem(
      `daemon:\n  stop_grace: 10\nagents:\n${agent()}`,
      'daemon.stop_grace',
      'like 90s, 10m or 2h',
    );
    expectProblem(
      `daemon:\n  pull_timeout: 10 minutes\nagents:\n${agent()}`,
      'daemon.pull_timeout',
      'like 90s, 10m or 2h',
    );
    expectProblem(
      `daemon:\n  pull_timeout: 0s\nagents:\n${agent()}`,
      'daemon.pull_timeout',
      'longer than zero',
    );
    expectProblem(`agents:\n${agent('    timeout: 0s\n')}`, 'agents[0].timeout', 'longer than zero');
    expectProblem(
      `agents:\n${agent('    timeout: 1000h\n')}`,
      'agents[0].timeout',
      'longest supported duration is 596h',
    );
    expectProblem(
      `agents:\n${agent('    timeout:\n')}`,
      'agents[0].timeout',
      'is empty',
      'like 90s, 10m or 2h',
    );
  });

  it('rejects an unknown network mode', () => {
    expectProblem(
      `agents:\n${agent('    network: bridged\n')}`,
      'agents[0].network',
      'must be one of bridge, none, host',
    );
  });

  it('rejects repository URLs with another scheme or with credentials', () => {
    expectProblem(
      `agents:\n${agent('    repo: ftp://x\n')}`,
      'agents[0].repo',
      '"ftp://x" uses ftp://; only https://, http:// or git:// repositories are supported',
    );
    expectProblem(
      `agents:\n${agent('    repo: git@github.com:o/r.git\n')}`,
      'agents[0].repo',
      'is an scp-style ssh address (host:path) to git; only https://, http:// or git:// URLs are supported',
    );
    const { error } = expectProblem(
      `agents:\n${agent('    repo: https://me:hunter2@example.com/r.git\n')}`,
      'agents[0].repo',
      'must not contain a user or password; use repo_token for authentication',
    );
    expect(error.message).not.toContain('hunter2');
  });

  it('rejects bad agent names', () => {
    const fix = 'use lowercase letters, digits, _ and -';
    expectProblem(
      `agents:\n${agent('', 'Reviewer')}`,
      'agents[0].name',
      '"Reviewer" is not a valid agent name',
      fix,
    );
    expectProblem(`agents:\n${agent('', '1st')}`, 'agents[0].name', fix);
    expectProblem(`agents:\n${agent('', 'a'.repeat(33))}`, 'agents[0].name', 'at most 32 characters');
    expect(parse(`agents:\n${agent('', 'a'.repeat(32))}`).agents[0]?.name).toHaveLength(32);
    for (const reserved of ['root', 'nobody', 'www-data', 'systemd-network', '_apt']) {
      expectProblem(
        `agents:\n${agent('', reserved)}`,
        'agents[0].name',
        'reserved system user name; pick another name',
      );
    }
  });

  it('rejects duplicate agent names', () => {
    expectProblem(
      `agents:\n${agent()}${agent('', 'demo')}`,
      'agents[1].name',
      '"demo" is already used by agents[0]',
      'rename one of them',
    );
  });

  it('rejects a missing or malformed image', () => {
    expectProblem(
      'agents:\n  - name: demo\n    command: [run]\n',
      'agents[0].image',
      'is required',
      'image: localhost/agentd-base:bookworm',
    );
    expectProblem(
      'agents:\n  - name: demo\n    image: ""\n    command: [run]\n',
      'agents[0].image',
      'write a name like localhost/agentd-base:bookworm',
    );
    expectProblem(
      'agents:\n  - name: demo\n    image: --privileged\n    command: [run]\n',
      'agents[0].image',
      'not an image reference',
    );
  });

  it('rejects commands that are not a non-empty argv list', () => {
    const base = 'agents:\n  - name: demo\n    image: img\n';
    expectProblem(
      `${base}    command: reviewer exec\n`,
      'agents[0].command',
      'not a string',
      '["sh", "-c", "..."]',
    );
    expectProblem(
      `${base}    command: []\n`,
      'agents[0].command',
      'is empty; give the program and its arguments',
    );
    expectProblem(`${base}    command: [run, ""]\n`, 'agents[0].command[1]', 'empty argument; remove it');
    expectProblem(`${base}    command: [sleep, 10]\n`, 'agents[0].command[1]', 'quote it ("10")');
    expectProblem(base, 'agents[0].command', 'is required', 'command: ["reviewer", "exec"]');
  });

  it('rejects bad env entries', () => {
    expectProblem(
      `agents:\n${agent('    env: { 1BAD: x }\n')}`,
      'agents[0].env["1BAD"]',
      '"1BAD" is not a valid environment variable name; use letters, digits and _ and do not start with a digit',
    );
    expectProblem(
      `agents:\n${agent('    env: { HOME: /x }\n')}`,
      'agents[0].env.HOME',
      'is reserved',
      'pick another name',
    );
    expectProblem(`agents:\n${agent('    env: { AGENTD_X: y }\n')}`, 'agents[0].env.AGENTD_X', 'is reserved');
    expectProblem(
      `agents:\n${agent('    env: { A: [1] }\n')}`,
      'agents[0].env.A',
      'must be a string, not a list',
    );
    expectProblem(`agents:\n${agent('    env: { A: }\n')}`, 'agents[0].env.A', 'write "" for an empty value');
    expectProblem(
      `agents:\n${agent('    env: [A]\n')}`,
      'agents[0].env',
      'must be a mapping of NAME: value pairs',
    );
  });

  it('rejects bad, reserved, duplicate and clashing credential names', () => {
    const cred = (lines: string) => `agents:\n${agent(`    credentials:\n${lines}`)}`;
    const { problem } = expectProblem(
      cred('      - name: 1TOKEN\n        source: env:X\n'),
      'agents[0].credentials[0].name',
      '"1TOKEN" is not a valid environment variable name; use letters, digits and _ and do not start with a digit',
    );
    expect(problem).toMatchObject({ line: 6, column: 15 });
    for (const name of ['PATH', 'AGENTD_TOKEN', 'GIT_CONFIG_COUNT']) {
      expectProblem(
        cred(`      - { name: ${name}, source: X }\n`),
        'agents[0].credentials[0].name',
        'is reserved',
        'pick another name',
      );
    }
    expectProblem(
      cred('      - { name: A, source: X }\n      - { name: A, source: Y }\n'),
      'agents[0].credentials[1].name',
      '"A" is already defined by agents[0].credentials[0]',
      'remove the duplicate',
    );
    expectProblem(
      `agents:\n${agent('    env: { A: x }\n    credentials:\n      - { name: A, source: X }\n')}`,
      'agents[0].credentials[0].name',
      '"A" is also set under env',
      'remove one',
    );
    expectProblem(
      cred('      - { name: A }\n'),
      'agents[0].credentials[0].source',
      'is required',
      'env:AGENTD_GITHUB_TOKEN',
    );
  });

  it('rejects bad credential sources', () => {
    const cred = (source: string) =>
      `agents:\n${agent(`    credentials:\n      - { name: A, source: "${source}" }\n`)}`;
    const path = 'agents[0].credentials[0].source';
    expectProblem(
      cred('vault:x'),
      path,
      '"vault:x" is not a credential source; use env:NAME, file:/absolute/path or a bare NAME',
    );
    expectProblem(cred('env:1X'), path, '"1X" is not a valid environment variable name');
    expectProblem(cred('file:'), path, 'has no path; write file:/absolute/path');
    expectProblem(cred('file:~/token'), path, '~ is not expanded; write the absolute path');
    expectProblem(
      `agents:\n${agent('    repo_token: "a b"\n')}`,
      'agents[0].repo_token',
      'is not a credential source',
    );
    // An upper-case name, even one starting with _, is a name.
    expect(
      parse(`agents:\n${agent('    credentials:\n      - { name: A, source: _INTERNAL_API_TOKEN }\n')}`)
        .agents[0]?.credentials[0]?.source,
    ).toMatchObject({ kind: 'env', name: '_INTERNAL_API_TOKEN' });
    // What the dynamic loader reads would reach the root setup step.
    for (const name of ['LD_PRELOAD', 'LD_LIBRARY_PATH', 'GCONV_PATH']) {
      expectProblem(
        `agents:\n${agent(`    env:\n      ${name}: /opt/cache/lib\n`)}`,
        `agents[0].env.${name}`,
        'read by the dynamic loader',
        `command: ["env", "${name}=...", "my-agent"]`,
      );
    }
    // A token pasted in place of a source is refused without being repeated.
    for (const token of ['ghp_0123456789abcdefghij0123456789ABCD', 'sk-proj-abc.def-0123456789xyz']) {
      const { error } = expectProblem(cred(token), path, 'looks like a credential value, not a source');
      expect(error.message).not.toContain(token.slice(4, 20));
    }
    expect(
      parse(
        `agents:\n${agent('    repo: https://git.example/x.git\n    repo_token: env:lowercase_but_long_name\n')}`,
      ).agents[0]?.repoToken,
    ).toMatchObject({
      kind: 'env',
      name: 'lowercase_but_long_name',
    });
  });

  it('rejects bad daemon numbers', () => {
    const daemon = (line: string) => `daemon:\n  ${line}\nagents:\n${agent()}`;
    expectProblem(daemon('max_sessions: 0'), 'daemon.max_sessions', '0 is too small; use 1 or more');
    expectProblem(daemon('max_sessions: 1.5'), 'daemon.max_sessions', 'must be a whole number of at least 1');
    expectProblem(daemon('max_sessions: "4"'), 'daemon.max_sessions', 'remove the quotes');
    expectProblem(daemon('log_max_bytes: 100'), 'daemon.log_max_bytes', 'use 4096 or more');
    expectProblem(daemon('history: -1'), 'daemon.history', 'use 0 or more');
    expectProblem(daemon('socket: ""'), 'daemon.socket', 'must not be empty');
    expectProblem(
      daemon(`socket: /${'s'.repeat(120)}`),
      'daemon.socket',
      'longer than 107 bytes',
      'shorter path',
    );
  });

  it('lists every problem in one pass, in file order', () => {
    const text = `daemon:
  max_sessions: 0
agents:
  - name: demo
    image: img
    command: run
    network: bridged
  - name: demo
    imagee: img
    command: [run]
    credentials:
      - { name: 1TOKEN, source: "vault:x" }
`;
    const error = configError(text);
    expect(error.problems.map((p) => p.path)).toEqual([
      'daemon.max_sessions',
      'agents[0].command',
      'agents[0].network',
      'agents[1].image',
      'agents[1].name',
      'agents[1].imagee',
      'agents[1].credentials[0].name',
      'agents[1].credentials[0].source',
    ]);
    const lines = error.message.split('\n');
    expect(lines[0]).toBe('/etc/agentd/agentd.yaml: 8 problems in the configuration');
    expect(lines).toHaveLength(9);
    expect(lines[1]).toBe('  daemon.max_sessions (line 2, col 17): 0 is too small; use 1 or more');
    expect(lines.some((l) => l.includes('"demo" is already used by agents[0]'))).toBe(true);
  });
});

describe('paths', () => {
  it('orders the config search path', () => {
    const home = '/home/u';
    expect(configSearchPath({ env: {}, home })).toEqual([
      '/home/u/.config/agentd/agentd.yaml',
      '/etc/agentd/agentd.yaml',
    ]);
    expect(configSearchPath({ env: { XDG_CONFIG_HOME: '/cfg' }, home })).toEqual([
      '/cfg/agentd/agentd.yaml',
      '/etc/agentd/agentd.yaml',
    ]);
    // Relative XDG values are ignored, as the XDG spec requires.
    expect(configSearchPath({ env: { XDG_CONFIG_HOME: 'cfg' }, home })[0]).toBe(
      '/home/u/.config/agentd/agentd.yaml',
    );
    expect(configSearchPath({ env: { AGENTD_CONFIG: '/a.yaml', XDG_CONFIG_HOME: '/cfg' }, home })).toEqual([
      '/a.yaml',
    ]);
    expect(configSearchPath({ flag: '/f.yaml', env: { AGENTD_CONFIG: '/a.yaml' }, home })).toEqual([
      '/f.yaml',
    ]);
  });

  it('picks the default socket and state dir', () => {
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/7' }, 7)).toBe('/run/user/7/agentd/agentd.sock');
    expect(defaultSocketPath({}, 7)).toBe('/tmp/agentd-7/agentd.sock');
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/0' }, 0)).toBe('/run/agentd/agentd.sock');
    expect(defaultStateDir({}, 7, '/home/u')).toBe('/home/u/.local/state/agentd');
    expect(defaultStateDir({ XDG_STATE_HOME: '/s' }, 7, '/home/u')).toBe('/s/agentd');
    expect(defaultStateDir({ XDG_STATE_HOME: '/s' }, 0, '/root')).toBe('/var/lib/agentd');
  });
});

describe('loadConfig', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  async function tempDir(): Promise<string> {
    dir = await mkdtemp(join(tmpdir(), 'agentd-config-'));
    return dir;
  }

  // With a real /etc/agentd/agentd.yaml on this machine the search would succeed instead.
  it.skipIf(existsSync('/etc/agentd/agentd.yaml'))(
    'lists every path it looked at when no file exists',
    async () => {
      const home = await tempDir();
      const env = { XDG_CONFIG_HOME: join(home, 'cfg') };
      const error = await loadConfig({ env, home, uid: 1000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AgentdError);
      expect((error as AgentdError).code).toBe('CONFIG_NOT_FOUND');
      const message = (error as AgentdError).message;
      expect(message).toContain(join(home, 'cfg', 'agentd', 'agentd.yaml'));
      expect(message).toContain('/etc/agentd/agentd.yaml');
      expect(message).toContain('AGENTD_CONFIG');
      expect(message).toContain('--config');
      expect(message).toContain('examples/agentd.yaml');
      expect(message).toContain(fileURLToPath(new URL('../../examples/agentd.yaml', import.meta.url)));
    },
  );

  it('tries only the --config path when given', async () => {
    const home = await tempDir();
    await mkdir(join(home, '.config', 'agentd'), { recursive: true });
    await writeFile(join(home, '.config', 'agentd', 'agentd.yaml'), `agents:\n${agent()}`);
    const missing = join(home, 'nope.yaml');
    const error = await loadConfig({ flag: missing, env: {}, home, uid: 1000 }).catch((e: unknown) => e);
    expect((error as AgentdError).code).toBe('CONFIG_NOT_FOUND');
    expect((error as AgentdError).message).toContain(`${missing} (from --config)`);
    expect((error as AgentdError).message).not.toContain('.config/agentd');
  });

  it('loads the first existing candidate and resolves paths from its directory', async () => {
    const home = await tempDir();
    const cfgDir = join(home, '.config', 'agentd');
    await mkdir(cfgDir, { recursive: true });
    await writeFile(
      join(cfgDir, 'agentd.yaml'),
      `agents:\n${agent('    credentials:\n      - { name: A, source: "file:a.token" }\n')}`,
    );
    const settings = await loadConfig({ env: {}, home, uid: 1000 });
    expect(settings.file).toBe(join(cfgDir, 'agentd.yaml'));
    expect(settings.daemon.stateDir).toBe(join(home, '.local', 'state', 'agentd'));
    expect(settings.agents[0]?.credentials[0]?.source).toMatchObject({
      kind: 'file',
      path: join(cfgDir, 'a.token'),
    });
  });

  it('uses AGENTD_CONFIG and reports validation problems with the file name', async () => {
    const home = await tempDir();
    const file = join(home, 'custom.yaml');
    await writeFile(file, 'agents: []\n');
    const error = await loadConfig({ env: { AGENTD_CONFIG: file }, home, uid: 1000 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message.split('\n')[0]).toBe(`${file}: 1 problem in the configuration`);
  });

  it('names the file when it cannot be read', async () => {
    const home = await tempDir();
    const error = await loadConfig({ flag: home, env: {}, home, uid: 1000 }).catch((e: unknown) => e);
    expect((error as AgentdError).message).toContain(`${home} is a directory`);
  });
});

describe('parseConfig: names every JavaScript object has', () => {
  it('refuses __proto__, constructor and the like as agent, env, cache, host, token and label names', () => {
    const NAME = 'a name every JavaScript object has';
    expectProblem(`agents:\n${agent('', '__proto__')}`, 'agents[0].name', '"__proto__" is', NAME);
    expectProblem(`agents:\n${agent('', 'constructor')}`, 'agents[0].name', NAME);
    expectProblem(`agents:\n${agent('    env: { constructor: x }\n')}`, 'agents[0].env.constructor', NAME);
    expectProblem(
      `agents:\n${agent('    credentials:\n      - { name: constructor, source: env:HOME }\n')}`,
      'agents[0].credentials[0].name',
      NAME,
    );
    expectProblem(
      `agents:\n${agent('    caches: { constructor: /home/demo/.c }\n')}`,
      'agents[0].caches.constructor',
      NAME,
    );
    expectProblem(
      `hosts:\n  - { name: constructor, url: "unix:///run/podman/podman.sock" }\nagents:\n${agent()}`,
      'hosts[0].name',
      NAME,
    );
    expectProblem(
      `hosts:\n  - { name: one, url: "unix:///run/podman/podman.sock", labels: { constructor: x } }\nagents:\n${agent()}`,
      'hosts[0].labels.constructor',
      NAME,
    );
    expectProblem(
      `daemon:\n  http:\n    listen: 127.0.0.1:0\n    tokens:\n      - { name: toString, source: env:HOME, scopes: [admin] }\nagents:\n${agent()}`,
      'daemon.http.tokens[0].name',
      NAME,
    );
  });
});

describe('parseConfig: daemon.http.body_limit', () => {
  it('is at most what the largest request needs (16m), so one token cannot make the daemon hold more', () => {
    const http = (limit: string) =>
      `daemon:\n  http:\n    listen: 127.0.0.1:0\n    body_limit: ${limit}\n    tokens:\n      - { name: ops, source: env:HOME, scopes: [admin] }\nagents:\n${agent()}`;
    expect(parse(http('16m')).daemon.http?.bodyLimitBytes).toBe(16 * 1024 * 1024);
    expectProblem(
      http('100g'),
      'daemon.http.body_limit',
      '"100g" is more than any request needs; the most is 16m',
    );
  });
});

describe('parseConfig: daemon.state_dir', () => {
  it('refuses : and , (podman reads them as separators where it mounts the work files of each session)', () => {
    expectProblem(
      `daemon:\n  state_dir: /var/lib/agent:d\nagents:\n${agent()}`,
      'daemon.state_dir',
      'the state dir "/var/lib/agent:d" contains ":"',
      'use a path without : and ,',
    );
    expectProblem(
      `daemon:\n  state_dir: /var/lib/a,b\nagents:\n${agent()}`,
      'daemon.state_dir',
      'contains ","',
    );
    // The default, under a HOME with a colon: the fix is to set one.
    expect(() =>
      parseConfig(
        `agents:\n${agent()}`,
        FILE,
        { HOME: '/home/a:b', XDG_RUNTIME_DIR: '/run/user/1000' },
        1000,
      ),
    ).toThrow(
      /state dir "\/home\/a:b\/.local\/state\/agentd" contains ":".*set daemon\.state_dir to a path without/,
    );
  });
});

describe('parseConfig: an env: source whose name looks like a pasted token', () => {
  it('is kept by its name but shown as not shown, wherever messages and views print the source', () => {
    const pasted = 'ghp_16C7e42F292c6912E7710c838347Ae178B4a';
    const [parsed] = parse(
      `agents:\n${agent(`    credentials:\n      - { name: GH, source: env:${pasted} }\n      - { name: LONG, source: env:my_service_api_token }\n`)}`,
    ).agents;
    expect(parsed?.credentials.map((c) => c.source)).toEqual([
      { kind: 'env', name: pasted, raw: 'env:(a name that looks like a credential value, not shown)' },
      { kind: 'env', name: 'my_service_api_token', raw: 'env:my_service_api_token' },
    ]);
  });
});
