import {
  chmodSync,
  closeSync,
  createReadStream,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmdirSync,
  type Stats,
  statfsSync,
  statSync,
} from 'node:fs';
import { chmod, lstat, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadEntry } from 'tar';
import { AgentdError } from '../errors.js';
import { UNSHOWABLE_NAME } from '../visible-text.js';
import { ensurePrivateDir } from './ownership.js';
import { removeTree, removeTreeAsync } from './session-files.js';
import { RECORD_MAX_BYTES, RESERVE_BYTES } from './session-store.js';
import {
  READ_NO_FOLLOW,
  readNoFollow,
  regularFileStat,
  removeQuietly,
  StateDirError,
  TEMP_JSON_FILE,
  writeFileAtomic,
  writeFileAtomicAsync,
} from './state-files.js';
import { WriteBehind } from './write-behind.js';

const SESSION_ID = /^[0-9a-f]{16}$/;
/** What a copy of session.log that a crash cut short leaves (writeFileAtomic's temp file). */
const LOG_TEMP_FILE = /^session\.log\.\d+\.[0-9a-f]+\.tmp$/;
/** Where retention moves records to remove them: not an agent's name, so never read as records. */
const REMOVING_DIR = '.removing';
const AGENT_NAME = /^[a-z_][a-z0-9_-]*$/;
/** Files and directories kept of one session's output: more would only cost the daemon time and inodes. */
export const MAX_OUTPUT_ENTRIES = 10_000;
/** The session's record, its masked output and what it left in /agentd/out. */
export const RECORD_FILES = { json: 'session.json', log: 'session.log', output: 'out' } as const;

/** What came out of /agentd/out, as the record says. */
export interface OutputSummary {
  /** Regular files and directories kept. */
  files: number;
  bytes: number;
  /**
   * Some of the output is missing. The archive was cut at its byte bound (it is read no further): the
   * file the cut falls in is kept cut short, even when it alone is larger than the bound, what came
   * after it is not in the archive. Or an entry would have made more than MAX_OUTPUT_ENTRIES files and
   * directories: it and every entry after it are left out (the rest of the archive is not read).
   */
  truncated: boolean;
  /**
   * Entries left out for what they are: neither regular files nor directories (symbolic links, fifos;
   * hard links but those to a file kept before them), paths outside out/, names that are not UTF-8,
   * too long, or hold a control or invisible format character; and files that could not be written.
   */
  skipped: number;
  /** Why there is no output at all (the session never ran its command, or the archive could not be made). */
  missing?: string;
  /**
   * Why the archive could not be read to its end although it was not cut at its bound: it is damaged, or
   * the session's stop ended its archiving (what came before is kept).
   */
  damaged?: string;
}

/** A record directory and what retention needs to know of it. */
export interface RecordEntry {
  agent: string;
  sessionId: string;
  dir: string;
  sealed: boolean;
  /**
   * When it was sealed, ms: the mtime of its session.json for a record read from disk, the records'
   * clock (see SealedRecords) for one sealed since.
   */
  at: number;
  bytes: number;
  /** Its files and directories (inodes: a file of many names once), the record's own directory included. */
  inodes: number;
}

/**
 * The sealed record of every session, one directory each: <records_dir>/<agent>/<session>/ with
 * session.json, session.log and out/. Written while the session runs (session.json on every change),
 * completed and sealed when it ends: every file 0444, every directory 0555, so an accidental write or
 * a later session cannot change it. Removed only by retention (age, total size) or by hand.
 */
export class SealedRecords {
  private readonly index = new Map<string, RecordEntry>();
  /** session.json of open records, by directory, waiting to be written. */
  private readonly newest = new Map<string, string>();
  private readonly writes = new WriteBehind<string>();
  /** Record directories a seal is completing: session.json is the seal's to write from then on. */
  private readonly sealing = new Map<string, Promise<{ dir: string; output: OutputSummary }>>();

  /** Records retention took out of the records directory, being removed (see discard). */
  private readonly removing: string;
  private emptying: Promise<void> = Promise.resolve();
  private discarded = 0;
  /**
   * What the records taken out by retention take until their files are removed (in the background), by
   * their name in the directory of records being removed: the room they free is not free yet.
   */
  private readonly releasing = new Map<string, { bytes: number; inodes: number }>();

  constructor(
    readonly dir: string,
    /**
     * Now, ms since the epoch, for retention by age: the wall clock as read once here, carried on by
     * the steady clock. A step of the wall clock (a bad RTC or NTP source setting it years ahead) must
     * not make every record look older than records_max_age at once: removed, they cannot be had back.
     * A step leaves ages as they were until the next start, which reads them by the clock it finds.
     */
    private readonly now: () => number = steadyWallClock(),
  ) {
    ensurePrivateDir(dir, 'records directory');
    this.removing = join(dir, REMOVING_DIR);
    // What a daemon that stopped meanwhile had not removed yet.
    if (isRealDir(this.removing)) this.empty();
  }

  dirOf(agent: string, sessionId: string): string {
    return join(this.dir, agent, sessionId);
  }

