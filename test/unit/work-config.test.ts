/** The configuration of what goes into a session and what comes out: mounts, context, caches, exit codes, records. */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigProblem, parseConfig } from '../../src/config/index.js';
import { kindOfExitCode } from '../../src/outcome-kinds.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-work-config-'));
const data = join(dir, 'data');
const tools = join(dir, 'tools');
const notes = join(dir, 'notes.txt');
const state = join(dir, 'state');
mkdirSync(data);
mkdirSync(tools);
mkdirSync(join(state, 'sessions'), { recursive: true });
writeFileSync(notes, 'x');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FILE = join(dir, 'agentd.yaml');
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

function config(extra: string, daemon = ''): string {
  return `daemon:\n  state_dir: ${state}\n${daemon}agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${extra}`;
}

function parse(text: string) {
  return parseConfig(text, FILE, ENV, 1000);
}

function problems(text: string): ConfigProblem[] {
  try {
    parse(text);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the configuration to be rejected');
}

/** The one problem at `path`, on `line`, with every fragment in its message. */
function expectProblem(text: string, path: string, line: number, ...fragments: string[]) {
  const found = problems(text);
  const problem = found.find((p) => p.path === path);
  expect(problem, `no problem at ${path}; got ${JSON.stringify(found)}`).toBeDefined();
  expect(problem?.line).toBe(line);
  for (const fragment of fragments) expect(problem?.message).toContain(fragment);
}

describe('mounts, context and caches', () => {
  it('reads them, read_only by default', () => {
    const settings = parse(
      config(`    mounts:
      - source: ${data}
        target: /data
      - source: ${tools}
        target: /opt/tools
        read_only: false
      - source: ${notes}
        target: /srv/notes.txt
    context: ${dir}/tools
    caches:
      npm: /home/demo/.npm
      pip: /home/demo/.cache/pip
`),
    );
    const [demo] = settings.agents;
    expect(demo?.mounts).toEqual([
      { source: data, target: '/data', readOnly: true },
      { source: tools, target: '/opt/tools', readOnly: false },
      { source: notes, target: '/srv/notes.txt', readOnly: true },
    ]);
    expect(demo?.context).toBe(tools);
    expect(demo?.caches).toEqual([
      { name: 'npm', target: '/home/demo/.npm' },
      { name: 'pip', target: '/home/demo/.cache/pip' },
    ]);
  });

  it('rejects relative paths with their line', () => {
    const text = config(`    mounts:
      - source: data
        target: /data
      - source: ${data}
        target: opt/tools
    context: ./methodology
`);
    expectProblem(text, 'agents[0].mounts[0].source', 8, '"data" is a relative path', 'absolute host path');
    expectProblem(text, 'agents[0].mounts[1].target', 11, '"opt/tools" is a relative path');
    expectProblem(text, 'agents[0].context', 12, '"./methodology" is a relative path');
  });

  it('rejects overlapping mounts and caches, naming the other one', () => {
    const text = config(`    mounts:
      - source: ${data}
        target: /data
      - source: ${tools}
        target: /data/tools
    caches:
      npm: /data
`);
    expectProblem(text, 'agents[0].mounts[1].target', 11, '"/data/tools" overlaps mounts[0] ("/data")');
    expectProblem(text, 'agents[0].caches.npm', 13, '"/data" overlaps mounts[0]');
  });

  it('rejects two agents whose caches would share one volume name', () => {
    // "demo" + "b-npm" and "demo-b" + "npm" both name the volume agentd-<instance>-cache-demo-b-npm.
    const text = config(`    caches:
      b-npm: /home/demo/.npm
  - name: demo-b
    image: localhost/agentd-base:bookworm
    command: ["run"]
    caches:
      npm: /home/demo-b/.npm
`);
    expectProblem(
      text,
      'agents[1].caches.npm',
      13,
      "makes the same volume name (…-cache-demo-b-npm) as agent demo's cache b-npm",
      'rename one of the caches',
    );
    // One agent's own caches never collide (cache names are unique keys).
    expect(() =>
      parse(config(`    caches:\n      npm: /home/demo/.npm\n      b-npm: /home/demo/.b\n`)),
    ).not.toThrow();
  });

  it('rejects targets on the clone, the home, agentd’s own directory and system paths', () => {
    const text = config(`    mounts:
      - source: ${data}
        target: /home/demo/repo/data
      - source: ${data}
        target: /home/demo
      - source: ${data}
        target: /agentd/context
      - source: ${data}
        target: /etc/agent
      - source: ${data}
        target: /
      - source: ${data}
        target: /tmp
    caches:
      npm: /home
`);
    expectProblem(
      text,
      'agents[0].mounts[0].target',
      9,
      'overlaps /home/demo/repo, where the repository is cloned',
    );
    expectProblem(text, 'agents[0].mounts[1].target', 11, 'would hide /home/demo');
    expectProblem(text, 'agents[0].mounts[2].target', 13, 'overlaps /agentd');
    expectProblem(text, 'agents[0].mounts[3].target', 15, 'is a system path (under /etc)');
    expectProblem(text, 'agents[0].mounts[4].target', 17, 'is the root of the container');
    expectProblem(text, 'agents[0].mounts[5].target', 19, 'would hide /tmp');
    expectProblem(text, 'agents[0].caches.npm', 21, 'would hide /home/demo');
  });

  it('refuses : and , that podman would read as option separators, and control characters', () => {
    const text = config(`    mounts:
      - source: ${data}
        target: "/data:rw"
      - source: "${data},z"
        target: /x
      - source: ${data}
        target: "/a\\nb"
      - source: ${data}
        target: "/with space"
`);
    expectProblem(text, 'agents[0].mounts[0].target', 9, 'contains ":"', 'separator');
    expectProblem(text, 'agents[0].mounts[1].source', 10, 'contains ","');
    expectProblem(text, 'agents[0].mounts[2].target', 13, 'control character');
    expectProblem(text, 'agents[0].mounts[3].target', 15, 'whitespace');
  });

  it('wants sources that exist, contexts that are directories, and nothing of agentd’s own', () => {
    const link = join(dir, 'state-link');
    symlinkSync(state, link);
    const text = config(`    mounts:
      - source: ${dir}/missing
        target: /data
      - source: ${state}/sessions
        target: /s
      - source: ${link}
        target: /l
      - source: ${dir}
        target: /all
    context: ${notes}
`);
    expectProblem(text, 'agents[0].mounts[0].source', 8, 'does not exist on this host');
    expectProblem(text, 'agents[0].mounts[1].source', 10, `lies inside agentd's own ${state}`);
    expectProblem(text, 'agents[0].mounts[2].source', 12, `is agentd's own ${state}`);
    expectProblem(text, 'agents[0].mounts[3].source', 14, `contains agentd's own ${state}`);
    expectProblem(text, 'agents[0].context', 16, 'is not a directory');
    expectProblem(
      config('    mounts:\n      - source: /proc/self\n        target: /p\n'),
      'agents[0].mounts[0].source',
      8,
      '"/proc/self" is under /proc, which is never handed to an agent',
    );
  });

  it('refuses a source or context that is a link to a path never handed to an agent (Podman follows the link)', () => {
    const toProc = join(dir, 'to-proc');
    const toDev = join(dir, 'to-dev');
    symlinkSync('/proc', toProc);
    symlinkSync('/dev/shm', toDev);
    const text = config(`    mounts:
      - source: ${toProc}
        target: /p
      - source: ${toDev}
        target: /d
    context: ${toProc}
`);
    expectProblem(text, 'agents[0].mounts[0].source', 8, `"${toProc}" is a link to "/proc", under /proc`);
    expectProblem(text, 'agents[0].mounts[1].source', 10, `"${toDev}" is a link to "/dev/shm", under /dev`);
    expectProblem(text, 'agents[0].context', 12, `"${toProc}" is a link to "/proc", under /proc`);
  });

  it('refuses a source inside a writable mount of any agent: its sessions could swap a directory on the way for a link', () => {
    const shared = join(dir, 'shared');
    mkdirSync(join(shared, 'ref', 'deep'), { recursive: true });
    const viaLink = join(dir, 'shared-link');
    symlinkSync(join(shared, 'ref'), viaLink);
    const text = `daemon:
  state_dir: ${state}
agents:
  - name: writer
    image: localhost/agentd-base:bookworm
    command: ["run"]
    mounts:
      - source: ${shared}
        target: /shared
        read_only: false
      - source: ${shared}/ref
        target: /ref
  - name: reader
    image: localhost/agentd-base:bookworm
    command: ["run"]
    mounts:
      - source: ${viaLink}
        target: /ref
      - source: ${shared}
        target: /shared
    context: ${shared}/ref/deep
`;
    const found = problems(text);
    expect(found.map((p) => p.path).sort()).toEqual([
      'agents[0].mounts[1].source',
      'agents[1].context',
      'agents[1].mounts[0].source',
    ]);
    expectProblem(
      text,
      'agents[0].mounts[1].source',
      11,
      `lies inside "${shared}", which agent writer may write to (agents[0].mounts[0] has read_only: false)`,
      'make that mount read-only',
    );
    expectProblem(text, 'agents[1].mounts[0].source', 17, 'agent writer may write to');
    expectProblem(text, 'agents[1].context', 21, 'agent writer may write to');
    // Read-only, the same directories are fine: nobody can change what their paths lead to.
    expect(parse(text.replace('read_only: false', 'read_only: true')).agents).toHaveLength(2);
  });

  it('refuses a file agentd reads (a credential, a token, its configuration) inside or as a writable mount', () => {
    const scratch = join(dir, 'scratch');
    mkdirSync(scratch, { recursive: true });
    writeFileSync(join(scratch, 'token'), 'x');
    const text = `daemon:
  state_dir: ${state}
  http:
    listen: 127.0.0.1:0
    tokens:
      - name: ops
        source: file:${scratch}/http-token
        scopes: [admin]
agents:
  - name: writer
    image: localhost/agentd-base:bookworm
    command: ["run"]
    mounts:
      - source: ${scratch}
        target: /scratch
        read_only: false
      - source: ${notes}
        target: /notes.txt
        read_only: false
    credentials:
      - name: API_KEY
        source: file:${scratch}/token
      - name: NOTES
        source: file:${notes}
      - name: FROM_ENV
        source: env:HOME
`;
    const found = problems(text);
    expect(found.map((p) => p.path).sort()).toEqual([
      'agents[0].credentials[0].source',
      'agents[0].credentials[1].source',
      'daemon.http.tokens[0].source',
    ]);
    expectProblem(
      text,
      'agents[0].credentials[0].source',
      22,
      `"${scratch}/token" lies inside "${scratch}", which agent writer may write to`,
      'could rewrite it, or put a link in the way that agentd would read through',
    );
    expectProblem(text, 'agents[0].credentials[1].source', 24, `"${notes}" is "${notes}"`);
    expectProblem(text, 'daemon.http.tokens[0].source', 7, 'agent writer may write to');
    // The configuration file itself, in a directory an agent may write to.
    const inConfigDir = config(
      `    mounts:\n      - source: ${dir}\n        target: /d\n        read_only: false\n`,
    );
    expect(problems(inConfigDir)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          path: 'agents[0].mounts[0].source',
          message: expect.stringContaining(`"${dir}" holds the configuration file "${FILE}"`),
        }),
      ]),
    );
  });

  it("refuses a file agentd reads a value from inside a read-only mount or a context, but an agent's own credential", () => {
    const keys = join(dir, 'keys');
    mkdirSync(keys, { recursive: true });
    for (const name of ['own', 'other', 'repo', 'hook', 'http', 'id']) writeFileSync(join(keys, name), 'x');
    // Reached through a link: the real paths are compared.
    const viaLink = join(dir, 'keys-link');
    symlinkSync(keys, viaLink);
    const text = `daemon:
  state_dir: ${state}
  http:
    listen: 127.0.0.1:0
    tokens:
      - name: ops
        source: file:${keys}/http
        scopes: [admin]
hosts:
  - name: far
    url: ssh://agentd@127.0.0.1/run/podman/podman.sock
    identity: ${keys}/id
agents:
  - name: reader
    image: localhost/agentd-base:bookworm
    command: ["run"]
    mounts:
      - source: ${viaLink}
        target: /keys
    repo: https://git.example/x.git
    repo_token: file:${keys}/repo
    credentials:
      - name: OWN
        source: file:${keys}/own
  - name: other
    image: localhost/agentd-base:bookworm
    command: ["run"]
    context: ${keys}
    credentials:
      - name: OTHER
        source: file:${keys}/other
    notify:
      - url: https://hooks.example/x
        secret: file:${keys}/hook
`;
    const found = problems(text);
    expect(found.map((p) => `${p.path} ${p.message.match(/agents\[\d\]\.\w+/)?.[0]}`).sort()).toEqual([
      'agents[0].credentials[0].source agents[1].context',
      'agents[0].repo_token agents[0].mounts',
      'agents[0].repo_token agents[1].context',
      'agents[1].credentials[0].source agents[0].mounts',
      'agents[1].notify[0].secret agents[0].mounts',
      'agents[1].notify[0].secret agents[1].context',
      'daemon.http.tokens[0].source agents[0].mounts',
      'daemon.http.tokens[0].source agents[1].context',
      'hosts[0].identity agents[0].mounts',
      'hosts[0].identity agents[1].context',
    ]);
    expectProblem(
      text,
      'hosts[0].identity',
      12,
      `"${keys}/id" lies inside "${viaLink}", which agents[0].mounts[0] shows to agent reader: its sessions could read the value`,
      'mount a narrower directory',
    );
  });

  it('allows in a read-only mount what may be read: a file that is also its own credential, and the TLS certificate', () => {
    const shared = join(dir, 'shared-keys');
    const certs = join(dir, 'certs');
    mkdirSync(shared, { recursive: true });
    mkdirSync(certs, { recursive: true });
    writeFileSync(join(shared, 'token'), 'x');
    const agentEntry = (name: string, extra = '') =>
      `  - name: ${name}\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${extra}    credentials:\n      - { name: TOKEN, source: file:${shared}/token }\n`;
    const text = `daemon:
  state_dir: ${state}
  http:
    listen: 127.0.0.1:0
    tokens:
      - { name: ops, source: env:HOME, scopes: [admin] }
    tls: { cert: ${certs}/cert.pem, key: ${dir}/key.pem }
agents:
${agentEntry('alpha', `    mounts:\n      - { source: ${shared}, target: /shared }\n      - { source: ${certs}, target: /certs }\n`)}${agentEntry('beta')}`;
    expect(parse(text).agents.map((a) => a.name)).toEqual(['alpha', 'beta']);
    // The key is another matter.
    expect(problems(text.replace(`key: ${dir}/key.pem`, `key: ${certs}/key.pem`)).map((p) => p.path)).toEqual(
      ['daemon.http.tls.key'],
    );
  });

  it('resolves links on the way to paths that do not exist yet, and counts ssh keys and the HTTP socket', () => {
    const work = join(dir, 'work-rw');
    mkdirSync(join(work, 'secrets'), { recursive: true });
    writeFileSync(join(work, 'id_ed25519'), 'key');
    // An operator's path that leads into the agent's read-write directory through a link.
    const secrets = join(dir, 'op-secrets');
    symlinkSync(join(work, 'secrets'), secrets);
    const text = `daemon:
  state_dir: ${state}
  http:
    listen: unix:${work}/http/api.sock
    tokens:
      - name: ops
        source: env:HOME
        scopes: [admin]
hosts:
  - name: far
    url: ssh://agentd@127.0.0.1/run/podman/podman.sock
    identity: ${work}/id_ed25519
agents:
  - name: writer
    image: localhost/agentd-base:bookworm
    command: ["run"]
    mounts:
      - source: ${work}
        target: /work
        read_only: false
    credentials:
      - name: API_KEY
        source: file:${secrets}/not-yet
`;
    const found = problems(text);
    expect(found.map((p) => p.path).sort()).toEqual([
      'agents[0].credentials[0].source',
      'agents[0].mounts[0].source',
      'hosts[0].identity',
    ]);
    expectProblem(text, 'agents[0].credentials[0].source', 23, `"${secrets}/not-yet" lies inside "${work}"`);
    expectProblem(text, 'hosts[0].identity', 12, `"${work}/id_ed25519" lies inside "${work}"`);
    expectProblem(text, 'agents[0].mounts[0].source', 18, `contains agentd's own ${work}/http`);
  });

  it('checks mount keys and cache names', () => {
    const text = config(`    mounts:
      - source: ${data}
        target: /data
        readonly: true
    caches:
      "Big Cache": /cache
`);
    expectProblem(
      text,
      'agents[0].mounts[0].readonly',
      10,
      'unknown key "readonly"',
      'did you mean "read_only"',
    );
    expectProblem(text, 'agents[0].caches["Big Cache"]', 12, 'is not a cache name');
  });
});

