import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ensurePrivateDir } from './ownership.js';
import {
  FileTooLargeError,
  NotRegularFileError,
  readNoFollow,
  removeQuietly,
  StateDirError,
  TEMP_JSON_FILE,
  writeFileAtomic,
} from './state-files.js';

export { StateDirError };

const SESSION_ID = /^[0-9a-f]{16}$/;

/**
 * The largest session record read back (the state dir's, or session.json of a record directory): one
 * agentd writes is a few KiB (its longest fields are bounded: 64 inputs, messages cut at a few hundred
 * characters). A larger one is not agentd's, and is not read into memory.
 */
export const RECORD_MAX_BYTES = 1024 * 1024;

/**
 * The room kept: written, so the filesystem has allocated it. About 80 records of 1.5 KB, the
 * phases and outcomes of the sessions that ran while the state dir was full.
 */
const RESERVE_FILE = '.reserve';
const RESERVE_TEMP = /^\.reserve\.\d+\.[0-9a-f]+\.tmp$/;
/** Kept free in the state dir (the reserve file), and left free by a seal (see sealed-records.ts). */
export const RESERVE_BYTES = 128 * 1024;

/**
 * Files sessions/quarantine keeps: records moved aside and the logs that joined them (tidyQuarantine).
 * The newest are kept; older ones are removed at start. Without a bound, every start that found
 * unreadable records added them for good, with their logs (up to log_max_bytes each) left in sessions/.
 */
export const QUARANTINE_MAX_FILES = 200;
/**
 * What the quarantine's files take on disk at most (their allocated blocks: a sparse file counts what it
 * takes, a directory planted where a record goes what is under it), beside QUARANTINE_MAX_FILES: a
 * session's log is up to log_max_bytes (1 MiB) and a record moved aside for its size has no bound at all,
 * so 200 files could hold hundreds of megabytes of the state dir's filesystem for good (measured: three
 * starts that found 70 unreadable records of 1.5 MiB each left 300 MiB there). The newest file is kept
 * whatever its size, for the operator the warning named it to.
 */
export const QUARANTINE_MAX_BYTES = 64 * 1024 * 1024;
/** Entries under a directory in the quarantine looked at to size it; what lies beyond is not counted. */
const SIZED_ENTRIES_MAX = 10_000;
/** A file the quarantine holds: its name when moved there, and when (ms since the epoch). */
const QUARANTINED = /^(.+)\.(\d+)$/;
/** A quarantined record of a session id: `<id>.json.<ms>`. */
const QUARANTINED_RECORD = /^([0-9a-f]{16})\.json\.\d+$/;

/** What the store needs of a record; the record's schema is the sessions layer's (sessions/records.ts). */
export interface StoredRecord {
  id: string;
  outcome?: string;
  finishedAt?: string;
}

/** Validates what is read back: a zod schema, or anything with the same `parse`. */
export interface RecordSchema<R> {
  parse(data: unknown): R;
}

export interface SessionStoreOptions {
  /** A record write failed and is kept in memory until the state dir takes writes again. */
  onWriteFailure?: (error: StateDirError) => void;
  /** The quarantine's bound on disk (QUARANTINE_MAX_BYTES unless given: tests give a small one). */
  quarantineMaxBytes?: number;
}

/** What tidyQuarantine did. */
export interface QuarantineTidied {
  /** Logs of quarantined records moved into the quarantine. */
  logsMoved: string[];
  /** Files (or planted directories) removed, the oldest, beyond the quarantine's bounds. */
  removed: number;
  /** What those took on disk. */
  removedBytes: number;
  /** What the quarantine's files still take on disk. */
  keptBytes: number;
}

/** A record file that could not be read, moved aside at start. */
export interface QuarantinedRecord {
  file: string;
  movedTo: string | undefined;
  reason: string;
  /**
   * The session's log, left in sessions/ (a session rebuilt later from its container's labels is
   * followed from where it ends): the next start moves it into the quarantine when the session has no
   * record again (tidyQuarantine). Undefined when it has none.
   */
  log?: string;
}