  /**
   * A session's record directory, made if missing, with its agent's: each must be a real directory of
   * agentd's alone. A link planted at either would make writes, the seal's removal of out/ and
   * retention act on the link's target, outside the records directory.
   */
  private ensureDir(agent: string, sessionId: string): string {
    // Never a path of anything but one session's directory (`.`, `..`, a slash): the seal makes what it
    // wrote 0555 and removes out/ there.
    if (!AGENT_NAME.test(agent) || !SESSION_ID.test(sessionId)) {
      throw new AgentdError(
        'UNSAFE_PATH',
        `refused to write the record of session ${JSON.stringify(sessionId.slice(0, 64))} of agent ${JSON.stringify(agent.slice(0, 64))}: not a session id and an agent name, so not a record directory of ${this.dir}`,
        { operation: 'write a sealed record' },
      );
    }
    ensurePrivateDir(join(this.dir, agent), `records directory of agent ${agent}`);
    const dir = this.dirOf(agent, sessionId);
    ensurePrivateDir(dir, `record directory of session ${sessionId}`);
    return dir;
  }

  /**
   * Writes session.json of a session that is not sealed yet (atomically), in the thread pool: it changes
   * at every phase of a session, and a rename can wait for the disk. When changes come faster than the
   * disk takes them, only the newest is written. `onError` hears of a write that failed.
   */
  write(agent: string, sessionId: string, json: object, onError?: (error: AgentdError) => void): void {
    const dir = this.dirOf(agent, sessionId);
    this.newest.set(dir, `${JSON.stringify(json, null, 2)}\n`);
    this.writes.schedule(dir, async () => {
      const text = this.newest.get(dir);
      this.newest.delete(dir);
      if (text === undefined || this.sealing.has(dir) || this.isSealed(dir)) return;
      try {
        this.ensureDir(agent, sessionId);
        await writeFileAtomicAsync(join(dir, RECORD_FILES.json), text, {
          operation: `write the record of session ${sessionId}`,
        });
      } catch (error) {
        onError?.(recordWriteError(error, sessionId, dir));
      }
    });
  }

  /** Resolves once what `write` was given is on disk (or failed to get there). */
  settled(): Promise<void> {
    return this.writes.settledAll();
  }

  /** A record directory that is there and not sealed: a session running, or one whose seal failed. */
  isOpen(dir: string): boolean {
    try {
      const stat = lstatSync(dir);
      return stat.isDirectory() && (stat.mode & 0o222) !== 0;
    } catch {
      return false;
    }
  }

  /** Whether anything is at dir (a link itself, not followed). */
  exists(dir: string): boolean {
    try {
      lstatSync(dir);
      return true;
    } catch {
      return false;
    }
  }

  isSealed(dir: string): boolean {
    try {
      return (lstatSync(dir).mode & 0o222) === 0;
    } catch {
      return false;
    }
  }

  /**
   * Completes and seals a session's record: `pending` written as session.json first, its output archive
   * unpacked into out/ (regular files and directories only, at most `archiveLimit` bytes), its log
   * copied, session.json written last (with the output summary), then every file made 0444 and every
   * directory 0555. Throws when any of it cannot be written, a file of the output for lack of room
   * included (a StateDirError, `full`): the record is then left open, not sealed, to be sealed again.
   */
  async seal(options: {
    agent: string;
    sessionId: string;
    /** The session's log: a file copied as it is, or its content. */
    log?: string | (() => Uint8Array);
    archive?: string;
    archiveLimit: number;
    /** The archive is what the setup step had written when the session's stop killed it. */
    cut?: boolean;
    json: (output: OutputSummary) => object;
    /** session.json until the seal is complete (written first): the session as it ended. */
    pending?: object;
  }): Promise<{ dir: string; output: OutputSummary }> {
    const dir = this.dirOf(options.agent, options.sessionId);
    const under = this.sealing.get(dir);
    if (under) return under;
    // A session.json still on its way would land after the sealed one, or in a sealed directory (root
    // writes there all the same): none starts from now on, and the seal waits for the one under way.
    const sealed = this.writes
      .settled(dir)
      .then(() => this.complete(dir, options))
      .finally(() => this.sealing.delete(dir));
    this.sealing.set(dir, sealed);
    return sealed;
  }

  private async complete(
    dir: string,
    options: Parameters<SealedRecords['seal']>[0],
  ): Promise<{ dir: string; output: OutputSummary }> {
    const { agent, sessionId } = options;
    const json = join(dir, RECORD_FILES.json);
    const out = join(dir, RECORD_FILES.output);
    // Refuses a link planted for the agent or the session (nothing is written or removed through it).
    this.ensureDir(agent, sessionId);
    if (this.isSealed(dir)) return { dir, output: readSummary(dir) };
    let output: OutputSummary;
    try {
      // How the session ended, before anything large: a record the disk has no room to complete still
      // says so (a start that finds it open and has no other record of the session would otherwise take
      // the session for one still running, and settle it a second time).
      if (options.pending !== undefined) {
        writeFileAtomic(json, `${JSON.stringify(options.pending, null, 2)}\n`, {
          operation: `write the record of session ${sessionId}`,
        });
      }
      // A seal cut short by a crash, or that failed, starts again from nothing.
      removeTree(out);
      mkdirSync(out, { mode: 0o700 });
      output = await unpack(options.archive, out, options.archiveLimit, options.cut ?? false);
      if (options.log !== undefined) {
        copyLog(
          options.log,
          join(dir, RECORD_FILES.log),
          `copy the log of session ${sessionId} into its record`,
        );
      }
      // A write that a crash cut short left its temp file: not part of the record.
      for (const name of safeReaddir(dir))
        if (TEMP_JSON_FILE.test(name) || LOG_TEMP_FILE.test(name)) removeQuietly(join(dir, name));
      writeFileAtomic(json, `${JSON.stringify(options.json(output), null, 2)}\n`, {
        durable: true,
        operation: `write the record of session ${sessionId}`,
      });
    } catch (error) {
      // Left open, never sealed as it is (an empty log and out/, session.json of a running session): the
      // caller keeps the session's work dir and seals again once there is room. What this attempt wrote
      // of the output goes, so that a full disk gets its room back (the work dir still has the archive).
      removeTree(out);
      // Saying whether there was no room (and what to do), as every write to the state dir does.
      if (error instanceof AgentdError) throw error;
      const path = (error as NodeJS.ErrnoException).path;
      throw new StateDirError(`seal the record of session ${sessionId}`, path ?? dir, error);
    }
    const tally = { inodes: 1 };
    const bytes = await sealTree(dir, new Set(), tally);
    this.index.set(dir, { agent, sessionId, dir, sealed: true, at: this.now(), bytes, inodes: tally.inodes });
    return { dir, output };
  }