describe('exit codes', () => {
  it('maps codes to kinds by the convention, overridden per agent', () => {
    const [demo] = parse(config('    exit_codes:\n      10: work_failed\n      3: failure\n')).agents;
    expect(demo?.exitCodes).toEqual({ 10: 'work_failed', 3: 'failure' });
    const kinds = [0, 1, 2, 3, 4, 5, 6, 7, 126, 127, 128, 137].map((code) => kindOfExitCode(code));
    expect(kinds).toEqual([
      'success',
      'failure',
      'usage_error',
      'blocked',
      'nothing_ready',
      'work_failed',
      'infrastructure_failure',
      'failure',
      'not_executable',
      'not_found',
      'failure',
      'killed',
    ]);
    expect(kindOfExitCode(10, demo?.exitCodes)).toBe('work_failed');
    expect(kindOfExitCode(3, demo?.exitCodes)).toBe('failure');
  });

  it('rejects codes out of range and unknown kinds', () => {
    const text = config('    exit_codes:\n      300: blocked\n      4: stuck\n');
    expectProblem(text, 'agents[0].exit_codes["300"]', 8, 'not an exit code', '0 to 255');
    expectProblem(text, 'agents[0].exit_codes["4"]', 9, '"stuck" is not an outcome kind', 'nothing_ready');
  });
});

describe('records', () => {
  it('defaults under the state dir, and takes a directory, an age and a size', () => {
    expect(parse(config('')).daemon).toMatchObject({
      recordsDir: join(state, 'records'),
      recordsMaxAgeMs: 30 * 86_400_000,
      recordsMaxBytes: 10 * 1024 ** 3,
    });
    const own = parse(config('', '  records_dir: audit\n  records_max_age: 400d\n  records_max_size: 2g\n'));
    expect(own.daemon).toMatchObject({
      recordsDir: join(dir, 'audit'),
      recordsMaxAgeMs: 400 * 86_400_000,
      recordsMaxBytes: 2 * 1024 ** 3,
    });
  });

  it('rejects ages that are not ages', () => {
    expectProblem(config('', '  records_max_age: forever\n'), 'daemon.records_max_age', 3, 'is not an age');
    expectProblem(config('', '  records_max_age: 30\n'), 'daemon.records_max_age', 3, '30 is not an age');
  });
});
