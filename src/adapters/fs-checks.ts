import { accessSync, constants, lstatSync, statfsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { currentUid, privateDirProblem, userLabel } from './ownership.js';

/**
 * Read-only checks of the directories agentd keeps its state and socket in, for `agentd doctor` and
 * the warnings `agentd start` logs. They report; they never create or change anything. Ownership is
 * the rule of ownership.ts, which the daemon enforces when it creates them.
 */

/** path itself when it exists, else its nearest existing ancestor. */
export function nearestExisting(path: string): string {
  let current = path;
  for (;;) {
    try {
      lstatSync(current);
      return current;
    } catch {
      const parent = dirname(current);
      if (parent === current) return current;
      current = parent;
    }
  }
}

/**
 * Why `path` is not a directory the daemon may use, with the fix, or undefined when it is. A missing
 * directory is fine when `uid` can create it (agentd makes it 0700 at start).
 */
export function ownDirProblem(path: string, uid: number = currentUid()): string | undefined {
  const existing = nearestExisting(path);
  if (existing === path) return privateDirProblem(path, uid);
  try {
    accessSync(existing, constants.W_OK | constants.X_OK);
    return undefined;
  } catch {
    return `does not exist, and ${existing} is not writable by ${userLabel(uid)}, so agentd cannot create it. Fix: install -d -m 0700 -o ${uid} ${path}, or set another path`;
  }
}

/** Bytes an unprivileged writer may still use on the file system that holds path (or would hold it). */
export function freeBytes(path: string): { checked: string; bytes: number } {
  const checked = nearestExisting(path);
  const fs = statfsSync(checked);
  return { checked, bytes: fs.bavail * fs.bsize };
}

/**
 * The size of the filesystem a path is on (its nearest existing directory), in bytes: all of it, used
 * or free.
 */
export function filesystemBytes(path: string): { checked: string; bytes: number } {
  const checked = nearestExisting(path);
  const fs = statfsSync(checked);
  return { checked, bytes: fs.blocks * fs.bsize };
}

/**
 * What the daemon reads of the filesystem a directory is on: bytes an unprivileged writer may still use
 * (`free`) and its whole size (`total`), and the same of its inodes when it has a fixed number. Undefined when it cannot be read. The record keeper takes it as
 * a parameter, so that tests give it a filesystem as full as they need.
 */
export type DiskSpace = (
  path: string,
) => { free: number; total: number; freeInodes?: number; totalInodes?: number } | undefined;

/** DiskSpace by statfs(2); inodes too (a filesystem without a fixed number, btrfs, says 0 of 0). */
export const diskSpace: DiskSpace = (path) => {
  try {
    const fs = statfsSync(path);
    return {
      free: fs.bavail * fs.bsize,
      total: fs.blocks * fs.bsize,
      freeInodes: fs.ffree,
      totalInodes: fs.files,
    };
  } catch {
    return undefined;
  }
};

/** Whether an executable of that name is on the PATH (what a spawn of it would find). */
export function onPath(name: string, path: string = process.env.PATH ?? ''): boolean {
  return path
    .split(':')
    .filter((dir) => dir !== '')
    .some((dir) => {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** Whether this kernel offers loop devices (what a bounded cache is mounted through). */
export function loopDevices(): boolean {
  try {
    accessSync('/dev/loop-control', constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** statfs magic numbers (linux/magic.h) of what /sys/fs/cgroup may be. */
const CGROUP2_SUPER_MAGIC = 0x63677270;
const CGROUP_SUPER_MAGIC = 0x27e0eb;
const TMPFS_MAGIC = 0x01021994;

export type CgroupVersion = 'v1' | 'v2';

/**
 * The cgroup version a statfs type of /sys/fs/cgroup means: cgroup2fs is v2 (unified); a tmpfs holds v1
 * controllers (legacy, or hybrid with only systemd's tree on v2: memory is v1 in both); undefined for
 * anything else.
 */
export function cgroupVersionOf(type: number): CgroupVersion | undefined {
  if (type === CGROUP2_SUPER_MAGIC) return 'v2';
  if (type === TMPFS_MAGIC || type === CGROUP_SUPER_MAGIC) return 'v1';
  return undefined;
}

/** This machine's cgroup version, or undefined when /sys/fs/cgroup cannot be read or is neither. */
export function cgroupVersion(path = '/sys/fs/cgroup'): CgroupVersion | undefined {
  try {
    return cgroupVersionOf(Number(statfsSync(path).type));
  } catch {
    return undefined;
  }
}
