import { lstatSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { AgentdError } from '../errors.js';
import { currentUid, modeOf, privateDirProblem, userLabel } from './ownership-checks.js';
import { mkdirRecursiveSync } from './state-files.js';

// The read-only checks live apart, so that a client can load them alone (see ownership-checks.ts).
export { currentUid, privateDirProblem, untrustedSocketProblem, userLabel } from './ownership-checks.js';

/**
 * Who may own agentd's files. Like ssh-agent and tmux, agentd trusts a directory only when it is its
 * own: owned by the daemon's user and writable by nobody else. Otherwise another local user could plant
 * symlinks, swap the socket or read what the daemon writes.
 */

/**
 * Creates a directory (mode 0700, parents too) unless it exists, then checks that it is a real
 * directory owned by `uid` and not writable by group or others. Throws UNSAFE_PATH naming the path,
 * the owner and mode found, and the fix.
 */
export function ensurePrivateDir(path: string, what: string, uid: number = currentUid()): void {
  try {
    mkdirRecursiveSync(path, 0o700);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // EEXIST: something that is not a directory; checked below with a better message.
    if (code !== 'EEXIST') {
      const fix = createFix(code, path, uid);
      throw new AgentdError(
        'UNSAFE_PATH',
        `cannot create ${what} ${path}: ${code ?? String(error)}${fix ? `; ${fix}` : ''}`,
        { operation: `check ${what}`, cause: error },
      );
    }
  }
  const problem = privateDirProblem(path, uid);
  if (problem) {
    throw new AgentdError('UNSAFE_PATH', `${what} ${path} ${problem}`, { operation: `check ${what}` });
  }
}

/** What to do when a directory could not be made, by its errno; undefined when there is nothing to say. */
export function createFix(
  code: string | undefined,
  path: string,
  uid: number = currentUid(),
): string | undefined {
  if (code === 'EROFS') {
    return 'the filesystem is read-only; remount it read-write or configure a path on a writable one (daemon.state_dir, daemon.socket)';
  }
  if (code === 'EACCES' || code === 'EPERM') return deniedFix(path, uid);
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'free space (or inodes: df -i) on that filesystem';
  if (code === 'ENOTDIR') return `a parent of ${path} is not a directory`;
  return undefined;
}

/**
 * The directory that refused: the nearest ancestor that exists (the parent of a state dir several
 * levels down is missing too, and naming it sent operators to a directory that is not there).
 */
function deniedFix(path: string, uid: number): string {
  let dir = dirname(path);
  let stat: Stats | undefined;
  for (;;) {
    try {
      stat = lstatSync(dir);
      break;
    } catch {
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  const found = stat === undefined ? '' : ` (owned by ${userLabel(stat.uid)} with mode ${modeOf(stat)})`;
  return `${userLabel(uid)} may not create directories in ${dir}${found}: create ${path} for that user (as root: mkdir -p ${path} && chown ${uid} ${path} && chmod 700 ${path}), or configure a path it may create`;
}