/**
 * Session records as one JSON file each under <state_dir>/sessions, written atomically (temp file
 * + rename) so a crash never leaves half a record. The directory must be the daemon's own (see
 * ownership.ts); files are never opened through a symbolic link.
 *
 * Only the record of a newly accepted session must reach the disk before the daemon answers
 * (`accept`, which throws when it cannot). Later changes (phases, outcome) are written when they
 * happen; when the state dir is full they are kept in memory, served from there, and written by
 * `flush` once there is room, so a full disk never stops a running session.
 */
export class SessionStore<SessionRecord extends StoredRecord = StoredRecord> {
  readonly dir: string;
  readonly quarantineDir: string;
  /** Records whose newest version is not on disk yet, by session id. */
  private readonly pending = new Map<string, SessionRecord>();
  /** Room kept in the state dir for what waits in memory when the daemon stops (writeWaiting). */
  private readonly reservePath: string;
  private reserved: boolean;
  /** The sessions whose record this start's `list` quarantined: their logs stay for now (see tidyQuarantine). */
  private readonly quarantinedNow = new Set<string>();

  constructor(
    stateDir: string,
    private readonly schema: RecordSchema<SessionRecord>,
    private readonly options: SessionStoreOptions = {},
  ) {
    this.dir = join(stateDir, 'sessions');
    this.quarantineDir = join(this.dir, 'quarantine');
    ensurePrivateDir(this.dir, 'sessions directory');
    this.reservePath = join(stateDir, RESERVE_FILE);
    this.reserved = this.keepReserve();
  }

  logPath(id: string): string {
    return join(this.dir, `${id}.log`);
  }

  /** Writes the record of a newly accepted session durably; throws StateDirError when it cannot. */
  accept(record: SessionRecord): void {
    this.writeFile(record, true);
    this.pending.delete(record.id);
  }

  /** Writes a record now if the state dir takes it, else keeps it for `flush`. */
  put(record: SessionRecord): void {
    try {
      this.writeFile(record, false);
      this.pending.delete(record.id);
    } catch (error) {
      this.pending.set(record.id, record);
      this.options.onWriteFailure?.(asStateDirError(error, record.id));
    }
  }

  read(id: string): SessionRecord | undefined {
    if (!SESSION_ID.test(id)) return undefined;
    const pending = this.pending.get(id);
    if (pending) return pending;
    try {
      return this.parse(readNoFollow(this.recordPath(id), RECORD_MAX_BYTES), id);
    } catch {
      return undefined;
    }
  }

  update(id: string, change: (record: SessionRecord) => SessionRecord): SessionRecord | undefined {
    const current = this.read(id);
    if (!current) return undefined;
    const next = change(current);
    this.put(next);
    return next;
  }

  /** Records still waiting for room in the state dir. */
  get unwritten(): number {
    return this.pending.size;
  }