  /**
   * The record of a session, wherever its agent's directory is (history may have forgotten the session
   * long ago): its directory, whether it is sealed, and its session.json (undefined when unreadable).
   */
  find(sessionId: string): { dir: string; sealed: boolean; json: unknown } | undefined {
    const dir = this.locate(sessionId);
    if (dir === undefined) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(readNoFollow(join(dir, RECORD_FILES.json), RECORD_MAX_BYTES).toString('utf8'));
    } catch {
      json = undefined;
    }
    return { dir, sealed: this.isSealed(dir), json };
  }

  /** Whether any agent has a record directory for this session id (history may have let it go). */
  has(sessionId: string): boolean {
    return this.locate(sessionId) !== undefined;
  }

  /**
   * Every record directory, read from disk (once at start; `prune` keeps it current). Links are left
   * alone: neither listed nor removed by retention through them.
   */
  scan(): RecordEntry[] {
    this.index.clear();
    for (const { agent, sessionId, dir } of this.recordDirs()) {
      let at = 0;
      try {
        at = statSync(join(dir, RECORD_FILES.json)).mtimeMs;
      } catch {
        at = lstatSync(dir).mtimeMs;
      }
      const tally = { inodes: 1 };
      const bytes = sizeOf(dir, new Set(), tally);
      this.index.set(dir, {
        agent,
        sessionId,
        dir,
        sealed: this.isSealed(dir),
        at,
        bytes,
        inodes: tally.inodes,
      });
    }
    return [...this.index.values()];
  }

  /** The agents' directories that are real directories (never a link), by agent name. */
  private *agentDirs(): Generator<{ agent: string; path: string }> {
    for (const agent of safeReaddir(this.dir)) {
      const path = join(this.dir, agent);
      if (AGENT_NAME.test(agent) && isRealDir(path)) yield { agent, path };
    }
  }

  private *recordDirs(): Generator<{ agent: string; sessionId: string; dir: string }> {
    for (const { agent, path } of this.agentDirs()) {
      for (const sessionId of safeReaddir(path)) {
        const dir = join(path, sessionId);
        if (SESSION_ID.test(sessionId) && isRealDir(dir)) yield { agent, sessionId, dir };
      }
    }
  }

  /** A session's record directory under whichever agent has one. */
  private locate(sessionId: string): string | undefined {
    if (!SESSION_ID.test(sessionId)) return undefined;
    for (const { path } of this.agentDirs()) {
      const dir = join(path, sessionId);
      if (isRealDir(dir)) return dir;
    }
    return undefined;
  }

  /**
   * Retention: sealed records older than maxAgeMs go (by the records' clock, see the constructor), then
   * the oldest while all of them together take more than maxBytes or are more than maxCount. Records
   * still being written are never removed. Returns what was removed.
   */
  prune(
    maxAgeMs: number,
    maxBytes: number,
    maxCount: number = Number.POSITIVE_INFINITY,
    now: number = this.now(),
  ): RecordEntry[] {
    const sealed = [...this.index.values()].filter((e) => e.sealed).sort((a, b) => a.at - b.at);
    let total = sealed.reduce((sum, e) => sum + e.bytes, 0);
    let count = sealed.length;
    const removed: RecordEntry[] = [];
    for (const entry of sealed) {
      if (now - entry.at <= maxAgeMs && total <= maxBytes && count <= maxCount) break;
      this.discard(entry);
      this.index.delete(entry.dir);
      total -= entry.bytes;
      count--;
      removed.push(entry);
    }
    this.removeEmptyAgentDirs(removed);
    return removed;
  }

  private removeEmptyAgentDirs(removed: readonly RecordEntry[]): void {
    for (const agent of new Set(removed.map((e) => e.agent))) {
      try {
        // An agent directory left empty goes too.
        rmdirSync(join(this.dir, agent));
      } catch {
        // Not empty: other sessions' records are in it.
      }
    }
  }

  /**
   * Retention for room: the oldest sealed records go, but never the newest `keepNewest` sealed ones, until
   * what they take is at least `need` (bytes, and inodes). Records still being written (a running session's, or one
   * whose seal waits for room) are never removed. Returns what was removed.
   */
  pruneForRoom(need: { bytes: number; inodes: number }, keepNewest: number): RecordEntry[] {
    const sealed = [...this.index.values()].filter((e) => e.sealed).sort((a, b) => a.at - b.at);
    const removed: RecordEntry[] = [];
    let bytes = 0;
    let inodes = 0;
    for (const entry of sealed.slice(0, Math.max(0, sealed.length - keepNewest))) {
      if (bytes >= need.bytes && inodes >= need.inodes) break;
      this.discard(entry);
      this.index.delete(entry.dir);
      bytes += entry.bytes;
      inodes += entry.inodes;
      removed.push(entry);
    }
    this.removeEmptyAgentDirs(removed);
    return removed;
  }

  /** What the records retention took out take until their files are removed (see `releasing`). */
  get releasingRoom(): { bytes: number; inodes: number } {
    const room = { bytes: 0, inodes: 0 };
    for (const { bytes, inodes } of this.releasing.values()) {
      room.bytes += bytes;
      room.inodes += inodes;
    }
    return room;
  }

  /** Resolves once the records retention removed are gone from the disk. */
  async emptied(): Promise<void> {
    for (let seen = -1; seen !== this.discarded; ) {
      seen = this.discarded;
      await this.emptying;
    }
  }

  /**
   * Takes a record out of the records directory at once (a rename), and removes its files in the
   * background: an agent can leave 10,000 files in its output, and removing them in one go held the
   * event loop (160 ms a record here; minutes for a retention that drops a thousand). A record whose
   * directory cannot be moved is removed in place.
   */
  private discard(entry: RecordEntry): void {
    try {
      ensurePrivateDir(this.removing, 'directory of records being removed');
      // Moving a directory to another parent updates its `..`: a sealed one (0555) must be writable.
      chmodSync(entry.dir, 0o700);
      renameSync(entry.dir, join(this.removing, `${entry.agent}.${entry.sessionId}`));
    } catch {
      removeTree(entry.dir);
      return;
    }
    this.releasing.set(`${entry.agent}.${entry.sessionId}`, { bytes: entry.bytes, inodes: entry.inodes });
    this.empty();
  }

  /** Removes what is in the directory of records being removed, one removal after another. */
  private empty(): void {
    this.discarded++;
    this.emptying = this.emptying.then(async () => {
      let names: string[];
      try {
        names = await readdir(this.removing);
      } catch {
        return;
      }
      for (const name of names) {
        await removeTreeAsync(join(this.removing, name));
        this.releasing.delete(name);
      }
    });
  }
}

