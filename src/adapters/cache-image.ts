import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statfsSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { LOCAL_HOST } from '../config/hosts.js';
import { formatSize } from '../config/resources.js';
import { AgentdError } from '../errors.js';

/**
 * A bounded cache: an ext4 filesystem in a file on this machine (its space reserved when made), which
 * Podman loop-mounts as the cache's volume. Whatever an agent writes there, the filesystem is full at
 * its size and the host's disk is not touched beyond it.
 */
export interface CacheBound {
  /** The filesystem's size. */
  bytes: number;
  /** The file that holds it (cacheImageFile). */
  file: string;
}

const IMAGE_SUFFIX = '.ext4';
const PARTIAL_SUFFIX = '.tmp';

/** Where the files of bounded caches are: <state_dir>/caches. */
export function cachesDirOf(stateDir: string): string {
  return join(stateDir, 'caches');
}

/**
 * The file of a bounded cache's volume on a host, `<caches>/<host>/<volume>.ext4`: each host has its own
 * volumes, so each its own files, and two engines never mount one filesystem.
 */
export function cacheImageFile(cachesDir: string, host: string | undefined, volume: string): string {
  return join(cachesDir, host ?? LOCAL_HOST, `${volume}${IMAGE_SUFFIX}`);
}

/** The `podman volume create --opt` values that mount a bound's file as the volume. */
export function cacheVolumeOptions(bound: CacheBound): Record<string, string> {
  return { type: 'ext4', device: bound.file, o: 'loop,nosuid,nodev' };
}

const TOOL_TIMEOUT_MS = 60_000;

/**
 * Makes a fresh, empty filesystem of bound.bytes in bound.file, replacing any file there (the cache it
 * held was removed with its volume). The file's space is reserved at once (`fallocate`): an agent that
 * fills the cache never fills the state dir's filesystem, and a filesystem without room for it fails
 * here, saying so. Made under a temporary name and renamed: a failure leaves nothing half-made at the
 * file's name. Needs `fallocate` (util-linux) and `mkfs.ext4` (e2fsprogs) on this machine.
 */
export async function makeCacheImage(bound: CacheBound, signal?: AbortSignal): Promise<void> {
  const dir = dirname(bound.file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Asked first: a fallocate that fails for want of room has taken every free block by then, and
  // holds them until its file is removed, so the daemon's records and every session's files would
  // meet a full filesystem for that moment (measured: a 100 MB filesystem at 100 %). Still caught
  // below when the room went between the two.
  const free = freeBytes(dir);
  if (free !== undefined && bound.bytes > free) throw noRoom(bound.bytes, dir);
  // Unique: two sessions of an agent may make their cache at once (the runner lets one do it).
  const temp = `${bound.file}.${randomBytes(6).toString('hex')}${PARTIAL_SUFFIX}`;
  try {
    closeSync(
      openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600),
    );
    const reserved = await tool('fallocate', ['--length', String(bound.bytes), temp], signal);
    if (reserved.failed) {
      if (/no space left/i.test(reserved.stderr)) throw noRoom(bound.bytes, dir, reserved);
      throw new AgentdError(
        'CACHE_FAILED',
        toolProblem(
          'fallocate',
          'util-linux',
          reserved,
          `cannot reserve ${formatSize(bound.bytes)} for the cache in ${dir}`,
        ),
        { operation: 'make cache filesystem', cause: reserved },
      );
    }
    // No journal (a cache is disposable, and a journal would take 32 MiB of a 1 GiB file); no blocks
    // reserved for root (the agent's user gets the whole size); no discard, and the inode tables
    // written now: either would give back reserved space (ext4 zeroes lazily-initialised tables after
    // the first mount, which the loop device turns into holes in the file: 1 MiB of 16 measured).
    const made = await tool(
      'mkfs.ext4',
      [
        '-q',
        '-F',
        '-m',
        '0',
        '-O',
        '^has_journal',
        '-E',
        'nodiscard,lazy_itable_init=0',
        '-L',
        'agentd-cache',
        temp,
      ],
      signal,
    );
    if (made.failed) {
      throw new AgentdError(
        'CACHE_FAILED',
        toolProblem('mkfs.ext4', 'e2fsprogs', made, `cannot make the cache's filesystem in ${bound.file}`),
        { operation: 'make cache filesystem', cause: made },
      );
    }
    renameSync(temp, bound.file);
  } catch (error) {
    rmSync(temp, { force: true });
    if (error instanceof AgentdError) throw error;
    throw new AgentdError(
      'CACHE_FAILED',
      `cannot make the cache's file ${bound.file}: ${(error as Error).message}`,
      {
        operation: 'make cache filesystem',
        cause: error,
      },
    );
  }
}

