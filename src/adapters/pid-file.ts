import {
  type BigIntStats,
  closeSync,
  constants,
  ftruncateSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename } from 'node:path';
import { AgentdError } from '../errors.js';
import { readNoFollow, StateDirError } from './state-files.js';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

/** Errno codes of a state dir without room: freeing the room kept there may let the pid in. */
const NO_ROOM = new Set(['ENOSPC', 'EDQUOT']);
/**
 * How long an empty pid file counts as a daemon's that is starting, when no live process is found
 * holding it (no /proc, or another user's): a daemon writes its pid right after making the file.
 */
export const EMPTY_PID_GRACE_MS = 5000;
/** How long the takeover lock of a live process counts as a start under way (see underTakeoverLock). */
export const TAKEOVER_LOCK_MAX_MS = 60_000;

export interface PidFileClaim {
  path: string;
  /** Set when a pid file of a dead process was taken over. */
  stalePid?: number;
  /** The pid could not be written (a full state dir): the file is empty until writePid() succeeds. */
  readonly unwritten: boolean;
  /** Writes the pid if it is not written yet; throws StateDirError while the state dir has no room. */
  writePid(): void;
  release(): void;
}

export interface PidFileOptions {
  /** Frees the room kept in the state dir (its reserve), for a pid file that finds none. */
  freeRoom?: () => void;
}

/**
 * Claims the pid file exclusively: one daemon per instance. The file stays open for the claim's life,
 * so a daemon whose pid could not be written (a full state dir) is still found holding it.
 *
 * A file left by a dead daemon is taken over only under the takeover lock (`<pid file>.lock`): two
 * daemons started at once both find it stale, and the one that removed it last would otherwise remove
 * the other's new pid file with it, and both would run.
 */
export function claimPidFile(path: string, options: PidFileOptions = {}): PidFileClaim {
  const fd = createPidFile(path, options);
  if (fd !== undefined) return heldClaim(path, fd, undefined, options);
  return underTakeoverLock(path, options, () => {
    let stalePid: number | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      // Judged again under the lock: another daemon may have taken it over meanwhile.
      stalePid = takeOver(path);
      const fd = createPidFile(path, options);
      if (fd !== undefined) return heldClaim(path, fd, stalePid, options);
    }
    throw new AgentdError('INTERNAL', `cannot claim pid file ${path}: another process keeps recreating it`);
  });
}