/**
 * Ms since the epoch that only move on with the steady clock (performance.now(): CLOCK_MONOTONIC, which
 * NTP slews but never steps) from the wall clock as it is now. A suspended host adds nothing to it: ages
 * then come out short, and records are kept longer, never removed early.
 */
function steadyWallClock(): () => number {
  const wall = Date.now();
  const steady = performance.now();
  return () => wall + (performance.now() - steady);
}

/** A record directory as a gzipped tar holding `<session>/...`, to a stream. */
export async function exportRecord(dir: string, to: Writable): Promise<void> {
  const { create: createTar } = await import('tar');
  await pipeline(createTar({ gzip: true, cwd: dirname(dir), portable: true }, [basename(dir)]), to);
}

/**
 * Unpacks the archive the setup step made of /agentd/out. Its bytes came from the agent, so: a tar
 * archive (nothing compressed), regular files and directories only (no symbolic links, devices or
 * fifos: a link could point anywhere on the host; a hard link only to a file kept before it, which it
 * becomes another name of in out/), no absolute paths or `..`, no name a terminal or a file manager
 * would act on or show as another (left out and counted as skipped), owned by the daemon and 0600 or
 * 0700 until sealed (never a setuid, setgid or sticky bit, whatever the archive says), at most `limit`
 * bytes and MAX_OUTPUT_ENTRIES files and directories in all (directories an entry's path makes without
 * an entry of their own included).
 *
 * Like the setup step, it reads no more than limit + 1 bytes of the archive: a file the archive is cut
 * in is kept cut short, what came before it whole. The first entry past MAX_OUTPUT_ENTRIES ends the
 * unpacking: nothing after it is read. An archive that ends early (cut at its bound, or damaged) keeps
 * what came before its end; never throws for its content. Throws a StateDirError (`full`) when the
 * filesystem had no room for some of it.
 */
