import { posix } from 'node:path';
import { quoted } from './quoted.js';

/**
 * The path rules of what a session container gets from outside: agent `mounts:`, `context:` and
 * `caches:`. Pure: the loader checks that sources exist, the schema words the problems.
 *
 * Podman reads `-v SOURCE:TARGET:OPTIONS`, so a `:` or `,` in a path would be read as the next field
 * (an injected option); control characters and whitespace in a target would reach the setup step's
 * shell word lists. Both are refused rather than escaped.
 */

/** agentd's own directory inside every session: request, inputs, context, output. */
export const AGENTD_DIR = '/agentd';
/** Where `context:` is mounted, read-only. */
export const CONTEXT_TARGET = `${AGENTD_DIR}/context`;
/** The trigger's request text, read-only ($AGENTD_REQUEST_FILE). */
export const REQUEST_TARGET = `${AGENTD_DIR}/request`;
/** The trigger's input files, read-only ($AGENTD_INPUT_DIR). */
export const INPUT_TARGET = `${AGENTD_DIR}/input`;
/** Where the agent leaves its results ($AGENTD_OUTPUT_DIR): a tmpfs of the agent's `output` size. */
export const OUTPUT_TARGET = `${AGENTD_DIR}/out`;
/** Where the setup step leaves the archive of the output for agentd: root-only, outside the agent's view. */
export const OUTPUT_COPY_TARGET = '/run/agentd/out';

/** Paths a mount or cache may not be at or below: the image's system, and the kernel's views. */
const SYSTEM_ROOTS = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/proc',
  '/run',
  '/sbin',
  '/sys',
  '/usr',
];

/** Host sources never handed to an agent: the whole host, the kernel's views, the container engine's own. */
const HOST_FORBIDDEN = ['/proc', '/sys', '/dev', '/run/podman', '/var/run/podman', '/var/lib/containers'];

/**
 * What names an agent's cache volume after the instance's prefix. Agent and cache names may both hold
 * `-`, so two agents' caches can share it (`a` + `b-npm`, `a-b` + `npm`): the configuration refuses that.
 */
export function cacheVolumeKey(agent: string, cache: string): string {
  return `${agent}-${cache}`;
}

/** True when one path is the other or lies inside it. */
export function overlaps(a: string, b: string): boolean {
  return a === b || isInside(a, b) || isInside(b, a);
}

/**
 * Paths added with an index, asked which hold a path: the first one that the path lies inside (as
 * isInside says) or, with `orSame`, is. Through a tree of the paths' parts, so that a question costs the
 * asked path's length, not the number of paths: asking each of 30,664 agents' mounts against all of
 * them took 55 s of a 4 MiB file's check.
 */
export class PathIndex {
  private readonly tree: PathNode = { parts: new Map() };
  /** `/` holds every other path. */
  private root: number | undefined;
  private readonly roots: number[] = [];

  add(path: string, index: number): void {
    if (path === '/') {
      this.root ??= index;
      this.roots.push(index);
      return;
    }
    let node = this.tree;
    for (const part of path.split('/')) {
      let next = node.parts.get(part);
      if (next === undefined) {
        next = { parts: new Map() };
        node.parts.set(part, next);
      }
      node = next;
    }
    node.ends = Math.min(node.ends ?? index, index);
    node.all ??= [];
    node.all.push(index);
  }

  /** Every index whose path holds the one asked (or is it, with `orSame`), in no order. */
  allHolding(path: string, orSame: boolean): number[] {
    const found: number[] = [];
    const take = (indices: readonly number[] | undefined) => {
      for (const index of indices ?? []) found.push(index);
    };
    if (path !== '/' || orSame) take(this.roots);
    let node: PathNode | undefined = this.tree;
    for (const part of path.split('/')) {
      if (node !== this.tree) take(node.all);
      node = node.parts.get(part);
      if (node === undefined) return found;
    }
    if (orSame) take(node.all);
    return found;
  }

  firstHolding(path: string, orSame: boolean): number | undefined {
    let found = path !== '/' || orSame ? this.root : undefined;
    const take = (index: number | undefined) => {
      if (index !== undefined && (found === undefined || index < found)) found = index;
    };
    let node: PathNode | undefined = this.tree;
    for (const part of path.split('/')) {
      if (node !== this.tree) take(node.ends);
      node = node.parts.get(part);
      if (node === undefined) return found;
    }
    if (orSame) take(node.ends);
    return found;
  }
}

/** A part of a path in firstOverlaps' tree: the first path that ends here, the first that goes on below. */
interface PathNode {
  parts: Map<string, PathNode>;
  ends?: number;
  below?: number;
  /** PathIndex: every index added that ends here. */
  all?: number[];
}

