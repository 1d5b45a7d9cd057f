import { chmodSync, constants, lstatSync, readdirSync, rmdirSync, type Stats, unlinkSync } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ensurePrivateDir } from './ownership.js';
import { mkdirRecursiveSync, StateDirError } from './state-files.js';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY } = constants;
const SESSION_ID = /^[0-9a-f]{16}$/;

/** Where one session's files are on the host while it runs, under <state_dir>/work/<session>/. */
export interface WorkPaths {
  dir: string;
  /** The request text, mounted read-only at /agentd/request. */
  request: string;
  /** The input files, mounted read-only at /agentd/input. */
  input: string;
  /** Where the setup step leaves the archive of /agentd/out (mounted root-only, read-write). */
  copy: string;
  /** The archive itself. */
  archive: string;
  /** Why there is no archive, if there is none: the runner withheld it (it held a credential value), or the setup step could not write it (no room). */
  withheld: string;
  /** That the runner searched the archive and found no value in it (see output-archive.ts). */
  searched: string;
}

export function workPaths(workDir: string, sessionId: string): WorkPaths {
  const dir = join(workDir, sessionId);
  const copy = join(dir, 'out');
  return {
    dir,
    request: join(dir, 'request'),
    input: join(dir, 'input'),
    copy,
    archive: join(copy, 'out.tar'),
    withheld: join(copy, 'out.withheld'),
    searched: join(copy, 'out.searched'),
  };
}

/** What the files of triggers may take together in the state dir, by default (see SessionFiles). */
export const MAX_STAGED_BYTES = 1024 ** 3;

/** The sessions' staged files take what they may: a trigger with more is turned away for now. */
export class StagedFilesFullError extends Error {
  override name = 'StagedFilesFullError';
}

/** A session id whose files are staged already (two triggers chose it at once): the first keeps them. */
export class SessionFilesExistError extends Error {
  override name = 'SessionFilesExistError';
}

/**
 * The work directories of running sessions: what a trigger handed the agent (request, input files),
 * written durably before the trigger is answered, and the place the container leaves its output.
 * Files are created exclusively and never through a symbolic link. Removed once the session's record
 * is sealed; a crash leaves them for the next daemon, which finishes the session with them.
 */
export class SessionFiles {
  readonly dir: string;
  /** Bytes of request and input files staged by this daemon, by session, until its directory goes. */
  private readonly staged = new Map<string, number>();
  private stagedBytes = 0;
  /**
   * Sessions of this daemon whose directory `prepare` made ready: accepted, until `remove`. A trigger
   * with files that stages under such an id while it is taken (by a trigger without files, accepted
   * while it staged) removes only its own files when it is refused (`unstage`).
   */
  private readonly prepared = new Set<string>();

  constructor(
    stateDir: string,
    /** The most the sessions' staged files may take together (a client cannot fill the state dir). */
    private readonly maxStagedBytes: number = MAX_STAGED_BYTES,
  ) {
    this.dir = join(stateDir, 'work');
    ensurePrivateDir(this.dir, 'work directory');
  }

  paths(sessionId: string): WorkPaths {
    return workPaths(this.dir, sessionId);
  }

