import { closeSync, constants, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { AgentdError } from '../errors.js';
import { readNoFollow, StateDirError } from './state-files.js';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

export interface PidFileClaim {
  path: string;
  /** Set when a pid file of a dead process was taken over. */
  stalePid?: number;
  /** The pid could not be written (a full state dir): the file is empty. */
  unwritten?: boolean;
  release(): void;
}

/** Claims the pid file exclusively: one daemon per instance. */
export function claimPidFile(path: string): PidFileClaim {
  let stalePid: number | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
      let written = true;
      try {
        writeSync(fd, `${process.pid}\n`);
      } catch {
        // A full state dir: the file exists, which claims it; the socket check still finds a live daemon.
        written = false;
      } finally {
        closeSync(fd);
      }
      return {
        path,
        ...(stalePid === undefined ? {} : { stalePid }),
        ...(written ? {} : { unwritten: true }),
        release: () => {
          const pid = readPid(path);
          if (pid === process.pid || (!written && pid === undefined)) rmSync(path, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        // A read-only or full state dir: StateDirError says which, and the fix.
        throw new StateDirError('create the pid file', path, error);
      }
      const pid = readPid(path);
      if (pid !== undefined && pid !== process.pid && isAlive(pid)) {
        throw new AgentdError(
          'DAEMON_RUNNING',
          `another agentd (pid ${pid}) is already running for this socket and state dir (pid file ${path}); stop it first (kill ${pid}) or give this one another daemon.state_dir`,
          { operation: 'claim pid file' },
        );
      }
      stalePid = pid ?? -1;
      rmSync(path, { force: true });
    }
  }
  throw new AgentdError('INTERNAL', `cannot claim pid file ${path}: another process keeps recreating it`);
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readNoFollow(path).toString('utf8').trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a process has this pid (one of another user's counts: signalling it is refused, not failed).
 * A zombie does not: a daemon just killed is one until its parent reaps it, which a supervisor may do
 * late, and its pid file is a dead daemon's.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

/** The state in /proc/PID/stat, after the command's name (which may hold spaces and parentheses). */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    // No /proc (or the process is gone meanwhile): signalling it said enough.
    return false;
  }
}