/**
 * For each path, the index of the first path before it that overlaps it (as `overlaps` says), or
 * undefined. The paths are put in a tree of their parts, so each is looked at once: comparing each with
 * every one before it cost 118 s for one agent of 61,786 mounts (a 4 MiB file).
 */
export function firstOverlaps(paths: readonly string[]): (number | undefined)[] {
  const tree: PathNode = { parts: new Map() };
  /** `/` holds every other path (isInside): the first one. */
  let root: number | undefined;
  const min = (a: number | undefined, b: number | undefined) =>
    a === undefined ? b : b === undefined ? a : Math.min(a, b);
  return paths.map((path, index) => {
    if (path === '/') {
      const first = index > 0 ? 0 : undefined;
      root ??= index;
      return first;
    }
    let found = root;
    let node = tree;
    const parts = path.split('/');
    // `a` lies inside `b` when b's parts begin a's and a has more: b + '/' begins a.
    for (const part of parts) {
      found = min(found, node === tree ? undefined : node.ends);
      let next = node.parts.get(part);
      if (next === undefined) {
        next = { parts: new Map() };
        node.parts.set(part, next);
      }
      node.below ??= index;
      node = next;
    }
    // The same path, and those inside it. node.below was set by paths before this one only: this one
    // set it on the nodes above its own.
    found = min(found, min(node.ends, node.below));
    node.ends ??= index;
    return found;
  });
}

/** True when `path` lies strictly inside `dir`. */
export function isInside(path: string, dir: string): boolean {
  return dir === '/' ? path !== '/' : path.startsWith(`${dir}/`);
}

/** Why a path cannot be written into podman's syntax, or undefined. */
function syntaxProblem(path: string, what: string): string | undefined {
  if (path === '') return `must not be empty; write an absolute ${what}`;
  if (!path.startsWith('/')) {
    return `${quoted(path)} is a relative path; write an absolute ${what} (it starts with /)`;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
  if (/[\u0000-\u001f\u007f]/.test(path)) {
    return `${quoted(path)} contains a control character; rename the path`;
  }
  if (/[:,]/.test(path)) {
    return `${quoted(path)} contains "${/:/.test(path) ? ':' : ','}", which podman would read as a separator of its mount options; use a path without : and ,`;
  }
  const normal = posix.normalize(path).replace(/(.)\/$/, '$1');
  if (normal !== path) {
    return `${quoted(path)} is not in its plain form; write ${quoted(normal)}`;
  }
  return undefined;
}

/**
 * The root of HOST_FORBIDDEN a path is or lies under, or undefined. The loader asks it of a source's
 * real path too: a link such as /srv/data -> /proc passes the check of the path as written.
 */
export function forbiddenHostRoot(path: string): string | undefined {
  return HOST_FORBIDDEN.find((root) => path === root || isInside(path, root));
}

/** Why a host path cannot be a mount source, or undefined (existence is the loader's check). */
export function sourceProblem(path: string): string | undefined {
  const syntax = syntaxProblem(path, 'host path');
  if (syntax !== undefined) return syntax;
  if (path === '/') return 'is the whole host; mount the directory the agent needs';
  const forbidden = forbiddenHostRoot(path);
  if (forbidden !== undefined) {
    return `${quoted(path)} is under ${forbidden}, which is never handed to an agent; mount another directory`;
  }
  return undefined;
}

/** Why a path cannot be a target inside the container whatever the agent, or undefined. */
export function targetProblem(path: string): string | undefined {
  const syntax = syntaxProblem(path, 'path inside the container');
  if (syntax !== undefined) return syntax;
  if (/\s/.test(path)) return `${quoted(path)} contains whitespace; use a path without spaces`;
  if (path === '/') return 'is the root of the container; mount at a directory like /data';
  const system = SYSTEM_ROOTS.find((root) => path === root || isInside(path, root));
  if (system !== undefined) {
    return `${quoted(path)} is a system path (under ${system}); mount somewhere else, e.g. /data or /opt/NAME`;
  }
  if (overlaps(path, AGENTD_DIR)) {
    return `${quoted(path)} overlaps ${AGENTD_DIR}, which agentd fills itself (request, input, context, out); mount somewhere else`;
  }
  return undefined;
}

/**
 * Why a target clashes with what the agent's session needs, or undefined: the clone, the home
 * and the writable scratch directories must stay where they are.
 */
export function targetClash(path: string, agent: string): string | undefined {
  const home = `/home/${agent}`;
  const repo = `${home}/repo`;
  for (const keep of [home, '/tmp', '/var/tmp']) {
    if (path === keep || isInside(keep, path)) {
      return `${quoted(path)} would hide ${keep}, which the session writes to; mount inside it or elsewhere`;
    }
  }
  if (overlaps(path, repo)) {
    return `${quoted(path)} overlaps ${repo}, where the repository is cloned; mount somewhere else`;
  }
  return undefined;
}