async function unpack(
  archive: string | undefined,
  out: string,
  limit: number,
  cut: boolean,
): Promise<OutputSummary> {
  const summary: OutputSummary = { files: 0, bytes: 0, truncated: false, skipped: 0 };
  if (archive === undefined) return { ...summary, missing: 'the session has no output archive' };
  let size: number;
  let head: Buffer;
  try {
    const stat = lstatSync(archive);
    if (!stat.isFile()) return { ...summary, missing: 'the output archive is not a regular file' };
    size = stat.size;
    head = readBytes(archive, TAR_HEADER_BYTES);
  } catch {
    return {
      ...summary,
      missing:
        'the command did not run to its end, or its output could not be archived (the state dir may have been full as it ended)',
    };
  }
  if (size === 0)
    return { ...summary, missing: 'the output archive is empty: the output directory could not be archived' };
  // tar itself would unpack a compressed archive (with no bound on what it inflates to), whatever
  // bytes 257 on say: only plain tar.
  const compressed = COMPRESSED_MAGIC.some((magic) => head.subarray(0, magic.length).equals(magic));
  if (head.length < TAR_HEADER_BYTES || compressed || !head.subarray(257, 262).equals(USTAR)) {
    return { ...summary, missing: 'the output archive is not a tar archive' };
  }
  // Room for it, before anything is written: an archive that cannot fit (a seal made again every 30 s
  // while the disk stays full) used to be unpacked until the filesystem had no byte left, then removed,
  // failing every other write of the daemon (a trigger's record, a session's log) in that moment.
  const room = roomAt(out);
  const budget = room === undefined ? Number.POSITIVE_INFINITY : room.free - SEAL_LEAVES_FREE;
  const block = room?.block ?? 4096;
  const least = roundUp(Math.min(size, limit + 1), block);
  if (least > budget) throw noRoomFor(`unpack the output into ${out}`, out, least, room);
  /** What the files and directories kept take on disk (each at least a block), against `budget`. */
  let charged = 0;
  /** What the first entry past `budget` would have made it: nothing more is kept, and the seal fails. */
  let overBudget: number | undefined;
  // The setup step stops at limit + 1 bytes: an archive that long was cut.
  summary.truncated = size > limit;
  let total = 0;
  let entries = 0;
  /** An entry did not fit in MAX_OUTPUT_ENTRIES: nothing after it is kept, or read. */
  let full = false;
  /** The last file kept, and its size as its header says: the archive's end may have cut it short. */
  let last: { name: string; size: number } | undefined;
  /** Every directory kept, with its ancestors (so one known means all above it are). */
  const dirs = new Set<string>();
  /** The first file or directory the filesystem had no room for. */
  let noRoom: unknown;
  /** The files counted in summary.files, by their path in the archive, and the entry that counted each. */
  const counted = new Set<string>();
  const counting = new Map<unknown, string>();
  /** A hard link's target as tar writes names, if it is a file kept before it; undefined otherwise. */
  const keptTarget = (linkpath: string): string | undefined => {
    const parts = linkpath.split('/').filter((part) => part !== '' && part !== '.');
    const target = parts.join('/');
    return parts.includes('..') || !counted.has(target) ? undefined : target;
  };
  // Loaded when a session's output is sealed, not at start (tar is about 4 MB of RSS).
  const { Unpack } = await import('tar');
  const failure = await new Promise<unknown>((resolve) => {
    let failed: unknown;
    const unpacker = new Unpack({
      cwd: out,
      preserveOwner: false,
      // The filter gives every entry kept its path as it checked it: relative, no `..`. Otherwise tar
      // makes an entry's directories one by one from out/ (a mkdir and an lstat a level), for every
      // entry: 120 system calls an entry 60 directories deep, 38 s for 10,000 such entries (11 s with
      // one mkdir each). Links it would then follow cannot be in out/: only regular files and
      // directories are written there.
      preservePaths: true,
      strict: false,
      maxDepth: MAX_OUTPUT_DEPTH,
      // The directories a path makes without an entry of its own, and files without a mode.
      dmode: KEPT_DIR_MODE,
      fmode: KEPT_FILE_MODE,
      onwarn: (code: string, _message: string, data: Record<string, unknown>) => {
        // No room for a file or directory (tar names the errno as the code): the output is not thrown
        // away for it, the seal fails and is made again once there is room.
        if (NO_ROOM.has(String(data.code))) noRoom ??= data;
        // An entry tar could not write (the end of a cut or damaged archive is an error below): left
        // out, and not counted as a file the record holds.
        const path = code === 'TAR_ENTRY_ERROR' ? counting.get(data.entry) : undefined;
        if (path === undefined) return;
        counting.delete(data.entry);
        counted.delete(path);
        summary.files--;
        summary.skipped++;
      },
      filter: (path: string, entry: ReadEntry | { size: number; type?: string }) => {
        if (full) return false;
        const type = (entry as ReadEntry).type;
        const parts = path.split('/').filter((part) => part !== '' && part !== '.');
        // A hard link names a file kept before it in this archive (tar archives every name of a file
        // with more than one after the first as a link to it): written as a link to that file in out/,
        // nothing else (a link to anything outside out/, or to what was not kept, is left out).
        const linked = type === 'Link' ? keptTarget(String((entry as ReadEntry).linkpath ?? '')) : undefined;
        if (
          (!KEPT_TYPES.has(type) && linked === undefined) ||
          parts.includes('..') ||
          parts.length > MAX_OUTPUT_DEPTH ||
          path.length > MAX_OUTPUT_PATH ||
          // tar reads names as UTF-8: bytes that are not became U+FFFD (two names could become one),
          // and a name grown past the filesystem's 255 bytes cannot be made.
          path.includes('\uFFFD') ||
          UNSHOWABLE_NAME.test(path) ||
          parts.some((part) => Buffer.byteLength(part) > MAX_NAME_BYTES)
        ) {
          summary.skipped++;
          return false;
        }
        const isDir = type === 'Directory';
        // The name as tar writes it (`./a`, `a`, `/a` and `.//a` are one file).
        const name = parts.join('/');
        // A link in its own place would remove the file it names before linking to it.
        if (linked === name) {
          summary.skipped++;
          return false;
        }
        // `.` or `/`: out/ itself, which is there already (and which tar would not replace by a file,
        // nor say so).
        if (name === '') {
          if (!isDir) summary.skipped++;
          return false;
        }
        // Each directory once, whether it has an entry of its own or tar makes it for an entry inside:
        // those not seen yet, from the deepest up to the first seen (all above that one were seen with
        // it). One look-up for an entry in a known directory, however deep, where building every
        // ancestor's path for every entry cost depth² each.
        const fresh: string[] = [];
        for (let dir = isDir ? name : parentOf(name); dir !== '' && !dirs.has(dir); dir = parentOf(dir)) {
          fresh.push(dir);
        }
        const cost = fresh.length + (isDir ? 0 : 1);
        if (entries + cost > MAX_OUTPUT_ENTRIES) {
          summary.truncated = true;
          full = true;
          return false;
        }
        // Larger than what is left of `limit`: the archive (read to limit + 1 bytes) ends inside it,
        // so it is the last entry, kept cut short (its bytes are counted as written, below).
        // A link's bytes are its file's, written once.
        const bytes = isDir || linked !== undefined ? 0 : (entry as ReadEntry).size;
        // Its blocks, and a block for each directory it makes, before tar writes any of it: the seal
        // stops short of SEAL_LEAVES_FREE rather than fill the disk (a file counted no longer than what
        // is left of the archive's bound: one cut short takes no more).
        const blocks = fresh.length * block + roundUp(Math.min(bytes, Math.max(0, limit + 1 - total)), block);
        if (charged + blocks > budget) {
          overBudget = charged + blocks;
          full = true;
          return false;
        }
        charged += blocks;
        if (total + bytes > limit) summary.truncated = true;
        for (const dir of fresh) dirs.add(dir);
        total += bytes;
        entries += cost;
        if (linked !== undefined) (entry as ReadEntry).linkpath = linked;
        else if (!isDir) last = { name, size: bytes };
        // A name that comes again replaces the file before it: one file.
        if (!isDir && !counted.has(name)) {
          counted.add(name);
          counting.set(entry, name);
          summary.files++;
        }
        // Never what the archive says (a setuid file, a sticky world-writable directory), not even
        // until the seal makes them 0444 and 0555: the daemon's alone meanwhile.
        (entry as ReadEntry).mode = isDir ? KEPT_DIR_MODE : KEPT_FILE_MODE;
        (entry as ReadEntry).path = name;
        return true;
      },
    });
    // Settled once every file tar began is written: after an error too ('end' waits for them); an
    // aborted parse ends nothing, so it settles at once.
    unpacker.on('error', (error: unknown) => {
      failed ??= error;
    });
    // 'close' comes when the parse is over, which can be before tar's last files are written (sealing
    // then would refuse them): it settles only if 'end' never comes.
    let ended = false;
    let closed: NodeJS.Timeout | undefined;
    unpacker.on('end', () => {
      ended = true;
      clearTimeout(closed);
      resolve(failed);
    });
    unpacker.on('close', () => {
      // Usually after 'end'; a timer then would only hold the process up.
      if (ended || closed !== undefined) return;
      closed = setTimeout(() => resolve(failed), UNPACK_END_WAIT_MS);
      closed.unref();
    });
    unpacker.on('abort', (error: unknown) => {
      failed ??= error;
      resolve(failed);
    });
    // By hand rather than pipe: a write or end that throws (tar's own errors) ends the unpacking, not
    // the daemon.
    const fail = (error: unknown) => {
      failed ??= error;
      resolve(failed);
    };
    let input: ReturnType<typeof createReadStream>;
    try {
      const fd = openSync(archive, READ_NO_FOLLOW);
      try {
        regularFileStat(fd, archive);
      } catch (error) {
        closeSync(fd);
        throw error;
      }
      // No further than the setup step's cut (`end` is the last byte read), whatever the archive is.
      input = createReadStream(archive, { fd, start: 0, end: limit });
    } catch (error) {
      fail(error);
      return;
    }
    /** The unpacker asked for no more until it drains. */
    let waiting = false;
    /** Nothing more is read: the input is destroyed. */
    let stopped = false;
    let ending = false;
    const end = () => {
      if (ending) return;
      ending = true;
      try {
        unpacker.end();
      } catch (error) {
        fail(error);
      }
    };
    input.on('data', (chunk) => {
      if (stopped) return;
      try {
        waiting = !unpacker.write(chunk as Buffer);
      } catch (error) {
        stopped = true;
        ending = true;
        input.destroy();
        fail(error);
        return;
      }
      if (full) {
        // Nothing after the entry that did not fit is kept: the rest of the archive is not read (an
        // agent's 50,000 entries after it each cost a parse and a filter). Ended, once tar has taken
        // in what it queued, like an archive cut there: the files it began are written first.
        stopped = true;
        input.destroy();
        if (!waiting) end();
      } else if (waiting) input.pause();
    });
    unpacker.on('drain', () => {
      waiting = false;
      if (stopped) end();
      else input.resume();
    });
    input.on('error', fail);
    input.on('end', end);
  });
  if (overBudget !== undefined)
    throw noRoomFor(`unpack the output into ${out}`, out, overBudget, room, 'at least ');
  noRoom ??= NO_ROOM.has(String((failure as { code?: unknown } | undefined)?.code)) ? failure : undefined;
  if (noRoom !== undefined) throw new StateDirError(`unpack the output into ${out}`, out, noRoom);
  if (last !== undefined) {
    // The last file kept may be cut short by the archive's end (or not written at all): its bytes as
    // written.
    let written = 0;
    try {
      if (counted.has(last.name)) written = lstatSync(join(out, last.name)).size;
    } catch {
      // Not written.
    }
    total -= last.size - Math.min(written, last.size);
  }
  summary.bytes = total;
  if (!summary.truncated) {
    // tar may read past an archive cut between (or inside) headers without a word: its end says so.
    const problem =
      failure !== undefined
        ? ((failure as { code?: string }).code ?? 'unknown error')
        : endsAsTar(archive, size)
          ? undefined
          : 'no end of archive';
    if (cut) {
      summary.damaged =
        'the session was stopped before its output was archived whole (a large /agentd/out takes longer than the stop leaves); what was archived by then is kept';
    } else if (problem !== undefined) {
      summary.damaged = `the output archive ends early or is damaged (${problem}); what came before is kept`;
    }
  }
  return summary;
}

