import { lstatSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Who may own agentd's files. Like ssh-agent and tmux, agentd trusts a directory only when it is its
 * own: owned by the daemon's user and writable by nobody else. Otherwise another local user could plant
 * symlinks, swap the socket or read what the daemon writes.
 */

/*
 * The checks alone, which only read: a client (the CLI's socket check) loads this module and not
 * ownership.ts, whose directory creation brings state-files.ts and node:crypto into every CLI start.
 */

/** The effective uid of this process (0 where there are no uids). */
export function currentUid(): number {
  return process.geteuid?.() ?? 0;
}

/**
 * Why path is not a directory that only `uid` controls, with the fix; undefined when it is. A missing
 * directory is a problem too (callers create it first).
 */
export function privateDirProblem(path: string, uid: number = currentUid()): string | undefined {
  let stat: Stats;
  try {
    stat = lstatSync(path);
  } catch (error) {
    return `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
  }
  if (stat.isSymbolicLink()) {
    return `is a symbolic link; agentd does not follow links for its own directories. Replace it with a real directory (rm ${path} && mkdir -m 700 ${path}) or point the setting at the target`;
  }
  if (!stat.isDirectory()) return `is not a directory; move it away or choose another path`;
  const found = `owned by ${userLabel(stat.uid)} with mode ${modeOf(stat)}`;
  if (stat.uid !== uid) {
    return `is ${found}, but agentd runs as ${userLabel(uid)} and uses only directories it owns. Fix: chown ${uid} ${path} && chmod 700 ${path} (or remove it and let agentd create it)`;
  }
  if ((stat.mode & 0o022) !== 0) {
    return `is ${found}: group or others may write to it. Fix: chmod 700 ${path}`;
  }
  return undefined;
}

/**
 * Checks, before a client sends anything, that a daemon socket is what it claims: a socket owned by
 * root or by the caller, in a directory that only root or the caller controls (else its owner could
 * swap it between this check and the connect). A missing path is left to the connect to report.
 */
export function untrustedSocketProblem(path: string, uid: number = currentUid()): string | undefined {
  let stat: Stats;
  try {
    stat = lstatSync(path);
  } catch {
    return undefined;
  }
  const trusted = (owner: number) => owner === 0 || owner === uid;
  // Each says what is there, for its fix: `--socket /run/agentd` (the directory), a link made by hand.
  if (stat.isSymbolicLink()) {
    return `${path} is a symbolic link (to ${linkTarget(path)}), and a client connects only to the socket itself, whose owner it can check: give the socket's own path`;
  }
  if (stat.isDirectory()) return `${path} is a directory, not a socket: give the path of the socket in it`;
  if (!stat.isSocket()) return `${path} is not a socket`;
  if (!trusted(stat.uid)) {
    return `socket ${path} is owned by ${userLabel(stat.uid)}, not by you (${userLabel(uid)}) or root: it is not your daemon's`;
  }
  const dir = dirname(path);
  let dirStat: Stats;
  try {
    dirStat = lstatSync(dir);
  } catch (error) {
    return `cannot check the socket's directory ${dir} (${(error as NodeJS.ErrnoException).code})`;
  }
  if (!trusted(dirStat.uid) || (dirStat.mode & 0o022) !== 0 || !dirStat.isDirectory()) {
    return `the socket's directory ${dir} is owned by ${userLabel(dirStat.uid)} with mode ${modeOf(dirStat)}: someone other than you or root could replace the socket`;
  }
  return undefined;
}

function linkTarget(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return 'somewhere unreadable';
  }
}

/** `uid 65534 (nobody)`, or just the uid when /etc/passwd does not name it. */
export function userLabel(uid: number): string {
  const name = userNames().get(uid);
  return name === undefined ? `uid ${uid}` : `uid ${uid} (${name})`;
}

export function modeOf(stat: Stats): string {
  return `0${(stat.mode & 0o7777).toString(8).padStart(3, '0')}`;
}

let names: Map<number, string> | undefined;
function userNames(): Map<number, string> {
  if (names) return names;
  names = new Map();
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , uid] = line.split(':');
      if (name && uid !== undefined && /^\d+$/.test(uid)) names.set(Number(uid), name);
    }
  } catch {
    // No passwd file: uids alone.
  }
  return names;
}
