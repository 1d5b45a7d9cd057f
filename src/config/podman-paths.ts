import { statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isInside, overlaps } from './mounts.js';
import { describe } from './schema.js';
import type { AgentConfig } from './types.js';

/**
 * Where the Podman on this machine (the one agentd runs, rootful or rootless) keeps its state and reads
 * its configuration. What an agent may never be handed: an agent that may write Podman's configuration
 * (containers.conf's `volumes`, `mounts.conf`, a seccomp profile) changes every later container, any
 * agent's, and a line such as `volumes = ["/:/host"]` hands each the host; Podman's storage holds every
 * container's files and, in the clear, its copies of their secrets. Pure: the paths follow from the
 * environment, uid and home the configuration is read with (as Podman's own defaults do); a graphroot
 * moved by storage.conf is not known here.
 */
export interface PodmanPath {
  path: string;
  /** What it is, for a problem's message. */
  what: string;
  /** `state`: no mount at all (its files are other containers' and their secrets); `config`: no read-write mount. */
  kind: 'state' | 'config';
  /** What an agent that writes there could do (`config`). */
  risk?: string;
  /** Only it and the files directly in it matter (a directory of PATH), not a directory below it. */
  entriesOnly?: boolean;
}

const PODMAN_CONFIG_RISK =
  "they could change every later container, any agent's (a containers.conf line can mount the host into each)";

/** Variables naming a configuration file Podman reads instead of (or over) its defaults. */
const CONFIG_VARIABLES = [
  'CONTAINERS_CONF',
  'CONTAINERS_CONF_OVERRIDE',
  'CONTAINERS_STORAGE_CONF',
  'CONTAINERS_REGISTRIES_CONF',
  'REGISTRIES_CONFIG_PATH',
];

export function podmanPaths(env: NodeJS.ProcessEnv, uid: number, home: string): PodmanPath[] {
  const paths: PodmanPath[] = [
    { path: '/var/lib/containers', what: "rootful Podman's storage", kind: 'state' },
    { path: '/run/containers', what: "rootful Podman's run directory (its registry logins)", kind: 'state' },
    { path: '/run/libpod', what: "rootful Podman's run directory", kind: 'state' },
    { path: '/etc/containers', what: "Podman's configuration", kind: 'config', risk: PODMAN_CONFIG_RISK },
    {
      path: '/usr/share/containers',
      what: "Podman's default configuration and seccomp profile",
      kind: 'config',
    },
  ];
  // Podman's helper_binaries_dir: the container's init (catatonit), the network helpers, rootlessport.
  for (const dir of [
    '/usr/libexec/podman',
    '/usr/local/libexec/podman',
    '/usr/lib/podman',
    '/usr/local/lib/podman',
  ]) {
    paths.push({
      path: dir,
      what: "Podman's helper programs",
      kind: 'config',
      risk: "they could replace a program Podman runs for every container, any agent's (its init, its network)",
    });
  }
  const configHome = env.XDG_CONFIG_HOME || join(home, '.config');
  paths.push({
    path: join(configHome, 'containers'),
    what: "Podman's configuration of this user",
    kind: 'config',
  });
  for (const name of CONFIG_VARIABLES) {
    const file = env[name];
    if (file !== undefined && file !== '') {
      paths.push({
        path: resolve(file),
        what: `Podman's configuration file (${name})`,
        kind: 'config',
        risk: PODMAN_CONFIG_RISK,
      });
    }
  }
  if (uid !== 0) {
    const dataHome = env.XDG_DATA_HOME || join(home, '.local', 'share');
    paths.push({ path: join(dataHome, 'containers'), what: "rootless Podman's storage", kind: 'state' });
    const runtime = env.XDG_RUNTIME_DIR || `/run/user/${uid}`;
    for (const dir of ['containers', 'libpod', 'podman']) {
      paths.push({ path: join(runtime, dir), what: "rootless Podman's run directory", kind: 'state' });
    }
    // Where rootless Podman runs without a runtime directory.
    const tmp = env.TMPDIR || '/tmp';
    for (const dir of [`podman-run-${uid}`, `containers-user-${uid}`]) {
      paths.push({ path: join(tmp, dir), what: "rootless Podman's run directory", kind: 'state' });
    }
  }
  return paths;
}

