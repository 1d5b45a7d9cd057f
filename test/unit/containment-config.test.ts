import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/index.js';
import { formatSize, parseSize } from '../../src/config/resources.js';
import type { AgentConfig } from '../../src/config/types.js';
import { SecretValue } from '../../src/secret-value.js';
import { describeAgent } from '../../src/sessions/agent-view.js';
import { assembleSession, revealSession } from '../../src/sessions/assemble.js';
import { checkTrigger } from '../../src/sessions/check-trigger.js';

const FILE = '/etc/agentd/agentd.yaml';
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

function agent(extra = '', name = 'demo'): string {
  return `  - name: ${name}\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${extra}`;
}

function parse(text: string) {
  return parseConfig(text, FILE, ENV, 1000);
}

function problems(text: string): ConfigError['problems'] {
  try {
    parse(text);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the configuration to be rejected');
}

/** The one problem at `path`, with its line; every fragment must be in its message. */
function expectProblem(text: string, path: string, line: number, ...fragments: string[]) {
  const found = problems(text);
  const problem = found.find((p) => p.path === path);
  expect(problem, `no problem at ${path}; got ${JSON.stringify(found, null, 2)}`).toBeDefined();
  expect(problem?.line).toBe(line);
  for (const fragment of fragments) expect(problem?.message).toContain(fragment);
}

describe('sizes', () => {
  it.each([
    ['2g', 2 * 1024 ** 3, '2g'],
    ['512m', 512 * 1024 ** 2, '512m'],
    ['64MiB', 64 * 1024 ** 2, '64m'],
    ['1.5g', 1.5 * 1024 ** 3, '1.5g'],
    ['100k', 100 * 1024, '100k'],
    [' 1G ', 1024 ** 3, '1g'],
    ['64Mi', 64 * 1024 ** 2, '64m'],
    ['2Gi', 2 * 1024 ** 3, '2g'],
    ['1ki', 1024, '1k'],
  ])('%j is %d bytes, shown as %s', (text, bytes, shown) => {
    expect(parseSize(text)).toEqual({ bytes, text: shown });
  });

  it('reads a bare number as bytes and shows it in the largest whole unit', () => {
    expect(parseSize(2147483648)).toEqual({ bytes: 2147483648, text: '2g' });
    expect(formatSize(1536)).toBe('1536');
    expect(formatSize(3 * 1024 ** 2)).toBe('3m');
  });

  it.each(['', 'lots', '2 gigabytes', '-1g', '0', '1e9', '2x', '64i', '64ib', '2Gii', '2gbi'])(
    '%j is not a size',
    (text) => {
      expect(parseSize(text)).toBeUndefined();
    },
  );
});

describe('resources', () => {
  it('are all shown by `agentd agents`, the output directory and swap included', () => {
    const [demo] = parse(`agents:\n${agent('    resources: { output: 8Mi, memory_swap: 3g }\n')}`).agents;
    expect(describeAgent(demo as AgentConfig).resources).toEqual({
      memory: '2g',
      memorySwap: '3g',
      pids: 4096,
      disk: '1g',
      output: '8m',
    });
  });

  it('defaults to 2g of memory without swap, 4096 pids, 1g of disk and no CPU limit', () => {
    const [demo] = parse(`agents:\n${agent()}`).agents;
    expect(demo?.resources).toEqual({
      memory: { bytes: 2 * 1024 ** 3, text: '2g' },
      memorySwap: { bytes: 2 * 1024 ** 3, text: '2g' },
      pids: 4096,
      disk: { bytes: 1024 ** 3, text: '1g' },
      output: { bytes: 64 * 1024 ** 2, text: '64m' },
    });
  });

  it('takes each limit from the agent, else from the daemon, else the default', () => {
    const settings = parse(`daemon:
  resources:
    memory: 1g
    memory_swap: 3g
    cpus: 1.5
    disk: 256m
agents:
${agent('    resources:\n      pids: 100\n', 'inherits')}
${agent('    resources:\n      memory: 512m\n      cpus: 0.5\n', 'own')}`);
    const [inherits, own] = settings.agents;
    expect(inherits?.resources).toEqual({
      memory: { bytes: 1024 ** 3, text: '1g' },
      memorySwap: { bytes: 3 * 1024 ** 3, text: '3g' },
      cpus: 1.5,
      pids: 100,
      disk: { bytes: 256 * 1024 ** 2, text: '256m' },
      output: { bytes: 64 * 1024 ** 2, text: '64m' },
    });
    // An agent that sets its own memory gets no swap unless it says so: the daemon's swap belonged
    // to the daemon's memory.
    expect(own?.resources).toEqual({
      memory: { bytes: 512 * 1024 ** 2, text: '512m' },
      memorySwap: { bytes: 512 * 1024 ** 2, text: '512m' },
      cpus: 0.5,
      pids: 4096,
      disk: { bytes: 256 * 1024 ** 2, text: '256m' },
      output: { bytes: 64 * 1024 ** 2, text: '64m' },
    });
  });

  it('names each bad limit with its line and the fix', () => {
    const text = `daemon:
  resources:
    memory: lots
agents:
${agent(`    resources:
      memory: 1k
      memory_swap: 1g
      cpus: "2"
      pids: 8
      disk: 0
      swap: 1g
`)}`;
    const found = problems(text);
    const at = (path: string) => found.find((p) => p.path === path);
    expect(at('daemon.resources.memory')).toMatchObject({
      line: 3,
      message:
        '"lots" is not a size; write a number with a unit like 512m or 2g (k, m, g, t: powers of 1024)',
    });
    expect(at('agents[0].resources.memory')).toMatchObject({
      line: 9,
      message: '"1k" is too small; the least is 6m',
    });
    expect(at('agents[0].resources.cpus')?.message).toBe(
      'must be a number, not the text "2"; remove the quotes',
    );
    expect(at('agents[0].resources.pids')?.message).toBe('8 is too small; use 32 or more');
    expect(at('agents[0].resources.disk')?.message).toContain('0 is not a size');
    expect(at('agents[0].resources.swap')).toMatchObject({
      line: 14,
      message: 'unknown key "swap"; allowed keys are memory, memory_swap, cpus, pids, disk, output, cache',
    });
  });

  it('suggests a unit for a bare small number', () => {
    expectProblem(
      `agents:\n${agent('    resources:\n      memory: 512\n')}`,
      'agents[0].resources.memory',
      6,
      '512 is too small; the least is 6m; did you mean 512m?',
    );
  });

  it('refuses a memory_swap below the memory, at the level that set it', () => {
    expectProblem(
      `agents:\n${agent('    resources:\n      memory: 2g\n      memory_swap: 1g\n')}`,
      'agents[0].resources.memory_swap',
      7,
      '1g is less than memory (2g); memory_swap is memory plus swap',
    );
    expectProblem(
      `daemon:\n  resources:\n    memory: 2g\n    memory_swap: 1g\nagents:\n${agent()}${agent('', 'b')}`,
      'daemon.resources.memory_swap',
      4,
      '1g is less than memory (2g)',
    );
    expect(
      problems(
        `daemon:\n  resources:\n    memory: 2g\n    memory_swap: 1g\nagents:\n${agent()}${agent('', 'b')}`,
      ),
    ).toHaveLength(1);
  });

  it('refuses a resources value that is not a mapping', () => {
    expectProblem(
      `agents:\n${agent('    resources: 2g\n')}`,
      'agents[0].resources',
      5,
      'must be a mapping of limits like { memory: 2g, cpus: 1.5, pids: 4096, disk: 1g, output: 64m }',
    );
  });
});

describe('cap_add', () => {
  it('takes capability names with or without CAP_, in any case, once each', () => {
    const [demo] = parse(`agents:\n${agent('    cap_add: [net_raw, CAP_NET_RAW, SYS_PTRACE]\n')}`).agents;
    expect(demo?.capAdd).toEqual(['NET_RAW', 'SYS_PTRACE']);
  });

  it('is empty by default', () => {
    expect(parse(`agents:\n${agent()}`).agents[0]?.capAdd).toEqual([]);
  });

  it('names a capability Linux does not have', () => {
    expectProblem(
      `agents:\n${agent('    cap_add:\n      - NET_RAW\n      - ROOT\n')}`,
      'agents[0].cap_add[1]',
      7,
      '"ROOT" is not a Linux capability; use a name like NET_BIND_SERVICE or SYS_NICE',
    );
  });
});

describe('repo_token scope', () => {
  it('goes to the origin of the agent repo and the listed origins', () => {
    const [demo] = parse(
      `agents:\n${agent(`    repo: https://Git.Example.com/org/app.git
    repo_token: env:TOKEN
    repo_token_hosts: ["https://mirror.example.com/", "https://git.example.com:8443"]
`)}`,
    ).agents;
    expect(demo).toMatchObject({
      repo: 'https://git.example.com/org/app.git',
      repoTokenOrigins: [
        'https://git.example.com',
        'https://mirror.example.com',
        'https://git.example.com:8443',
      ],
      repoTokenRequired: false,
      allowInsecureHttp: false,
    });
  });

  it('refuses a token that could only travel over plain http, unless allowed', () => {
    expectProblem(
      `agents:\n${agent('    repo: http://127.0.0.1:8080/r.git\n    repo_token: env:T\n')}`,
      'agents[0].repo',
      5,
      '"http://127.0.0.1:8080" would receive repo_token over plain http://; use https://, or set allow_insecure_http: true',
    );
    const [demo] = parse(
      `agents:\n${agent('    repo: http://127.0.0.1:8080/r.git\n    repo_token: env:T\n    allow_insecure_http: true\n')}`,
    ).agents;
    expect(demo?.repoTokenOrigins).toEqual(['http://127.0.0.1:8080']);
  });

  it('refuses a token no origin could receive', () => {
    expectProblem(
      `agents:\n${agent('    repo: git://127.0.0.1/r.git\n    repo_token: env:T\n')}`,
      'agents[0].repo_token',
      6,
      'would never be sent',
      'set repo to an https:// URL or list origins under repo_token_hosts',
    );
    expectProblem(
      `agents:\n${agent('    repo_token: env:T\n')}`,
      'agents[0].repo_token',
      5,
      'would never be sent',
    );
  });

  it('refuses token settings without a token', () => {
    const found = problems(
      `agents:\n${agent(`    repo: https://git.example.com/r.git
    repo_token_hosts: [https://a.example]
    repo_token_required: true
`)}`,
    );
    expect(found).toEqual([
      {
        path: 'agents[0].repo_token_hosts',
        line: 6,
        column: 5,
        message: 'has no effect without repo_token; set repo_token or remove repo_token_hosts',
      },
      {
        path: 'agents[0].repo_token_required',
        line: 7,
        column: 5,
        message: 'has no effect without repo_token; set repo_token or remove repo_token_required',
      },
    ]);
  });

  it('refuses origins that are not origins', () => {
    const found = problems(
      `agents:\n${agent(`    repo: https://git.example.com/r.git
    repo_token: env:T
    repo_token_hosts:
      - https://a.example/org
      - git://a.example
      - a.example
    repo_token_required: "yes"
`)}`,
    );
    const at = (path: string) => found.find((p) => p.path === path)?.message;
    expect(at('agents[0].repo_token_hosts[0]')).toContain(
      'must be an origin, scheme://host[:port], without a path',
    );
    expect(at('agents[0].repo_token_hosts[1]')).toContain('git:// never carries a token');
    expect(at('agents[0].repo_token_hosts[2]')).toContain('must start with https://');
    expect(at('agents[0].repo_token_required')).toContain('must be true or false');
  });

  it('refuses a bad repo URL in the config with the same rule as a trigger', () => {
    expectProblem(
      `agents:\n${agent('    repo: "https:/\\\\evil.com/x"\n')}`,
      'agents[0].repo',
      5,
      'contains a backslash',
      'ssh address to git',
    );
  });
});

describe('repo_token at trigger time', () => {
  const [tok] = parse(
    `agents:\n${agent(`    repo: http://127.0.0.1:18080/r.git
    repo_token: env:T
    allow_insecure_http: true
    repo_token_hosts: [https://mirror.example]
`)}`,
  ).agents as [AgentConfig];
  const required: AgentConfig = { ...tok, name: 'strict', repoTokenRequired: true };
  const secure: AgentConfig = { ...tok, name: 'secure', allowInsecureHttp: false };
  const resolved = { credentials: [], repoToken: new SecretValue('REPO-TOKEN-SECRET-42') };

  function session(a: AgentConfig, repo?: string) {
    const check = checkTrigger([a], { agent: a.name, ...(repo === undefined ? {} : { repo }) });
    if (!check.ok) throw new Error(check.reason);
    const request = { sessionId: '0000000000000001', agent: a.name, repoUrl: check.repoUrl, acceptedAt: '' };
    return revealSession(assembleSession(request, check.agent, resolved)).invocation;
  }

  it('sends it to the configured origin and a listed one', () => {
    expect(session(tok)).toMatchObject({ repoToken: Buffer.from('REPO-TOKEN-SECRET-42') });
    expect(session(tok).notices).toBeUndefined();
    expect(session(tok, 'https://mirror.example/r.git')).toMatchObject({
      repoToken: Buffer.from('REPO-TOKEN-SECRET-42'),
    });
  });

  it('withholds it from another origin, saying so, and the clone goes ahead without it', () => {
    for (const other of ['http://127.0.0.1:18081/attacker.git', 'https://127.0.0.1:18080/r.git']) {
      const invocation = session(tok, other);
      expect(invocation.repoToken).toBeUndefined();
      expect(invocation.notices).toEqual([
        `repo_token is not sent to ${other.replace(/\/[^/]*\.git$/, '')}: it goes only to the origin of the agent's repo and to repo_token_hosts (http://127.0.0.1:18080, https://mirror.example); cloning without it`,
      ]);
      expect(JSON.stringify(invocation)).not.toContain('REPO-TOKEN-SECRET-42');
    }
  });

  it('withholds it over plain http when the agent does not allow that', () => {
    const invocation = session(secure);
    expect(invocation.repoToken).toBeUndefined();
    expect(invocation.notices?.[0]).toContain(
      'repo_token is not sent over plain http:// unless the agent sets allow_insecure_http: true',
    );
  });

  it('rejects the trigger instead when the agent requires its token', () => {
    const check = checkTrigger([required], { agent: 'strict', repo: 'http://127.0.0.1:18081/attacker.git' });
    expect(check).toEqual({
      ok: false,
      code: 'repo_token_withheld',
      reason:
        'repo_token is not sent to http://127.0.0.1:18081: it goes only to the origin of the agent\'s repo and to repo_token_hosts (http://127.0.0.1:18080, https://mirror.example); agent "strict" sets repo_token_required: true, so it does not run without it',
    });
    expect(checkTrigger([required], { agent: 'strict' }).ok).toBe(true);
  });

  it('hands the runner only the normalised URL', () => {
    const check = checkTrigger([tok], { agent: 'demo', repo: 'HTTP://127.0.0.1:18080/a/../r.git' });
    expect(check).toMatchObject({ ok: true, repoUrl: 'http://127.0.0.1:18080/r.git' });
    expect(session(tok, 'HTTP://127.0.0.1:18080/a/../r.git').repoToken).toEqual(
      Buffer.from('REPO-TOKEN-SECRET-42'),
    );
  });
});

describe('credentials too short to mask', () => {
  const [tok] = parse(
    `agents:\n${agent(`    repo: http://127.0.0.1:18080/r.git
    repo_token: env:T
    allow_insecure_http: true
`)}`,
  ).agents as [AgentConfig];

  function notices(values: Record<string, string>, repoToken: string) {
    const check = checkTrigger([tok], { agent: tok.name });
    if (!check.ok) throw new Error(check.reason);
    const request = {
      sessionId: '0000000000000001',
      agent: tok.name,
      repoUrl: check.repoUrl,
      acceptedAt: '',
    };
    const credentials = Object.entries(values).map(([name, value]) => ({
      name,
      value: new SecretValue(value),
    }));
    const resolved = { credentials, repoToken: new SecretValue(repoToken) };
    return revealSession(assembleSession(request, check.agent, resolved)).invocation.notices;
  }

  it('says in the output which values are shorter than masking looks for, never the value', () => {
    const said = notices({ PIN: '123', ONE: 'x\n', LONG: 'long-enough', EMPTY: '', UMLAUT: 'äö' }, 'ab');
    expect(said).toEqual([
      'credential PIN is shorter than 4 characters, so it is not masked in this output nor looked for in what the agent leaves in /agentd/out (a text that short would mask ordinary output); use a longer value',
      'credential ONE is shorter than 4 characters, so it is not masked in this output nor looked for in what the agent leaves in /agentd/out (a text that short would mask ordinary output); use a longer value',
      'credential UMLAUT is shorter than 4 characters, so it is not masked in this output nor looked for in what the agent leaves in /agentd/out (a text that short would mask ordinary output); use a longer value',
      'repo_token is shorter than 4 characters, so it is not masked in this output nor looked for in what the agent leaves in /agentd/out (a text that short would mask ordinary output); use a longer value',
    ]);
    expect(notices({ LONG: 'long-enough' }, 'ghp_token')).toBeUndefined();
  });
});