  /**
   * Writes what waits in memory, then checks that the state dir takes a durable write. Throws
   * StateDirError when it does not: the daemon stays degraded.
   */
  flush(): void {
    for (const record of [...this.pending.values()]) {
      this.writeFile(record, false);
      this.pending.delete(record.id);
    }
    // Made again before the daemon counts the state dir as writable; then the probe as well (the
    // reserve may have taken the last room).
    if (!this.reserved) this.makeReserve();
    const probe = join(this.dir, `.probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      // A page's worth: on a full filesystem even one byte fails, but a real record needs room.
      writeFileAtomic(probe, Buffer.alloc(4096, 0x20), {
        durable: true,
        operation: 'check that the state dir takes writes',
      });
    } finally {
      removeQuietly(probe);
    }
  }

  /**
   * At the daemon's end: what waits in memory (the state dir was full) is written in the room kept for
   * it, so that the next start does not recover a session that ended as still running (or still
   * queued). Returns the ids it could not write.
   */
  writeWaiting(): string[] {
    if (this.pending.size === 0) return [];
    if (this.reserved) {
      removeQuietly(this.reservePath);
      this.reserved = false;
    }
    const lost: string[] = [];
    for (const record of [...this.pending.values()]) {
      try {
        this.writeFile(record, true);
        this.pending.delete(record.id);
      } catch {
        lost.push(record.id);
      }
    }
    return lost;
  }

  /**
   * Every readable record. A file that cannot be read as a record is moved to sessions/quarantine
   * and reported to onQuarantine; temp files left by a crash are removed.
   */
  list(onQuarantine?: (bad: QuarantinedRecord) => void): SessionRecord[] {
    const records: SessionRecord[] = [];
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      if (TEMP_JSON_FILE.test(name)) {
        removeQuietly(path);
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const id = name.slice(0, -'.json'.length);
      const pending = this.pending.get(id);
      if (pending) {
        records.push(pending);
        continue;
      }
      try {
        records.push(this.parse(readNoFollow(path, RECORD_MAX_BYTES), id));
      } catch (error) {
        onQuarantine?.(this.quarantine(name, error));
      }
    }
    for (const [id, record] of this.pending) {
      if (!records.some((r) => r.id === id)) records.push(record);
    }
    return records;
  }

  /**
   * At start, once every record is known (`list`, and those rebuilt from record directories: `hasRecord`):
   * the log of a session whose record an earlier start quarantined, and which has no record again (none
   * was rebuilt from its container's labels since), is moved beside its record (a log of a record
   * quarantined by this start stays where it is, for a session rebuilt from its container's labels); then
   * the quarantine keeps its newest files, at most QUARANTINE_MAX_FILES of them and at most
   * QUARANTINE_MAX_BYTES on disk (the newest is kept whatever its size); older ones are removed. Returns
   * the logs moved and what was removed; quiet about what cannot be moved or removed.
   */
  tidyQuarantine(hasRecord: (id: string) => boolean): QuarantineTidied {
    const logsMoved: string[] = [];
    let names: string[];
    try {
      names = readdirSync(this.quarantineDir);
    } catch {
      return { logsMoved, removed: 0, removedBytes: 0, keptBytes: 0 };
    }
    const now = Date.now();
    for (const name of names) {
      const id = QUARANTINED_RECORD.exec(name)?.[1];
      if (id === undefined || this.quarantinedNow.has(id) || hasRecord(id)) continue;
      for (const log of [this.logPath(id), `${this.logPath(id)}.1`]) {
        if (!present(log)) continue;
        const moved = `${log.slice(this.dir.length + 1)}.${now}`;
        try {
          // rename moves a symbolic link itself, never its target.
          renameSync(log, join(this.quarantineDir, moved));
          names.push(moved);
          logsMoved.push(log);
        } catch {
          // Left where it is.
        }
      }
    }
    const held = names
      .map((name) => ({ name, at: Number(QUARANTINED.exec(name)?.[2]) }))
      .filter((entry) => Number.isSafeInteger(entry.at))
      .sort((a, b) => b.at - a.at || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const maxBytes = this.options.quarantineMaxBytes ?? QUARANTINE_MAX_BYTES;
    let removed = 0;
    let removedBytes = 0;
    let keptBytes = 0;
    let cutting = false;
    for (const [index, { name }] of held.entries()) {
      const path = join(this.quarantineDir, name);
      const bytes = diskBytes(path);
      // Newest first: the first file past either bound goes, and every older one.
      cutting ||= index >= QUARANTINE_MAX_FILES || (index > 0 && keptBytes + bytes > maxBytes);
      if (cutting) {
        try {
          // A directory planted where a record goes was moved here as it was.
          rmSync(path, { recursive: true, force: true });
          removed++;
          removedBytes += bytes;
          continue;
        } catch {
          // Stays.
        }
      }
      keptBytes += bytes;
    }
    return { logsMoved, removed, removedBytes, keptBytes };
  }

  /** Removes records and their logs (the caller knows which: the journal's index holds every record). */
  remove(ids: readonly string[]): void {
    for (const id of ids) {
      this.pending.delete(id);
      removeQuietly(this.recordPath(id));
      removeQuietly(this.logPath(id));
      // The older half of a log that reached half its bound (runner/session-log.ts).
      removeQuietly(`${this.logPath(id)}.1`);
    }
  }

  /** The reserve is there (an earlier daemon's is kept), or made now; false if the state dir has no room. */
  private keepReserve(): boolean {
    // What a crash while making it left, and while writing the state dir's other files (schedules.json
    // at every firing, seccomp.json): nothing else removes those, and each crash would add one for good.
    // Only this daemon writes here (its pid file), and none of its writes is under way yet.
    for (const name of readdirSync(dirname(this.reservePath))) {
      if (RESERVE_TEMP.test(name) || TEMP_JSON_FILE.test(name))
        removeQuietly(join(dirname(this.reservePath), name));
    }
    try {
      const stat = lstatSync(this.reservePath);
      if (stat.isFile() && stat.size >= RESERVE_BYTES) return true;
    } catch {
      // None yet.
    }
    try {
      this.makeReserve();
      return true;
    } catch {
      return false;
    }
  }

  private makeReserve(): void {
    // Random bytes: a compressing filesystem (ZFS, btrfs) stores zeros as nothing, and keeps no room.
    writeFileAtomic(this.reservePath, randomBytes(RESERVE_BYTES), {
      durable: true,
      operation: 'keep room in the state dir for the records of sessions that end while it is full',
    });
    this.reserved = true;
  }

  private recordPath(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  private writeFile(record: SessionRecord, durable: boolean): void {
    writeFileAtomic(this.recordPath(record.id), `${JSON.stringify(record)}\n`, {
      durable,
      operation: `record session ${record.id}`,
    });
  }

  /** Parses a record file; its id must match its file name. */
  private parse(content: Buffer, id: string): SessionRecord {
    const record = this.schema.parse(JSON.parse(content.toString('utf8')));
    if (record.id !== id) throw new Error(`the record says session ${record.id}, its file name ${id}`);
    return record;
  }

  private quarantine(name: string, error: unknown): QuarantinedRecord {
    const file = join(this.dir, name);
    const reason = describeBadRecord(error);
    let movedTo: string | undefined = join(this.quarantineDir, `${name}.${Date.now()}`);
    try {
      ensurePrivateDir(this.quarantineDir, 'quarantine directory');
      // rename moves a symbolic link itself, never its target.
      renameSync(file, movedTo);
    } catch {
      // Could not move it aside (e.g. the directory cannot be made): leave it, skip it.
      movedTo = undefined;
    }
    const id = name.slice(0, -'.json'.length);
    if (movedTo !== undefined) this.quarantinedNow.add(id);
    const log = SESSION_ID.test(id) && present(this.logPath(id)) ? this.logPath(id) : undefined;
    return { file, movedTo, reason, ...(log === undefined ? {} : { log }) };
  }
}

/**
 * What a path takes on disk (allocated blocks, so a sparse file counts what it takes), a directory with
 * what is under it (at most SIZED_ENTRIES_MAX entries looked at); never follows a link; 0 when gone.
 */
function diskBytes(path: string): number {
  let total = 0;
  let budget = SIZED_ENTRIES_MAX;
  const pending = [path];
  for (let next = pending.pop(); next !== undefined && budget-- > 0; next = pending.pop()) {
    try {
      const stat = lstatSync(next);
      total += stat.blocks * 512;
      if (stat.isDirectory()) for (const name of readdirSync(next)) pending.push(join(next, name));
    } catch {
      // Gone, or not readable: counts as nothing.
    }
  }
  return total;
}

/** Whether something is at path (a link itself, not followed). */
function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function describeBadRecord(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') return 'it is a symbolic link';
  if (error instanceof FileTooLargeError)
    return `it is ${error.size} bytes, more than any session record agentd writes (at most ${error.maxBytes})`;
  if (error instanceof NotRegularFileError) return `it is ${error.kind}, not a regular file`;
  if (code) return `it cannot be read (${code})`;
  if (error instanceof SyntaxError) return `it is not JSON (${error.message})`;
  if (error instanceof Error && error.name === 'ZodError') {
    // A field that is there and of its type, but not a value agentd writes (the record schema says which).
    const custom = (error as Error & { issues?: { code?: string; message?: string }[] }).issues?.find(
      (issue) => issue.code === 'custom',
    );
    return custom?.message ? `it is not a session record: ${custom.message}` : 'it is not a session record';
  }
  return error instanceof Error ? error.message : String(error);
}

function asStateDirError(error: unknown, id: string): StateDirError {
  return error instanceof StateDirError ? error : new StateDirError(`record session ${id}`, id, error);
}