  /**
   * Writes what a trigger carries (durably: it is part of what "accepted" promises), in the thread pool:
   * a request and 64 input files are some 70 writes and fsyncs, which on the event loop held the daemon
   * for as long as the disk took, at every trigger a client sent. Rejects with a StateDirError; whatever
   * was written is removed then.
   */
  async stage(
    sessionId: string,
    content: { request?: Buffer; inputs: { name: string; bytes: Buffer }[] },
  ): Promise<void> {
    const paths = this.paths(sessionId);
    const operation = `store the request and inputs of session ${sessionId}`;
    const bytes =
      (content.request?.byteLength ?? 0) + content.inputs.reduce((n, i) => n + i.bytes.byteLength, 0);
    if (this.stagedBytes + bytes > this.maxStagedBytes) {
      throw new StagedFilesFullError(
        `the queued and running sessions' request and input files take ${this.stagedBytes} bytes, and ${bytes} more would pass the ${this.maxStagedBytes} they may take; retry when some have run`,
      );
    }
    // Two triggers that chose one id both get here before the machine knows either: the second must
    // neither write into nor remove the first's files (it removed them, and the first was accepted
    // without its request and inputs).
    const taken = () =>
      new SessionFilesExistError(
        `session id ${sessionId} is already being accepted with its files; leave sessionId out to get a fresh one`,
      );
    if (this.staged.has(sessionId)) throw taken();
    this.staged.set(sessionId, bytes);
    this.stagedBytes += bytes;
    try {
      await mkdir(paths.dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
        this.release(sessionId);
        throw taken();
      });
      if (content.request !== undefined) await writeReadOnly(paths.request, content.request);
      if (content.inputs.length > 0) {
        await mkdir(paths.input, { mode: 0o700 });
        for (const input of content.inputs) await writeReadOnly(join(paths.input, input.name), input.bytes);
        await syncDir(paths.input);
        // The agent's user (whatever its uid) reads them; nobody writes them.
        await chmod(paths.input, 0o555);
      }
      await syncDir(paths.dir);
      await syncDir(this.dir);
    } catch (error) {
      if (error instanceof SessionFilesExistError) throw error;
      this.unstage(sessionId);
      throw error instanceof StateDirError ? error : new StateDirError(operation, paths.dir, error);
    }
  }

  /**
   * Removes what `stage` wrote for a trigger that was not accepted, and no more: a session accepted
   * under the same id while it staged (a trigger without files, which the machine took before it knew
   * of this one) keeps its directory and its output place, and only the request and input files this
   * staging wrote go.
   */
  unstage(sessionId: string): void {
    if (!this.prepared.has(sessionId)) {
      this.remove(sessionId);
      return;
    }
    this.release(sessionId);
    if (!SESSION_ID.test(sessionId)) return;
    const paths = this.paths(sessionId);
    removeTree(paths.request);
    removeTree(paths.input);
  }

  /**
   * Counts the files an earlier daemon staged for a session this one goes on with (recovered at start),
   * so that they take their part of what all staged files may take; without it a restart with a full
   * queue let clients stage as much again. What cannot be read counts as nothing.
   */
  async adopt(sessionId: string): Promise<void> {
    if (!SESSION_ID.test(sessionId) || this.staged.has(sessionId)) return;
    const paths = this.paths(sessionId);
    let bytes = await regularFileBytes(paths.request);
    const names = await readdir(paths.input).catch(() => [] as string[]);
    for (const name of names) bytes += await regularFileBytes(join(paths.input, name));
    this.staged.set(sessionId, bytes);
    this.stagedBytes += bytes;
  }

  /**
   * Makes sure an accepted session's directory and its output place exist (every session has one), and
   * takes the id for the session (see `unstage`).
   */
  prepare(sessionId: string): void {
    const paths = this.paths(sessionId);
    try {
      mkdirRecursiveSync(paths.copy, 0o700);
    } catch (error) {
      throw new StateDirError(`prepare the work directory of session ${sessionId}`, paths.dir, error);
    }
    this.prepared.add(sessionId);
  }

  /**
   * Undoes `prepare` for a session whose record could not be written: its directory goes, unless a
   * trigger with files staged it (that trigger removes it when it is refused, or uses it).
   */
  unprepare(sessionId: string): void {
    this.prepared.delete(sessionId);
    if (!this.staged.has(sessionId)) this.remove(sessionId);
  }

  /** Removes a session's work directory and everything in it; never follows a link. */
  remove(sessionId: string): void {
    this.release(sessionId);
    this.prepared.delete(sessionId);
    if (!SESSION_ID.test(sessionId)) return;
    removeTree(this.paths(sessionId).dir);
  }

  /** The bytes a session's staged files counted are free again. */
  private release(sessionId: string): void {
    this.stagedBytes -= this.staged.get(sessionId) ?? 0;
    this.staged.delete(sessionId);
  }

  /** Sessions that have a work directory. */
  sessions(): string[] {
    try {
      return readdirSync(this.dir).filter((name) => SESSION_ID.test(name));
    } catch {
      return [];
    }
  }
}

async function writeReadOnly(path: string, bytes: Uint8Array): Promise<void> {
  const file = await open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o444);
  try {
    await file.writeFile(bytes);
    await file.sync();
  } finally {
    await file.close();
  }
}

async function regularFileBytes(path: string): Promise<number> {
  const stat = await lstat(path).catch(() => undefined);
  return stat?.isFile() ? stat.size : 0;
}

async function syncDir(path: string): Promise<void> {
  const dir = await open(path, O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * removeTree without blocking: one file system call at a time in the thread pool, so that a tree of
 * many thousand files (a record's output) leaves the event loop and the pool to the rest. Never throws.
 */
export async function removeTreeAsync(path: string): Promise<void> {
  let stat: Stats;
  try {
    stat = await lstat(path);
  } catch {
    return;
  }
  try {
    if (!stat.isDirectory()) {
      await unlink(path);
      return;
    }
    await chmod(path, 0o700);
    for (const name of await readdir(path)) await removeTreeAsync(join(path, name));
    await rmdir(path);
  } catch {
    // Left as it is: the next attempt (or the operator) removes it.
  }
}

/**
 * Removes a directory tree that may hold read-only directories (sealed records, input dirs): each
 * directory is made writable by its owner first, so this works without root too. Links are removed,
 * never followed. Quiet: what cannot be removed stays.
 */
export function removeTree(path: string): void {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isDirectory()) {
    try {
      unlinkSync(path);
    } catch {
      // Not ours to remove, or gone already.
    }
    return;
  }
  try {
    chmodSync(path, 0o700);
    for (const name of readdirSync(path)) removeTree(join(path, name));
    rmdirSync(path);
  } catch {
    // Left as it is: the next attempt (or the operator) removes it.
  }
}
