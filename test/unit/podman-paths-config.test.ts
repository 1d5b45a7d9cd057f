/**
 * An agent's mounts never reach the Podman that runs it: a read-write mount holding Podman's
 * configuration (the containers.conf CONTAINERS_CONF names, ~/.config/containers, /etc/containers) let
 * its sessions add `volumes = ["/etc:/hostetc"]` there, and every later container, any agent's, got
 * the host's /etc (measured with a real daemon); a mount of rootless Podman's storage handed an agent
 * every container's files and Podman's copies of their secrets.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigProblem, parseConfig } from '../../src/config/index.js';
import { podmanPathCheck, podmanPaths, programPaths } from '../../src/config/podman-paths.js';
import type { AgentConfig } from '../../src/config/types.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-podman-paths-'));
const state = join(dir, 'state');
const home = join(dir, 'home');
const podmanConf = join(dir, 'podman');
const confFile = join(podmanConf, 'containers.conf');
const beside = join(dir, 'beside');
const storage = join(home, '.local', 'share', 'containers', 'storage');
const userConf = join(home, '.config', 'containers');
for (const path of [state, podmanConf, beside, storage, userConf]) mkdirSync(path, { recursive: true });
writeFileSync(confFile, '[containers]\n');
const viaLink = join(dir, 'podman-link');
symlinkSync(podmanConf, viaLink);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FILE = join(dir, 'agentd.yaml');
const bin = join(dir, 'opt', 'bin');
mkdirSync(join(bin, 'sub'), { recursive: true });
writeFileSync(join(bin, 'podman'), '#!/bin/sh\n');
const ENV = {
  HOME: home,
  XDG_RUNTIME_DIR: '/run/user/1000',
  CONTAINERS_CONF: confFile,
  PATH: `${bin}:/usr/bin:relative/bin`,
};

function config(mounts: string, context = ''): string {
  return `daemon:\n  state_dir: ${state}\nagents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n    mounts:\n${mounts}${context}`;
}

function mount(source: string, target: string, readOnly: boolean): string {
  return `      - source: ${source}\n        target: ${target}\n        read_only: ${readOnly}\n`;
}

function problems(text: string, uid = 1000): ConfigProblem[] {
  try {
    parseConfig(text, FILE, ENV, uid, home);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  return [];
}

describe("mounts and Podman's own files", () => {
  it('refuses a read-write mount that holds, is or reaches through a link the containers.conf Podman reads', () => {
    const writable = (source: string) => problems(config(mount(source, '/conf', false)));
    const [dirMount, fileMount, linkMount] = [writable(podmanConf), writable(confFile), writable(viaLink)];
    expect(dirMount).toEqual([
      expect.objectContaining({
        path: 'agents[0].mounts[0].source',
        line: 8,
        message: expect.stringContaining(
          `"${podmanConf}" contains "${confFile}", Podman's configuration file (CONTAINERS_CONF), and its sessions may write to it (read_only: false)`,
        ),
      }),
    ]);
    expect(dirMount[0]?.message).toContain('make this mount read-only, or mount another path');
    expect(fileMount.map((p) => p.message)).toEqual([
      expect.stringContaining(`"${confFile}" is "${confFile}"`),
    ]);
    expect(linkMount.map((p) => p.message)).toEqual([
      expect.stringContaining(`"${viaLink}" contains "${confFile}"`),
    ]);
  });

  it("refuses a read-write mount of the user's Podman configuration directory, and of /etc/containers", () => {
    const found = problems(config(mount(join(home, '.config'), '/cfg', false)));
    expect(found).toEqual([
      expect.objectContaining({
        path: 'agents[0].mounts[0].source',
        message: expect.stringContaining(`contains "${userConf}", Podman's configuration of this user`),
      }),
    ]);
    const etc = problems(config(mount('/etc/containers', '/ec', false)), 0);
    expect(etc.map((p) => p.message)).toEqual([expect.stringContaining('is "/etc/containers"')]);
    // Where Podman finds the container's init: only root may write there, whoever runs agentd.
    const helpers = podmanPathCheck(
      [{ mounts: [{ source: '/usr/libexec', target: '/x', readOnly: false }] }] as unknown as AgentConfig[],
      podmanPaths({}, 0, '/root'),
      (path) => path,
    );
    expect(helpers.map((p) => p.message)).toEqual([
      expect.stringContaining(`contains "/usr/libexec/podman", Podman's helper programs`),
    ]);
  });

  it('keeps read-only mounts of the configuration, and read-write mounts beside it', () => {
    expect(problems(config(mount(podmanConf, '/conf', true) + mount(beside, '/b', false)))).toEqual([]);
  });

  it("refuses any mount or context that holds or lies inside rootless Podman's storage", () => {
    const found = problems(
      config(mount(join(home, '.local'), '/local', true), `    context: ${join(storage, '..')}\n`),
    );
    expect(found.map((p) => p.path)).toEqual(['agents[0].mounts[0].source', 'agents[0].context']);
    expect(found[0]?.message).toContain(
      `contains "${join(home, '.local', 'share', 'containers')}", rootless Podman's storage, which holds every container's files and Podman's copies of their secrets`,
    );
    expect(found[1]?.message).toContain('is "');
  });

  it("refuses a read-write mount that is, holds or puts a file in a directory of the daemon's PATH, where it finds podman", () => {
    const found = [join(dir, 'opt'), bin, join(bin, 'podman')].map((source) =>
      problems(config(mount(source, '/m', false))),
    );
    expect(found.map((list) => list.map((p) => p.message))).toEqual([
      [
        expect.stringContaining(
          `contains "${bin}", a directory of the daemon's PATH (where it finds podman)`,
        ),
      ],
      [expect.stringContaining(`is "${bin}"`)],
      [expect.stringContaining(`"${join(bin, 'podman')}" lies inside "${bin}"`)],
    ]);
    expect(found[0]?.[0]?.message).toContain(
      'they could put a program there that the daemon runs as its own user',
    );
    // A directory below one of PATH is not looked in; read-only, PATH's own are fine.
    expect(problems(config(mount(join(bin, 'sub'), '/m', false)))).toEqual([]);
    expect(problems(config(mount(bin, '/m', true)))).toEqual([]);
  });

  it("refuses a read-write mount that holds or lies inside agentd's own code, or node's directory", () => {
    const root = join(dir, 'opt');
    const guarded = programPaths({}, '/usr/local/bin/node', join(root, 'agentd'));
    const agents = [
      {
        mounts: [
          { source: root, target: '/o', readOnly: false },
          { source: join(root, 'agentd', 'dist'), target: '/d', readOnly: false },
          { source: join(root, 'agentd'), target: '/r', readOnly: true },
          { source: '/usr/local', target: '/l', readOnly: false },
        ],
      },
    ] as unknown as AgentConfig[];
    const found = podmanPathCheck(agents, guarded, (path) => path);
    expect(found.map((p) => [p.path.join('.'), p.message])).toEqual([
      [
        'agents.0.mounts.0.source',
        expect.stringContaining(`contains "${join(root, 'agentd')}", agentd's own code`),
      ],
      ['agents.0.mounts.1.source', expect.stringContaining('lies inside')],
      [
        'agents.0.mounts.3.source',
        expect.stringContaining(`contains "/usr/local/bin", the directory of the daemon's node`),
      ],
    ]);
    expect(found[0]?.message).toContain('they could rewrite the code the daemon loads next');
  });
});
