import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  type Stats,
  statfsSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname } from 'node:path';
import { AgentdError } from '../errors.js';
import { kindOf } from '../file-kind.js';

/**
 * The daemon's own files in its state dir. Every file is opened with O_NOFOLLOW, and new ones with
 * O_EXCL, so a planted symbolic link is an error and never a write (or read) elsewhere. A write that
 * fails leaves no temp file behind, and says whether the filesystem is full. A file opened to be read
 * (or appended to) is opened with O_NONBLOCK and must be a regular file: a planted FIFO would hold a
 * blocking open, and with it the event loop, until someone opened its other end.
 */

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW, O_NONBLOCK } = constants;

/**
 * How a file of the state dir is opened to be read: never through a link, and without waiting for a
 * FIFO's writer (O_NONBLOCK, which a regular file ignores). Check what it opened with regularFileStat.
 */
export const READ_NO_FOLLOW = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

/** The temp file of a .json written by writeFileAtomic(Async) (and, without the random part, by older versions). */
export const TEMP_JSON_FILE = /\.json\.\d+(\.[0-9a-f]+)?\.tmp$/;

/** Errno codes that mean "no room": the write may succeed later without anyone fixing anything. */
const FULL = new Set(['ENOSPC', 'EDQUOT']);

/** A write to the state dir that failed; `full` when the filesystem (or quota) has no room left. */
export class StateDirError extends AgentdError {
  readonly full: boolean;
  readonly errno: string;
  constructor(operation: string, path: string, cause: unknown) {
    const errno = (cause as NodeJS.ErrnoException).code ?? 'EIO';
    const full = FULL.has(errno);
    super(
      full ? 'STATE_DIR_FULL' : 'STATE_DIR_UNWRITABLE',
      full
        ? `state dir full: cannot ${operation} (${errno} on ${path}); ${roomFor(errno, path)}`
        : `state dir not writable: cannot ${operation} (${errno} on ${path}); ${fixFor(errno, path)}`,
      { operation, cause },
    );
    this.full = full;
    this.errno = errno;
  }
}

/**
 * What to free: ENOSPC is also what a filesystem with no free inodes says, while df -h shows it nearly
 * empty; "free space" sent the operator looking for bytes.
 */
function roomFor(errno: string, path: string): string {
  if (errno === 'ENOSPC' && inodesUsedUp(path)) {
    return 'no free inodes on that filesystem though it has free space (see df -i): remove files there (old records: daemon.history), or give it more inodes';
  }
  return 'free space on that filesystem';
}

/** Whether the filesystem holding path has an inode limit and no inode left, but blocks left. */
function inodesUsedUp(path: string): boolean {
  // path itself may be what could not be made: its nearest existing ancestor is on the same filesystem.
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    try {
      const fs = statfsSync(dir);
      // files 0: no inode limit (btrfs reports ffree 0 as well).
      return fs.files > 0 && fs.ffree === 0 && fs.bfree > 0;
    } catch {
      if (dirname(dir) === dir) return false;
    }
  }
}

function fixFor(errno: string, path: string): string {
  // ENXIO: a FIFO nobody reads (or a socket) opened to be written; EFTYPE: NotRegularFileError.
  if (errno === 'ELOOP' || errno === 'EEXIST' || errno === 'ENXIO' || errno === 'EFTYPE') {
    return `${path} is a symbolic link or an unexpected file that agentd did not make; remove it`;
  }
  if (errno === 'EROFS') return 'the filesystem is read-only; remount it read-write or move daemon.state_dir';
  if (errno === 'EACCES' || errno === 'EPERM') return `check the owner and mode of ${dirname(path)}`;
  return 'check the filesystem';
}

/**
 * mkdirSync(path, { recursive: true, mode }), with the real error: Node's recursive mkdir reports ENOENT
 * for an error it does not expect (EROFS on a read-only filesystem, EDQUOT, ...), whose fix is nothing
 * like a missing parent's. On ENOENT the first missing directory is made alone, which fails with the
 * filesystem's own code; if it is made after all (a parent was missing, then appeared), the rest follows.
 */
