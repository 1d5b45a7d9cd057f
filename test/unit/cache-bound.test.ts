/**
 * Bounded caches (`resources.cache`): the configuration, where each cache's filesystem file goes, how an
 * existing volume is checked against the bound, and making the filesystem (mkfs.ext4, no Podman).
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheBoundProblem, cacheVolumeOptions, makeCacheImage } from '../../src/adapters/cache-image.js';
import { ConfigError, type ConfigProblem, parseConfig } from '../../src/config/index.js';
import type { AgentConfig } from '../../src/config/types.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import { planRun } from '../../src/sessions/run-plan.js';
import { AGENTS, request } from '../helpers/machine-fakes.js';

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
  it('makes a sparse, root-only file of the size, replacing a leftover', async () => {
    const file = join(dir, 'made', 'local', 'v.ext4');
    await makeCacheImage({ bytes: 32 * MiB, file });
    writeFileSync(join(dir, 'made', 'local', 'stale.ext4'), 'x');
    await makeCacheImage({ bytes: 32 * MiB, file });
    const stat = statSync(file);
    expect(stat.size).toBe(32 * MiB);
    // Sparse: a few hundred KiB of metadata, not 32 MiB of the host's disk.
    expect(stat.blocks * 512).toBeLessThan(4 * MiB);
    expect(stat.mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'made')).mode & 0o077).toBe(0);
    expect(readdirSync(join(dir, 'made', 'local')).sort()).toEqual(['stale.ext4', 'v.ext4']);
  });

  it('says to install e2fsprogs when mkfs.ext4 is missing, and leaves no file behind', async () => {
    const file = join(dir, 'missing', 'v.ext4');
    const path = process.env.PATH;
    process.env.PATH = join(dir, 'no-such-bin');
    try {
      await expect(makeCacheImage({ bytes: 32 * MiB, file })).rejects.toThrow(
        'mkfs.ext4 is not installed on this machine; install e2fsprogs',
      );
    } finally {
      process.env.PATH = path;
    }
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(join(dir, 'missing'))).toEqual([]);
  });
});
