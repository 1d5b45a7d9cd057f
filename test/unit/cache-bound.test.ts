/**
 * Bounded caches (`resources.cache`), without Podman: the configuration, where each cache's file goes,
 * how an existing volume is checked against the bound, making the filesystem (fallocate and mkfs.ext4
 * for real), makings shared by sessions that start together, `agentd doctor`'s check, and
 * `PodmanClient.ensureVolume` through a stand-in `podman`.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execaSync } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheBoundProblem, cacheVolumeOptions, makeCacheImage } from '../../src/adapters/cache-image.js';
import type { PodmanPort } from '../../src/adapters/podman.js';
import { ConfigError, type ConfigProblem, parseConfig } from '../../src/config/index.js';
import { formatSize } from '../../src/config/resources.js';
import type { AgentConfig } from '../../src/config/types.js';
import { checkBoundedCaches } from '../../src/daemon/preflight.js';
import { CacheVolumes } from '../../src/runner/cache-volumes.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import { planRun } from '../../src/sessions/run-plan.js';
import { AGENTS, request } from '../helpers/machine-fakes.js';
import { standInPodman } from '../helpers/stand-in-podman.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-cache-bound-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FILE = join(dir, 'agentd.yaml');
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };
const MiB = 1024 * 1024;

function config(agentExtra: string, top = ''): string {
  return `daemon:\n  state_dir: ${join(dir, 'state')}\n${top}agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n    caches: { npm: /home/demo/.npm }\n${agentExtra}`;
}

function problems(text: string): ConfigProblem[] {
  try {
    parseConfig(text, FILE, ENV, 1000);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('resources.cache in the configuration', () => {
  it('is a size per agent or for every agent, and unset by default (no bound)', () => {
    const plain = parseConfig(config(''), FILE, ENV, 1000);
    expect(plain.agents[0]?.resources.cache).toBeUndefined();
    const own = parseConfig(config('    resources: { cache: 2g }\n'), FILE, ENV, 1000);
    expect(own.agents[0]?.resources.cache).toEqual({ bytes: 2 * 1024 * MiB, text: '2g' });
    const inherited = parseConfig(
      config('').replace('daemon:\n', 'daemon:\n  resources: { cache: 512m }\n'),
      FILE,
      ENV,
      1000,
    );
    expect(inherited.agents[0]?.resources.cache?.text).toBe('512m');
  });

  it('refuses a size too small for a filesystem, or not a size, with the fix', () => {
    const [small] = problems(config('    resources: { cache: 1m }\n'));
    expect(small?.path).toBe('agents[0].resources.cache');
    expect(small?.message).toContain('too small; the least is 16m');
    const [word] = problems(config('    resources: { cache: plenty }\n'));
    expect(word?.message).toContain('is not a size');
  });

  it('refuses it for an agent with caches that may run on a host that cannot see this machine', () => {
    const hosts = `hosts:\n  - name: near\n  - name: sock\n    url: unix:///run/podman/podman.sock\n  - name: far\n    url: ssh://agentd@build2.example/run/podman/podman.sock\n`;
    const found = problems(config('    resources: { cache: 1g }\n', hosts));
    expect(found).toHaveLength(1);
    expect(found[0]?.path).toBe('agents[0].caches');
    expect(found[0]?.message).toContain('which far (ssh://) cannot see');
    expect(found[0]?.message).toContain('pin the agent with hosts:');
    // Pinned to hosts that see this machine's files (no url, unix://): accepted.
    expect(problems(config('    resources: { cache: 1g }\n    hosts: [near, sock]\n', hosts))).toEqual([]);
    // Without caches the bound has nothing to bound: accepted anywhere.
    expect(
      problems(
        config('    resources: { cache: 1g }\n', hosts).replace('    caches: { npm: /home/demo/.npm }\n', ''),
      ),
    ).toEqual([]);
  });
});

describe('the plan of a session with a bounded cache', () => {
  const agent: AgentConfig = {
    ...(AGENTS[1] as AgentConfig),
    caches: [{ name: 'npm', target: '/home/demo/.npm' }],
  };
  agent.resources = { ...agent.resources, cache: { bytes: 64 * MiB, text: '64m' } };
  const session = assembleSession(request('0123456789abcdef', 'norepo'), agent, { credentials: [] });
  const settings = {
    instanceId: 'e'.repeat(32),
    stopGraceMs: 1000,
    workDir: '/var/lib/agentd/work',
    cacheDir: '/var/lib/agentd/caches',
  };

  it('gives each host its own file, so two engines never mount one filesystem', () => {
    const [local] = planRun(session, settings).container.volumes ?? [];
    expect(local?.bound).toEqual({
      bytes: 64 * MiB,
      file: `/var/lib/agentd/caches/local/${local?.name}.ext4`,
    });
    const [near] = planRun(session, settings, 'near').container.volumes ?? [];
    expect(near?.bound?.file).toBe(`/var/lib/agentd/caches/near/${near?.name}.ext4`);
  });

  it('is refused on a host that does not see this machine, instead of running unbounded', () => {
    const plan = planRun(session, { ...settings, copyHosts: ['far'] }, 'far');
    expect(plan.problem).toContain('which host far cannot see');
  });

  it('has no bound when resources.cache is unset', () => {
    const plain = assembleSession(
      request('0123456789abcdef', 'norepo'),
      { ...agent, resources: { ...agent.resources, cache: undefined } } as AgentConfig,
      { credentials: [] },
    );
    const [volume] = planRun(plain, settings).container.volumes ?? [];
    expect(volume?.name).toBeDefined();
    expect(volume?.bound).toBeUndefined();
  });
});

describe('an existing cache volume against the bound', () => {
  const bound = { bytes: 64 * MiB, file: '/state/caches/local/v.ext4' };
  const sizes = (bytes: number | undefined) => () => bytes;

  it('accepts the bound’s own filesystem, and mounts it as a loop device without setuid or devices', () => {
    expect(cacheBoundProblem('v', cacheVolumeOptions(bound), bound, sizes(64 * MiB))).toBeUndefined();
    expect(cacheVolumeOptions(bound)).toEqual({ type: 'ext4', device: bound.file, o: 'loop,nosuid,nodev' });
  });

  it('names a volume made before the bound, another size or a lost file, with the fix', () => {
    const unbounded = cacheBoundProblem('v', {}, bound, sizes(64 * MiB));
    expect(unbounded).toContain('cache volume v was made without a size bound');
    expect(unbounded).toContain('podman volume rm v');
    const resized = cacheBoundProblem('v', cacheVolumeOptions(bound), bound, sizes(16 * MiB));
    expect(resized).toContain('was made with a size of 16m, and resources.cache now says 64m');
    const lost = cacheBoundProblem('v', cacheVolumeOptions(bound), bound, sizes(undefined));
    expect(lost).toContain('has lost its filesystem file /state/caches/local/v.ext4');
  });
});

describe('making the filesystem', () => {
  it('makes a root-only file of the size with its space reserved, replacing a leftover', async () => {
    const file = join(dir, 'made', 'local', 'v.ext4');
    await makeCacheImage({ bytes: 32 * MiB, file });
    writeFileSync(join(dir, 'made', 'local', 'stale.ext4'), 'x');
    await makeCacheImage({ bytes: 32 * MiB, file });
    const stat = statSync(file);
    expect(stat.size).toBe(32 * MiB);
    // Reserved: filling the cache cannot take space the state dir's filesystem has given to others.
    expect(stat.blocks * 512).toBeGreaterThanOrEqual(32 * MiB);
    // ... and stays so once mounted: every group's inode table is written now, none left for ext4 to
    // zero after the mount (which the loop device turns into holes in the file).
    const groups = execaSync('dumpe2fs', [file])
      .stdout.split('\n')
      .filter((line) => /^Group \d+:/.test(line));
    expect(groups.length).toBeGreaterThan(1);
    for (const group of groups) expect(group).toContain('ITABLE_ZEROED');
    expect(stat.mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'made')).mode & 0o077).toBe(0);
    expect(readdirSync(join(dir, 'made', 'local')).sort()).toEqual(['stale.ext4', 'v.ext4']);
  });

  it('says which package to install when a tool is missing, and leaves no file behind', async () => {
    const file = join(dir, 'missing', 'v.ext4');
    const path = process.env.PATH;
    // A PATH with fallocate but no mkfs.ext4, then one with neither.
    const some = join(dir, 'some-bin');
    mkdirSync(some);
    symlinkSync(execaSync('sh', ['-c', 'command -v fallocate']).stdout, join(some, 'fallocate'));
    try {
      process.env.PATH = some;
      await expect(makeCacheImage({ bytes: 32 * MiB, file })).rejects.toThrow(
        'mkfs.ext4 is not installed on this machine; install e2fsprogs (apt-get install e2fsprogs)',
      );
      process.env.PATH = join(dir, 'no-such-bin');
      await expect(makeCacheImage({ bytes: 32 * MiB, file })).rejects.toThrow(
        'fallocate is not installed on this machine; install util-linux',
      );
    } finally {
      process.env.PATH = path;
    }
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(join(dir, 'missing'))).toEqual([]);
  });

  it('refuses a size the filesystem has no room for, saying so, without filling it, and leaves no file behind', async () => {
    const file = join(dir, 'huge', 'v.ext4');
    // A GiB more than this filesystem has free.
    const free = statfsSync(dir);
    const bytes = (Math.ceil((free.bavail * free.bsize) / 1024 ** 3) + 1) * 1024 ** 3;
    // Without fallocate on PATH: refused before it would run. A fallocate that fails for want of room
    // takes every free block until its file is removed, which failed other writes on this filesystem
    // (a unit test beside this one got ENOSPC from it in CI).
    const path = process.env.PATH;
    try {
      process.env.PATH = join(dir, 'no-such-bin');
      await expect(makeCacheImage({ bytes, file })).rejects.toThrow(
        `no room for a cache of ${formatSize(bytes)} in ${join(dir, 'huge')}: the state dir's filesystem has less free space than resources.cache`,
      );
    } finally {
      process.env.PATH = path;
    }
    expect(readdirSync(join(dir, 'huge'))).toEqual([]);
  });
});

describe('cache volumes of sessions that start together', () => {
  function countingPort(delayMs: number, fail = false) {
    const calls: { name: string; bound: boolean }[] = [];
    const port = {
      ensureVolume: async (
        name: string,
        _labels: Record<string, string>,
        _signal?: AbortSignal,
        bound?: unknown,
      ) => {
        calls.push({ name, bound: bound !== undefined });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        if (fail) throw new Error('no room');
      },
    } as unknown as PodmanPort;
    return { port, calls };
  }
  const plain = [{ name: 'v', target: '/c' }];
  const bounded = [{ name: 'b', target: '/c', bound: { bytes: 32 * MiB, file: '/x/b.ext4' } }];

  it('make a volume once at a time, and a plain one once for the daemon’s life', async () => {
    const { port, calls } = countingPort(20);
    const volumes = new CacheVolumes();
    await Promise.all([volumes.ensure(port, undefined, plain), volumes.ensure(port, undefined, plain)]);
    await volumes.ensure(port, undefined, plain);
    expect(calls).toEqual([{ name: 'v', bound: false }]);
    // Another host has its own.
    await volumes.ensure(port, 'near', plain);
    expect(calls).toHaveLength(2);
  });

  it('check a plain one again for another owner: two agents can name one volume after a reload', async () => {
    const { port, calls } = countingPort(1);
    const volumes = new CacheVolumes();
    const owned = (agent: string, cache: string) => [
      {
        name: 'agentd-x-cache-a-b-npm',
        target: '/c',
        labels: { 'io.agentd.agent': agent, 'io.agentd.cache': cache },
      },
    ];
    await volumes.ensure(port, undefined, owned('a', 'b-npm'));
    await volumes.ensure(port, undefined, owned('a', 'b-npm'));
    // ensureVolume compares the owner labels with the volume's and refuses another agent's.
    await volumes.ensure(port, undefined, owned('a-b', 'npm'));
    expect(calls).toHaveLength(2);
  });

  it('look at a bounded one again at every session (a removed one must not come back plain)', async () => {
    const { port, calls } = countingPort(20);
    const volumes = new CacheVolumes();
    await Promise.all([volumes.ensure(port, undefined, bounded), volumes.ensure(port, undefined, bounded)]);
    expect(calls).toEqual([{ name: 'b', bound: true }]);
    await volumes.ensure(port, undefined, bounded);
    expect(calls).toHaveLength(2);
  });

  it('let a session that stops stop waiting, and fail each waiter of a making that fails', async () => {
    const slow = countingPort(50);
    const volumes = new CacheVolumes();
    const controller = new AbortController();
    const stopped = volumes.ensure(slow.port, undefined, plain, controller.signal);
    const other = volumes.ensure(slow.port, undefined, plain);
    controller.abort(new Error('stopped'));
    await expect(stopped).rejects.toThrow('stopped');
    await expect(other).resolves.toBeUndefined();
    expect(slow.calls).toHaveLength(1);
    const failing = countingPort(10, true);
    const again = new CacheVolumes();
    const results = await Promise.allSettled([
      again.ensure(failing.port, undefined, plain),
      again.ensure(failing.port, undefined, plain),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(failing.calls).toHaveLength(1);
    // The next session tries again.
    await expect(again.ensure(failing.port, undefined, plain)).rejects.toThrow('no room');
    expect(failing.calls).toHaveLength(2);
  });
});

describe('agentd doctor on bounded caches', () => {
  const bounded = parseConfig(config('    resources: { cache: 1g }\n'), FILE, ENV, 1000);
  const plain = parseConfig(config(''), FILE, ENV, 1000);

  it('looks only when an agent has bounded caches', () => {
    expect(checkBoundedCaches(plain, process.env)).toEqual([]);
    expect(checkBoundedCaches(bounded, process.env, () => true)).toEqual([
      {
        check: 'bounded caches',
        status: 'ok',
        message: 'fallocate, mkfs.ext4 and loop devices for the caches of demo',
      },
    ]);
  });

  it('names a missing tool with its package, and missing loop devices, with the fix', () => {
    const [tools] = checkBoundedCaches(bounded, { PATH: join(dir, 'no-such-bin') }, () => true);
    expect(tools).toMatchObject({
      status: 'fail',
      message: 'fallocate and mkfs.ext4 not on PATH: the caches of demo (resources.cache) cannot be made',
      fix: 'apt-get install util-linux e2fsprogs, or remove resources.cache',
    });
    const [loops] = checkBoundedCaches(bounded, process.env, () => false);
    expect(loops?.status).toBe('fail');
    expect(loops?.message).toContain('no loop devices');
    expect(loops?.fix).toContain('modprobe loop');
  });
});

describe('PodmanClient.ensureVolume with a bound', () => {
  /** A `podman` whose `volume inspect` answers as told and that logs what `volume create` got. */
  function podmanAnswering(inspect: string, code: number) {
    const { bin, client } = standInPodman(
      dir,
      (self) =>
        `case "$1 $2" in\n  "volume inspect") ${inspect}; exit ${code} ;;\n  "volume create") echo "$@" >> '${self}.log' ;;\nesac\n`,
    );
    const log = `${bin}.log`;
    return { client, created: () => (existsSync(log) ? readFileSync(log, 'utf8') : '') };
  }

  it('makes the filesystem and the volume when Podman says there is no such volume', async () => {
    const file = join(dir, 'ensure', 'local', 'agentd-x-cache-a-npm.ext4');
    const { client, created } = podmanAnswering(
      'echo "Error: inspecting object: no such volume agentd-x-cache-a-npm" >&2',
      125,
    );
    await client.ensureVolume('agentd-x-cache-a-npm', { 'io.agentd.cache': 'npm' }, undefined, {
      bytes: 16 * MiB,
      file,
    });
    expect(statSync(file).size).toBe(16 * MiB);
    expect(created()).toContain(
      `--opt type=ext4 --opt device=${file} --opt o=loop,nosuid,nodev agentd-x-cache-a-npm`,
    );
  });

  it('never makes a cache’s file anew when Podman fails for another reason', async () => {
    const file = join(dir, 'ensure', 'local', 'agentd-x-cache-a-keep.ext4');
    mkdirSync(join(dir, 'ensure', 'local'), { recursive: true });
    writeFileSync(file, 'the cache as it was');
    const { client, created } = podmanAnswering('echo "Error: database is locked" >&2', 125);
    await expect(
      client.ensureVolume('agentd-x-cache-a-keep', {}, undefined, { bytes: 16 * MiB, file }),
    ).rejects.toThrow('database is locked');
    expect(readFileSync(file, 'utf8')).toBe('the cache as it was');
    expect(created()).toBe('');
  });
});