/** The directory a path in the archive is in ('' for out/ itself). */
function parentOf(path: string): string {
  const at = path.lastIndexOf('/');
  return at < 0 ? '' : path.slice(0, at);
}

/**
 * What a seal leaves free on the records' filesystem (the state dir's, by default): as much as the state
 * dir keeps in its reserve, for the daemon's other writes meanwhile (triggers' records, session logs,
 * the notify outbox). A seal that would need more waits for room, as one that failed with ENOSPC does.
 */
const SEAL_LEAVES_FREE = RESERVE_BYTES;

/**
 * Bytes free on dir's filesystem for the daemon (root may use the blocks kept for root, others not), and
 * its block size; undefined when statfs fails (then the writes themselves say whether there is room).
 */
function roomAt(dir: string): { free: number; block: number } | undefined {
  try {
    const fs = statfsSync(dir);
    const blocks = process.geteuid?.() === 0 ? fs.bfree : fs.bavail;
    return { free: blocks * fs.bsize, block: fs.bsize > 0 ? fs.bsize : 4096 };
  } catch {
    return undefined;
  }
}

function roundUp(bytes: number, block: number): number {
  return Math.ceil(bytes / block) * block;
}

function kib(bytes: number): string {
  return `${Math.ceil(Math.max(0, bytes) / 1024)} KiB`;
}