/** Bytes an unprivileged write may still take on dir's filesystem; undefined if statfs fails. */
function freeBytes(dir: string): number | undefined {
  try {
    const stats = statfsSync(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return undefined;
  }
}

function noRoom(bytes: number, dir: string, cause?: unknown): AgentdError {
  return new AgentdError(
    'CACHE_FAILED',
    `no room for a cache of ${formatSize(bytes)} in ${dir}: the state dir's filesystem has less free space than resources.cache; free some, or make resources.cache smaller`,
    { operation: 'make cache filesystem', cause },
  );
}

function tool(file: string, args: string[], signal?: AbortSignal) {
  return execa(file, args, {
    timeout: TOOL_TIMEOUT_MS,
    cancelSignal: signal,
    reject: false,
    stdin: 'ignore',
    // Its own process group, as podman's (adapters/podman.ts): a Ctrl-C is the daemon's to handle.
    detached: true,
  });
}

/** What went wrong with a tool, worded for the operator: not installed, timed out, or its own message. */
function toolProblem(
  name: string,
  pkg: string,
  result: { stderr: string; exitCode?: number | undefined; timedOut: boolean },
  what: string,
): string {
  if ((result as { code?: string }).code === 'ENOENT') {
    return `${what}: ${name} is not installed on this machine; install ${pkg} (apt-get install ${pkg}), or remove resources.cache`;
  }
  if (result.timedOut) return `${what}: ${name} timed out`;
  return `${what}: ${name} failed: ${result.stderr.trim() || `exit code ${result.exitCode}`}`;
}

/** The size of a bound's file, or undefined when there is none. */
export function cacheImageBytes(file: string): number | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO in its place is not waited on (and is no bound's file).
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const stat = fstatSync(fd);
    return stat.isFile() ? stat.size : undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Why an existing volume is not the bound's filesystem (made without a bound, with another file, or of
 * another size), worded with the fix; undefined when it is. The size of a cache is set when it is made.
 */
export function cacheBoundProblem(
  volume: string,
  options: Readonly<Record<string, string>>,
  bound: CacheBound,
  bytesOf: (file: string) => number | undefined = cacheImageBytes,
): string | undefined {
  const fix = `remove the cache so that the next session makes it anew with the bound (its contents are lost): podman volume rm ${volume}`;
  if (options.device !== bound.file) {
    return `cache volume ${volume} was made without a size bound (before resources.cache was set); ${fix}`;
  }
  const bytes = bytesOf(bound.file);
  if (bytes === undefined) return `cache volume ${volume} has lost its filesystem file ${bound.file}; ${fix}`;
  if (bytes !== bound.bytes) {
    return `cache volume ${volume} was made with a size of ${formatSize(bytes)}, and resources.cache now says ${formatSize(bound.bytes)}; ${fix}`;
  }
  return undefined;
}

/** The volumes that have a file on a host (cacheImageFile), and the files of makings cut short. */
export function cacheImagesOn(cachesDir: string, host: string): { volumes: string[]; partial: string[] } {
  let names: string[];
  try {
    names = readdirSync(join(cachesDir, host));
  } catch {
    return { volumes: [], partial: [] };
  }
  return {
    volumes: names.filter((n) => n.endsWith(IMAGE_SUFFIX)).map((n) => n.slice(0, -IMAGE_SUFFIX.length)),
    partial: names.filter((n) => n.endsWith(PARTIAL_SUFFIX)),
  };
}

/** Removes the files of these volumes on a host, and these files of makings cut short (gone ones count). */
export function removeCacheImages(
  cachesDir: string,
  host: string,
  volumes: readonly string[],
  partial: readonly string[],
): void {
  for (const volume of volumes) rmSync(cacheImageFile(cachesDir, host, volume), { force: true });
  for (const name of partial) rmSync(join(cachesDir, host, name), { force: true });
}