/** agentd's own package (dist/ and node_modules/): this file is dist/config/podman-paths.js in it. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * What the daemon runs on this machine, found anew at each call: the directories of PATH (podman,
 * fallocate and mkfs.ext4 are looked up there, as the daemon's user, root on most machines), node's
 * own, and agentd's package (modules such as tar are loaded when first needed, not at start). An agent
 * that may write to one could put its own `podman` first on PATH, or its own code in agentd's, and the
 * daemon would run it. Relative PATH entries are left out (the daemon's working directory is not
 * known here).
 */
export function programPaths(
  env: NodeJS.ProcessEnv,
  execPath: string = process.execPath,
  packageRoot: string = PACKAGE_ROOT,
): PodmanPath[] {
  const risk = 'they could put a program there that the daemon runs as its own user';
  const dirs = new Set((env.PATH ?? '').split(':').filter((dir) => isAbsolute(dir)));
  const paths: PodmanPath[] = [...dirs].map((dir) => ({
    path: dir,
    what: "a directory of the daemon's PATH (where it finds podman)",
    kind: 'config' as const,
    risk,
    entriesOnly: true,
  }));
  if (isAbsolute(execPath)) {
    paths.push({ path: dirname(execPath), what: "the directory of the daemon's node", kind: 'config', risk });
  }
  paths.push({
    path: packageRoot,
    what: "agentd's own code",
    kind: 'config',
    risk: 'they could rewrite the code the daemon loads next',
  });
  return paths;
}

/** A problem at a key path, as the configuration loader reports it. */
export interface PodmanPathProblem {
  path: PropertyKey[];
  message: string;
}

/**
 * No mount or context source is, contains or lies inside Podman's storage or run directories, and no
 * read-write mount's is, contains or lies inside its configuration. `real` resolves a path's links (as
 * far as it exists), so that neither side hides behind one.
 */
export function podmanPathCheck(
  agents: readonly AgentConfig[],
  podman: readonly PodmanPath[],
  real: (path: string) => string,
): PodmanPathProblem[] {
  const known = podman.map((p) => ({ ...p, real: real(p.path) }));
  const problems: PodmanPathProblem[] = [];
  const check = (source: string, writable: boolean, path: PropertyKey[]) => {
    const resolved = real(source);
    const reaches = (p: (typeof known)[number]) =>
      p.entriesOnly
        ? [p.real, p.path].some(
            (at) => at === resolved || at === source || isInside(at, resolved) || isInside(at, source),
          ) ||
          ([dirname(resolved), dirname(source)].some((parent) => parent === p.real || parent === p.path) &&
            !isDirectory(resolved))
        : overlaps(resolved, p.real) || overlaps(source, p.path) || overlaps(source, p.real);
    const hit = known.find((p) => (p.kind === 'state' || writable) && reaches(p));
    if (hit === undefined) return;
    const how =
      resolved === hit.real || source === hit.path
        ? 'is'
        : isInside(hit.real, resolved) || isInside(hit.path, source)
          ? 'contains'
          : 'lies inside';
    problems.push({
      path,
      message:
        hit.kind === 'state'
          ? `${describe(source)} ${how} ${describe(hit.path)}, ${hit.what}, which holds every container's files and Podman's copies of their secrets; mount another path`
          : `${describe(source)} ${how} ${describe(hit.path)}, ${hit.what}, and its sessions may write to it (read_only: false): ${hit.risk ?? PODMAN_CONFIG_RISK}; make this mount read-only, or mount another path`,
    });
  };
  agents.forEach((agent, i) => {
    agent.mounts.forEach((m, j) => {
      check(m.source, !m.readOnly, ['agents', i, 'mounts', j, 'source']);
    });
    if (agent.context !== undefined) check(agent.context, false, ['agents', i, 'context']);
  });
  return problems;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