/**
 * A write the filesystem has no room for, refused before it is made (a StateDirError, `full`, as ENOSPC
 * itself would be): saying what it needs, what is free and what the seal leaves to the daemon's other
 * writes.
 */
function noRoomFor(
  operation: string,
  path: string,
  need: number,
  room: { free: number } | undefined,
  more = '',
): StateDirError {
  const free = room === undefined ? '' : `, ${kib(room.free)} is free`;
  const cause = Object.assign(new Error(`ENOSPC: no space left on device, ${operation}`), {
    code: 'ENOSPC',
    path,
  });
  return new StateDirError(
    `${operation}: it needs ${more}${kib(need)}${free}, and a seal leaves ${kib(SEAL_LEAVES_FREE)} of it free for the daemon's other writes`,
    path,
    cause,
  );
}

/** Errno codes of a filesystem (or quota) with no room left: the output fits once there is room. */
const NO_ROOM = new Set(['ENOSPC', 'EDQUOT']);

/** Modes of what is unpacked until the seal makes files 0444 and directories 0555. */
const KEPT_FILE_MODE = 0o600;
const KEPT_DIR_MODE = 0o700;

/** Entry types kept of an output archive: regular files and directories. */
const KEPT_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory']);
/** Deepest path kept of an output archive. */
const MAX_OUTPUT_DEPTH = 64;
/** Longest path kept of an output archive (the directories seen are remembered while it unpacks). */
const MAX_OUTPUT_PATH = 1024;
/** The longest name of one file or directory most filesystems take, in bytes. */
const MAX_NAME_BYTES = 255;
/** After tar's parse closed, how long its file writes may take before the seal goes on without them. */
const UNPACK_END_WAIT_MS = 30_000;
const TAR_HEADER_BYTES = 512;
/** A tar header's magic at byte 257 (POSIX `ustar\0`, GNU `ustar `). */
const USTAR = Buffer.from('ustar');
/** gzip and zstd, which tar recognises by their first bytes. */
const COMPRESSED_MAGIC = [Buffer.from([0x1f, 0x8b]), Buffer.from([0x28, 0xb5, 0x2f, 0xfd])];

/** `bytes` bytes of a file from `at` (fewer at its end), never through a link. */
function readBytes(path: string, bytes: number, at = 0): Buffer {
  const fd = openSync(path, READ_NO_FOLLOW);
  try {
    regularFileStat(fd, path);
    const buffer = Buffer.alloc(bytes);
    return buffer.subarray(0, readSync(fd, buffer, 0, bytes, at));
  } finally {
    closeSync(fd);
  }
}

