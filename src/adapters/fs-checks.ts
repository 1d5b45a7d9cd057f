import { accessSync, constants, lstatSync, type Stats, statfsSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Read-only checks of the directories agentd keeps its state and socket in, for `agentd doctor` and
 * the warnings `agentd start` logs. They report; they never create or change anything.
 */

/** The effective uid of this process (0 where there are no uids). */
export function effectiveUid(): number {
  return process.geteuid?.() ?? 0;
}

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
 * Why `path` is not a directory that only `uid` controls, with the fix, or undefined when it is. A
 * missing directory is fine when `uid` can create it (agentd makes it 0700 at start).
 */
export function privateDirProblem(path: string, uid: number = effectiveUid()): string | undefined {
  let stat: Stats;
  try {
    stat = lstatSync(path);
  } catch {
    const parent = nearestExisting(path);
    try {
      accessSync(parent, constants.W_OK | constants.X_OK);
      return undefined;
    } catch {
      return `does not exist, and ${parent} is not writable by ${userLabel(uid)}, so agentd cannot create it. Fix: install -d -m 0700 -o ${uid} ${path}, or set another path`;
    }
  }
  if (stat.isSymbolicLink()) {
    return `is a symbolic link; agentd uses only real directories for its own files. Fix: replace it with a directory (mkdir -m 0700) or point the setting at the target`;
  }
  if (!stat.isDirectory()) return 'is not a directory. Fix: move it away or set another path';
  const found = `owned by ${userLabel(stat.uid)} with mode ${modeOf(stat)}`;
  if (stat.uid !== uid) {
    return `is ${found}, but agentd runs as ${userLabel(uid)}. Fix: chown ${uid} ${path} && chmod 0700 ${path}`;
  }
  if ((stat.mode & 0o022) !== 0)
    return `is ${found}: group or others may write to it. Fix: chmod 0700 ${path}`;
  return undefined;
}

/** Bytes an unprivileged writer may still use on the file system that holds path (or would hold it). */
export function freeBytes(path: string): { checked: string; bytes: number } {
  const checked = nearestExisting(path);
  const fs = statfsSync(checked);
  return { checked, bytes: fs.bavail * fs.bsize };
}

function userLabel(uid: number): string {
  return uid === 0 ? 'uid 0 (root)' : `uid ${uid}`;
}

function modeOf(stat: Stats): string {
  return `0${(stat.mode & 0o7777).toString(8).padStart(3, '0')}`;
}
