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