export function mkdirRecursiveSync(path: string, mode: number): void {
  try {
    mkdirSync(path, { recursive: true, mode });
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  try {
    mkdirSync(firstMissing(path), { mode });
  } catch (error) {
    // EEXIST: made meanwhile by someone else; the recursive mkdir below says what is still wrong.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  mkdirSync(path, { recursive: true, mode });
}

/** The outermost directory of path that does not exist (path itself when its parent exists). */
function firstMissing(path: string): string {
  let missing = path;
  for (;;) {
    const parent = dirname(missing);
    if (parent === missing) return missing;
    try {
      lstatSync(parent);
      return missing;
    } catch (error) {
      // Anything but ENOENT (EACCES): making the child says what it is.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return missing;
      missing = parent;
    }
  }
}

/**
 * Replaces path with data atomically: a new temp file (O_EXCL, O_NOFOLLOW, random name) renamed over
 * it. `durable` flushes file and directory before returning. Refuses when path is a symbolic link or
 * anything but a regular file. Throws StateDirError; the temp file is gone either way.
 */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { durable?: boolean; operation: string },
): void {
  const tmp = tempPathOf(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    writeAll(fd, data);
    if (options.durable) fsyncSync(fd);
    const open = fd;
    fd = undefined;
    closeSync(open);
    refuseNonRegular(path);
    renameSync(tmp, path);
  } catch (error) {
    if (fd !== undefined) closeQuietly(fd);
    removeQuietly(tmp);
    throw error instanceof StateDirError ? error : new StateDirError(options.operation, path, error);
  }
  if (options.durable) syncDirectory(dirname(path), options.operation);
}

/**
 * writeFileAtomic in the thread pool: the same temp file, checks and rename, without holding the event
 * loop (a rename over a file can wait for the disk). Never durable: what must be on disk before an
 * answer is written with writeFileAtomic.
 */
export async function writeFileAtomicAsync(
  path: string,
  data: string,
  options: { operation: string },
): Promise<void> {
  const tmp = tempPathOf(path);
  let made = false;
  try {
    const handle = await fsp.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    made = true;
    try {
      await handle.writeFile(data);
    } finally {
      await handle.close();
    }
    const existing = await fsp.lstat(path).catch(() => undefined);
    if (existing && !existing.isFile()) throw new NotRegularFileError(path, kindOf(existing));
    await fsp.rename(tmp, path);
  } catch (error) {
    if (made) await fsp.unlink(tmp).catch(() => {});
    throw error instanceof StateDirError ? error : new StateDirError(options.operation, path, error);
  }
}

/**
 * Appends to path, creating it (0600) if missing; a symbolic link at path is an error (ELOOP), and so
 * is anything but a regular file (a FIFO without a reader fails the open at once: ENXIO).
 */
export function appendNoFollow(path: string, data: string | Uint8Array, operation: string): void {
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o600);
  } catch (error) {
    throw new StateDirError(operation, path, error);
  }
  let before: number | undefined;
  try {
    before = regularFileStat(fd, path).size;
    writeAll(fd, data);
  } catch (error) {
    // A write cut short (no room for all of it) would leave half a line: take it back.
    if (before !== undefined) {
      try {
        ftruncateSync(fd, before);
      } catch {
        // Nothing more can be done; the next write starts after the fragment.
      }
    }
    throw new StateDirError(operation, path, error);
  } finally {
    closeQuietly(fd);
  }
}

/**
 * Reads a file without following a symbolic link at path (ELOOP instead); anything but a regular file
 * (a FIFO, device, socket or directory) is refused with NotRegularFileError, never waited on, and one of
 * more than maxBytes with FileTooLargeError, never read: a record of a gigabyte (a sparse file costs no
 * disk) would otherwise be read whole into the daemon's memory at every start.
 */
export function readNoFollow(path: string, maxBytes = Number.POSITIVE_INFINITY): Buffer {
  const fd = openSync(path, READ_NO_FOLLOW);
  try {
    const { size } = regularFileStat(fd, path);
    if (size > maxBytes) throw new FileTooLargeError(path, size, maxBytes);
    return readFileSync(fd);
  } finally {
    closeQuietly(fd);
  }
}

/** A file of the state dir larger than any agentd writes there (readNoFollow's maxBytes). */
export class FileTooLargeError extends Error {
  readonly code = 'EFBIG';
  constructor(
    readonly path: string,
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(`${path} is ${size} bytes, more than agentd writes there (at most ${maxBytes})`);
    this.name = 'FileTooLargeError';
  }
}

/**
 * A file agentd would read, append to or replace in its state dir is not a regular file: someone put it
 * there (StateDirError explains its code).
 */
export class NotRegularFileError extends Error {
  /** libuv's "inappropriate file type or format". */
  readonly code = 'EFTYPE';
  constructor(
    readonly path: string,
    /** What it is instead: "a FIFO", "a directory", ... */
    readonly kind: string,
  ) {
    super(`${path} is ${kind}, not a regular file that agentd made; remove it`);
    this.name = 'NotRegularFileError';
  }
}

/** The stat of an open file; NotRegularFileError unless it is a regular file. */
export function regularFileStat(fd: number, path: string): Stats {
  const stat = fstatSync(fd);
  if (!stat.isFile()) throw new NotRegularFileError(path, kindOf(stat));
  return stat;
}

/** Removes a file; a missing one is fine. Never follows a link: unlink removes the link itself. */
export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or not ours to remove: nothing more to do.
  }
}

/** Makes a rename durable: the directory entry is flushed as well. */
function syncDirectory(dir: string, operation: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, O_RDONLY);
    fsyncSync(fd);
  } catch (error) {
    throw new StateDirError(operation, dir, error);
  } finally {
    if (fd !== undefined) closeQuietly(fd);
  }
}

function refuseNonRegular(path: string): void {
  let stat: Stats;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isFile()) throw new NotRegularFileError(path, kindOf(stat));
}

/** This process's part of its temp files' names (see tempPathOf): random, drawn at the first write. */
let tempSalt: string | undefined;
let tempCount = 0;

/**
 * A temp file's name beside path: unique, and what a crash leaves is recognised by TEMP_JSON_FILE. The
 * pid and a random salt drawn once per process (a crashed daemon's leftovers, from a process that had the
 * same pid, do not collide: O_EXCL would refuse the write), then a count. Not randomBytes at every write:
 * a call now and then, as a session's record writes come, cost 90 µs of CPU (cold; 4 in a tight loop), some
 * 1.5 ms of the daemon's CPU a session for its ~19 writes (bench/findings.md).
 */
function tempPathOf(path: string): string {
  tempSalt ??= randomBytes(4).toString('hex');
  tempCount += 1;
  return `${path}.${process.pid}.${tempSalt}${tempCount.toString(16)}.tmp`;
}

function writeAll(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  let offset = 0;
  while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // A close that fails after a failed write changes nothing.
  }
}

/**
 * What says a file changed, without reading it: inode, size, modification and change times. Undefined
 * when it cannot be read (missing, or no permission).
 */
export function fileStamp(path: string): string | undefined {
  try {
    const s = statSync(path, { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch {
    return undefined;
  }
}