/** Whether a tar archive ends as tar ends one: two zero blocks (tar then pads to its record size). */
function endsAsTar(path: string, size: number): boolean {
  if (size < 2 * TAR_HEADER_BYTES) return false;
  try {
    return readBytes(path, 2 * TAR_HEADER_BYTES, size - 2 * TAR_HEADER_BYTES).every((byte) => byte === 0);
  } catch {
    return false;
  }
}

/**
 * The session's masked log, or an empty one when it printed nothing (or the log cannot be read): whole
 * or not at all (a temp file renamed), so that a disk with no room leaves no empty log in its place.
 */
function copyLog(from: string | (() => Uint8Array), to: string, operation: string): void {
  let content: Uint8Array = Buffer.alloc(0);
  try {
    // Never through a link someone planted in place of the log; it is bounded (log_max_bytes).
    content = typeof from === 'string' ? readNoFollow(from) : from();
  } catch {
    // No output at all.
  }
  // Anything but a file there is not the daemon's (writeFileAtomic would refuse to replace it).
  if (!isRegularFile(to)) removeTree(to);
  // Not to the disk's last byte, as the output's unpacking (see SEAL_LEAVES_FREE).
  const room = roomAt(dirname(to));
  if (room !== undefined) {
    const need = roundUp(content.byteLength, room.block);
    if (need > room.free - SEAL_LEAVES_FREE) throw noRoomFor(operation, to, need, room);
  }
  writeFileAtomic(to, content, { operation });
}

/**
 * Seals a record directory (files 0444, directories 0555, anything else removed) and returns what it
 * takes on disk (see sizeOf), in one walk. In the thread pool, a few calls at a time: an agent can leave
 * 10,000 files, and chmod and lstat of each on the event loop held it for a quarter of a second a seal.
 */
async function sealTree(
  dir: string,
  seen: Set<string> = new Set(),
  tally: { inodes: number } = { inodes: 0 },
): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    names = [];
  }
  let bytes = 0;
  for (let at = 0; at < names.length; at += SEAL_CONCURRENCY) {
    const sizes = await Promise.all(
      names.slice(at, at + SEAL_CONCURRENCY).map(async (name) => {
        const path = join(dir, name);
        let stat: Stats;
        try {
          stat = await lstat(path);
        } catch {
          return 0;
        }
        const own = entryBytes(stat, seen);
        if (stat.isDirectory()) {
          tally.inodes++;
          return own + (await sealTree(path, seen, tally));
        }
        if (!stat.isFile()) {
          await removeTreeAsync(path);
          return 0;
        }
        if (own > 0) tally.inodes++;
        await chmod(path, 0o444).catch(() => {});
        return own;
      }),
    );
    for (const size of sizes) bytes += size;
  }
  await chmod(dir, 0o555).catch(() => {});
  return bytes;
}

/** Entries of one directory sealed at once. */
const SEAL_CONCURRENCY = 8;

/**
 * What a record takes on disk, as retention counts it: each file and directory its blocks, and at
 * least ENTRY_MIN_BYTES (its inode and a block), so that 10,000 empty files are not counted as nothing.
 */
function sizeOf(
  dir: string,
  seen: Set<string> = new Set(),
  tally: { inodes: number } = { inodes: 0 },
): number {
  let bytes = 0;
  for (const name of safeReaddir(dir)) {
    const path = join(dir, name);
    try {
      const stat = lstatSync(path);
      const own = entryBytes(stat, seen);
      bytes += own;
      if (own > 0) tally.inodes++;
      if (stat.isDirectory()) bytes += sizeOf(path, seen, tally);
    } catch {
      // Gone meanwhile.
    }
  }
  return bytes;
}

/**
 * One file or directory as retention counts it (sizeOf). A file with more than one name (hard links the
 * output kept) counts once, at its first name in `seen`: 10,000 names of one 64 MiB file take 64 MiB,
 * and counted as 640 GB each they would make retention remove every other record to make room.
 */
function entryBytes(stat: Stats, seen: Set<string>): number {
  if (stat.nlink > 1 && !stat.isDirectory()) {
    const inode = `${stat.dev}:${stat.ino}`;
    if (seen.has(inode)) return 0;
    seen.add(inode);
  }
  return Math.max(stat.size, stat.blocks * 512, ENTRY_MIN_BYTES);
}

const ENTRY_MIN_BYTES = 4096;

function readSummary(dir: string): OutputSummary {
  try {
    const json = JSON.parse(
      readNoFollow(join(dir, RECORD_FILES.json), RECORD_MAX_BYTES).toString('utf8'),
    ) as {
      output?: OutputSummary;
    };
    if (json.output) return json.output;
  } catch {
    // Fall through.
  }
  return { files: 0, bytes: 0, truncated: false, skipped: 0 };
}

/** Why a session.json could not be written, naming the session (a refused directory says why itself). */
function recordWriteError(error: unknown, sessionId: string, dir: string): AgentdError {
  if (error instanceof StateDirError) return error;
  if (error instanceof AgentdError) {
    return new AgentdError(error.code, `cannot write the record of session ${sessionId}: ${error.message}`, {
      operation: `write the record of session ${sessionId}`,
      cause: error,
    });
  }
  return new StateDirError(`create the record of session ${sessionId}`, dir, error);
}

/** A regular file itself, not a link to one. */
function isRegularFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

/** A directory itself, not a link to one. */
function isRealDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