/** The new pid file, open; undefined when one exists. */
function createPidFile(path: string, options: PidFileOptions): number | undefined {
  try {
    return withRoom(options, () => openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    // A read-only or full state dir: StateDirError says which, and the fix.
    throw new StateDirError('create the pid file', path, error);
  }
}

/**
 * Runs `work` holding the takeover lock (see takeLock); one a live process holds refuses this start, as
 * a running daemon's pid file does.
 */
function underTakeoverLock<T>(path: string, options: PidFileOptions, work: () => T): T {
  const lock = `${path}.lock`;
  const release = takeLock(
    lock,
    (holder) =>
      new AgentdError(
        'DAEMON_RUNNING',
        `another agentd${holder === undefined ? '' : ` (pid ${holder})`} is starting for this state dir: it is taking over the pid file ${path} of a daemon that is gone (${lock}); retry in a few seconds (if no agentd is starting, remove ${lock}), or give this one another daemon.state_dir`,
        { operation: 'claim pid file' },
      ),
    (error) => new StateDirError('take over the pid file', lock, error),
    options,
  );
  try {
    return work();
  } finally {
    release();
  }
}

/**
 * Takes a lock of a start: a file made exclusively, holding this process's pid; returns what removes it.
 * One left by a process killed while it held it (its pid dead, or empty for longer than
 * EMPTY_PID_GRACE_MS, or older than TAKEOVER_LOCK_MAX_MS whatever its pid) is removed; one a live process
 * holds throws `refusal(its pid)`, one that cannot be made `cannotMake(the error)`. Held for milliseconds:
 * what it guards is a check and what follows it.
 */
export function takeLock(
  lock: string,
  refusal: (holder: number | undefined) => Error,
  cannotMake: (error: unknown) => Error,
  options: PidFileOptions = {},
): () => void {
  let fd: number | undefined;
  for (let attempt = 0; fd === undefined; attempt++) {
    try {
      fd = withRoom(options, () => openSync(lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw cannotMake(error);
      const holder = readPid(lock);
      const stat = fileStat(lock);
      const age = stat === undefined ? undefined : Date.now() - Number(stat.mtimeMs);
      // A takeover takes milliseconds: a lock older than TAKEOVER_LOCK_MAX_MS is a killed start's whose
      // pid another process has since, not a start under way.
      const young =
        age !== undefined &&
        Math.abs(age) < (holder === undefined ? EMPTY_PID_GRACE_MS : TAKEOVER_LOCK_MAX_MS);
      const live = young && (holder === undefined || holder === process.pid || isAlive(holder));
      if (live || attempt > 0) throw refusal(holder);
      rmSync(lock, { force: true });
    }
  }
  try {
    writePidTo(fd);
  } catch {
    // An empty lock counts as held for EMPTY_PID_GRACE_MS; this one is removed long before.
  }
  const held = fd;
  return () => {
    try {
      closeSync(held);
    } catch {
      // Closed either way.
    }
    rmSync(lock, { force: true });
  };
}

/** The claim of a pid file just made (open as `fd`): its pid written now, or by writePid once there is room. */
function heldClaim(
  path: string,
  fd: number,
  stalePid: number | undefined,
  options: PidFileOptions,
): PidFileClaim {
  let open = true;
  let written = false;
  const writePid = () => {
    if (written || !open) return;
    try {
      writePidTo(fd);
      written = true;
    } catch (error) {
      throw new StateDirError('write the pid file', path, error);
    }
  };
  try {
    withRoom(options, writePid);
  } catch {
    // A full state dir: the file exists and is held open, which claims it; writePid tries again.
  }
  return {
    path,
    ...(stalePid === undefined ? {} : { stalePid }),
    get unwritten() {
      return !written;
    },
    writePid,
    release: () => {
      if (!open) return;
      open = false;
      try {
        closeSync(fd);
      } catch {
        // Closed either way.
      }
      const pid = readPid(path);
      if (pid === process.pid || (!written && pid === undefined)) rmSync(path, { force: true });
    },
  };
}

/** Runs `make`; on a state dir without room, frees the room kept there (once) and runs it again. */
function withRoom<T>(options: PidFileOptions, make: () => T): T {
  try {
    return make();
  } catch (error) {
    const code = (error instanceof StateDirError ? error.errno : (error as NodeJS.ErrnoException).code) ?? '';
    if (options.freeRoom === undefined || !NO_ROOM.has(code)) throw error;
    options.freeRoom();
    return make();
  }
}

/** Writes this process's pid at the start of the file; a write cut short is taken back (no half a pid). */
function writePidTo(fd: number): void {
  const bytes = Buffer.from(`${process.pid}\n`);
  let wrote = 0;
  try {
    wrote = writeSync(fd, bytes, 0, bytes.length, 0);
  } finally {
    if (wrote !== bytes.length) {
      try {
        ftruncateSync(fd, 0);
      } catch {
        // An empty or partial file reads as no pid either way.
      }
    }
  }
  if (wrote !== bytes.length) {
    throw Object.assign(new Error(`wrote ${wrote} of ${bytes.length} bytes`), { code: 'ENOSPC' });
  }
}

/**
 * An existing pid file: removed when its daemon is gone, returning the pid it held (-1: none readable);
 * DAEMON_RUNNING when a live daemon holds it, by its pid, by holding it open, or (an empty file) by
 * having just made it.
 */
function takeOver(path: string): number {
  const pid = readPid(path);
  if (pid !== undefined && pid !== process.pid && isAlive(pid)) {
    throw new AgentdError(
      'DAEMON_RUNNING',
      `another agentd (pid ${pid}) is already running for this socket and state dir (pid file ${path}); stop it first (kill ${pid}) or give this one another daemon.state_dir`,
      { operation: 'claim pid file' },
    );
  }
  // No pid (a daemon started on a full state dir could not write it), or this process's (a daemon
  // restarted with the same pid, as in a container, or a second claim in this process).
  if (pid === undefined || pid === process.pid) {
    const stat = fileStat(path);
    const holder = stat === undefined ? undefined : holderOf(path, stat);
    if (holder !== undefined) {
      throw new AgentdError(
        'DAEMON_RUNNING',
        `another agentd (pid ${holder}) is already running for this socket and state dir: it holds the pid file ${path} open${pid === undefined ? ' (its pid is not written: the state dir had no room)' : ''}; stop it first (kill ${holder}) or give this one another daemon.state_dir`,
        { operation: 'claim pid file' },
      );
    }
    const age = stat === undefined ? undefined : Date.now() - Number(stat.mtimeMs);
    if (pid === undefined && stat?.size === 0n && age !== undefined && Math.abs(age) < EMPTY_PID_GRACE_MS) {
      throw new AgentdError(
        'DAEMON_RUNNING',
        `the pid file ${path} is empty and was made ${Math.max(0, Math.round(age / 1000))}s ago: another agentd may be starting for this state dir; retry in a few seconds, or give this one another daemon.state_dir`,
        { operation: 'claim pid file' },
      );
    }
  }
  rmSync(path, { force: true });
  return pid ?? -1;
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readNoFollow(path).toString('utf8').trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The pid file's stat, when it is a regular file (a planted link is not a daemon's). */
function fileStat(path: string): BigIntStats | undefined {
  try {
    const stat = lstatSync(path, { bigint: true });
    return stat.isFile() ? stat : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A live process holding this file open (/proc/PID/fd), if one can be seen: a daemon keeps its pid
 * file open, so one whose pid is not written is still found. Only processes this user may look into:
 * a daemon of this state dir is its owner's (or root's, which sees all).
 */
function holderOf(path: string, file: BigIntStats): number | undefined {
  // Only the fds whose link names a file of this name are looked at (stat of another's file can hang
  // on a network filesystem).
  const name = `/${basename(path)}`;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = `/proc/${pid}/fd/${fd}`;
        if (!readlinkSync(link).endsWith(name)) continue;
        const target = statSync(link, { bigint: true });
        if (target.ino === file.ino && target.dev === file.dev && isAlive(Number(pid))) return Number(pid);
      } catch {
        // Closed meanwhile, or not ours to look at.
      }
    }
  }
  return undefined;
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
