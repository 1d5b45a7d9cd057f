import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { type DiskSpace, diskSpace } from '../adapters/fs-checks.js';
import { cutNoteOf, wasSearched, withheldReason } from '../adapters/output-archive.js';
import { type OutputSummary, SealedRecords } from '../adapters/sealed-records.js';
import type { SessionFiles } from '../adapters/session-files.js';
import { StateDirError } from '../adapters/state-files.js';
import { formatMinFree, type MinFree, minFreeBytes } from '../config/resources.js';
import { errorFields, errorMessage } from '../errors.js';
import { renderSessionLog, writeOwedGapNote } from '../runner/session-log.js';
import { type SessionRecord, sessionRecordSchema } from '../sessions/records.js';
import { outputArchiveLimit } from '../sessions/run-plan.js';

/** The output size a record without one was run with (the built-in default). */
const DEFAULT_OUTPUT_BYTES = 64 * 1024 * 1024;

/**
 * Whether a session's missing output is one its container's archive could not be written for in the
 * state dir (the setup step's words in out.withheld: src/runner/setup-script.ts), not one withheld for a
 * credential value or never made.
 */
function archiveUnkept(reason: string): boolean {
  return (
    reason.startsWith('the state dir was full when the session ended') ||
    reason.startsWith('its output could not be archived in the state dir')
  );
}

export interface RecordKeeperOptions {
  recordsDir: string;
  maxAgeMs: number;
  maxBytes: number;
  /** At most this many sealed records are kept (the oldest go first). */
  maxCount?: number;
  /**
   * daemon.records_min_free: while the records' filesystem has less free, the oldest sealed records go
   * (never the newest RECORDS_KEPT_FOR_ROOM), until it has. None when absent or 0 (0%): no statfs then.
   */
  minFree?: MinFree;
  /** How the records' filesystem's free space is read (statfs unless given: tests give a fake). */
  space?: DiskSpace;
}

/**
 * The newest sealed records records_min_free never removes: the records of sessions that just ended, which
 * an operator looks at first, are not removed seconds after their seal because something else filled the
 * filesystem (removing them would not make room that lasts either).
 */
export const RECORDS_KEPT_FOR_ROOM = 10;

/** Ids a `records.pruned` line lists at most; `count` says how many were removed. */
const PRUNED_IDS_LOGGED = 100;
/** Sessions whose unwritten record was logged, remembered at most (see warn); as many unsealed ones. */
const FAILED_REMEMBERED = 1000;
/** A failed seal is made again after this, doubled after each failure up to SEAL_RETRY_MAX_MS. */
const SEAL_RETRY_FIRST_MS = 1000;
/**
 * The longest wait between two seals of one record: the time room can take to be noticed. Not less: an
 * attempt on a disk with a little room left can unpack megabytes before it fails.
 */
const SEAL_RETRY_MAX_MS = 30_000;

/**
 * `output.missing` of a finished session whose record is not sealed yet (its filesystem had no room):
 * its output and log wait in its work dir. Also says, in the state dir's record, that its outcome was
 * published: a start that finds it seals the record, and does not publish the outcome a second time.
 */
export const SEAL_PENDING =
  'not in its record yet: the record could not be sealed (the log line session.record_unsealed says why, most often a full disk); agentd keeps the output and the log, and seals them in as soon as it can';

/** The output summary of a session whose record waits to be sealed (see SEAL_PENDING). */
export function sealPending(): OutputSummary {
  return { files: 0, bytes: 0, truncated: false, skipped: 0, missing: SEAL_PENDING };
}

export function isSealPending(output: OutputSummary | undefined): boolean {
  return output?.missing === SEAL_PENDING;
}

const SEAL_FAILED = 'not kept: the record could not be sealed (';

/**
 * The output summary of a session whose record could not be sealed for a reason other than room (a link
 * planted for it, a wrong owner or mode, a read-only filesystem): not tried again, its work dir removed.
 */
function sealFailed(error: unknown): OutputSummary {
  return {
    files: 0,
    bytes: 0,
    truncated: false,
    skipped: 0,
    missing: `${SEAL_FAILED}${errorMessage(error)}); the log line session.record_unwritten says what to fix`,
  };
}

/**
 * Whether a finished session's state-dir record says its record was sealed: its output summary is one a
 * seal wrote (not SEAL_PENDING, nor a failed seal's). Its record directory missing then means retention
 * removed it, not that a seal is owed.
 */
function sealedOnce(record: SessionRecord): boolean {
  const { output } = record;
  return output !== undefined && !isSealPending(output) && !output.missing?.startsWith(SEAL_FAILED);
}

/**
 * Whether a seal failed for lack of room (ENOSPC, EDQUOT, on any write of the seal, the record's
 * directories included): room comes back as retention, history or the operator frees some, so the seal is
 * made again and the session's output waits for it. Not EROFS: a filesystem that is read-only (mounted so,
 * or remounted so by the kernel after I/O errors) needs the operator, may stay so for good, and keeping
 * every session's output meanwhile would fill the state dir; like a planted link or a wrong owner, it is
 * logged once and the record left as it is (a next start seals it, should the filesystem take writes).
 */
function noRoom(error: unknown): boolean {
  // The errno is the cause's (ensurePrivateDir's UNSAFE_PATH wraps the mkdir that failed).
  for (let cause = error, depth = 0; typeof cause === 'object' && cause !== null && depth < 4; depth++) {
    if (cause instanceof StateDirError) return cause.full;
    const { code } = cause as { code?: unknown };
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

/** What one seal did: sealed, or given up (not for lack of room: `output` says why). */
interface SealAttempt {
  output: OutputSummary;
  sealed: boolean;
}

/**
 * The finished sessions whose record waits to be sealed (their output and log held in the state dir's
 * work dir until there is room), as `agentd status` and the metrics show them: how many, and the one
 * that ended first, with when it ended (its record's wall-clock time; absent in a record that has none).
 */
export interface WaitingToSeal {
  count: number;
  oldest: { session: string; finishedAt?: string } | undefined;
}

/** A finished session whose seal failed: sealed again when due. */
interface Unsealed {
  record: SessionRecord;
  logFile: string;
  /**
   * When to try again, by the steady clock (performance.now(): a wall clock set back 2 h would hold every
   * seal up 2 h), and the wait after that attempt should it fail too.
   */
  due: number;
  wait: number;
}

/**
 * Each session's sealed record (see adapters/sealed-records.ts) as the journal keeps it: session.json
 * rewritten whenever the session's record changes, completed and sealed when it ends (its output
 * unpacked from the work dir, its log copied), retention applied after every seal. A record that
 * cannot be written never stops a session: the problem is logged, once per session. A seal that fails
 * for lack of room leaves the record open, and is made again, on a timer and at each `retry`, until it
 * succeeds; one that fails otherwise is not (see noRoom).
 */
export class RecordKeeper {
  readonly records: SealedRecords;
  private readonly failed = new Set<string>();
  /** records.room_low was logged, and the floor has not been reached since. */
  private roomLow = false;
  /** Finished sessions whose seal failed, oldest first: their work dir (output and log) waits for it. */
  private readonly unsealed = new Map<string, Unsealed>();
  private retrying: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Stopping: no attempt is started any more (see close). */
  private closed = false;
  /**
   * Told of each record sealed by a later attempt (its outcome was published when the first failed), or
   * given up by one (its filesystem has room now, but takes no write): the journal writes its output
   * summary into the state dir's record and removes its work dir.
   */
  onSealedLate: (record: SessionRecord, output: OutputSummary) => void = () => {};

  constructor(
    private readonly options: RecordKeeperOptions,
    private readonly files: SessionFiles,
    private readonly log: Logger,
  ) {
    this.records = new SealedRecords(options.recordsDir);
  }

  dirOf(agent: string, sessionId: string): string {
    return this.records.dirOf(agent, sessionId);
  }

  /** A session's record as its record directory keeps it (retention, not history, decides how long). */
  find(sessionId: string): SessionRecord | undefined {
    const found = this.records.find(sessionId);
    const parsed = sessionRecordSchema.safeParse(found?.json);
    // Its own agent's and session's, as the directory it was found in says: a session.json naming another
    // agent would be sealed in that agent's directory, leaving this one open for ever.
    if (!found || !parsed.success || parsed.data.id !== sessionId) return undefined;
    if (found.dir !== this.records.dirOf(parsed.data.agent, sessionId)) return undefined;
    return { ...parsed.data, recordDir: found.dir };
  }

  /** Whether a session id has a record directory: an id is used once, even after history let it go. */
  has(sessionId: string): boolean {
    return this.records.has(sessionId);
  }

  /**
   * At start, before `recover`: reads every record directory from disk (the one look at them a start
   * takes) and returns the open ones of sessions the state dir has no record of (it was unreadable and
   * quarantined, or deleted): their session.json as a record, to be recovered like any other; those
   * whose session.json cannot be read either, by directory.
   */
  strays(known: (sessionId: string) => boolean): { records: SessionRecord[]; unreadable: string[] } {
    const records: SessionRecord[] = [];
    const unreadable: string[] = [];
    for (const { sessionId, dir, sealed } of this.records.scan()) {
      if (sealed || known(sessionId)) continue;
      const record = this.find(sessionId);
      if (record?.recordDir === dir) records.push(record);
      else unreadable.push(dir);
    }
    return { records, unreadable };
  }

  /**
   * session.json of a session that is not over yet (written in the background: see SealedRecords.write).
   * One that finds no room is not warned of: the seal writes it whole, and says so if it cannot.
   */
  write(record: SessionRecord): void {
    this.records.write(record.agent, record.id, sessionJson(record), (error) => {
      if (!noRoom(error)) this.warn(record.id, error);
    });
  }

  /**
   * Resolves once every session.json given to `write` is written (or failed), and a seal made again that
   * was under way is done (its onSealedLate told): nothing is written after the daemon's last writes.
   */
  async settled(): Promise<void> {
    await this.retrying;
    await this.records.settled();
  }

  /**
   * Completes and seals a finished session's record. Never throws: when it cannot be sealed for lack of
   * room, undefined is returned, the record is left open and sealed again later (see retry); the
   * session's work dir must be kept until then (see waiting). When it cannot be sealed for any other
   * reason, session.record_unwritten is logged once and the output summary says why: nothing is kept
   * for a later attempt.
   */
  async seal(record: SessionRecord, logFile: string): Promise<OutputSummary | undefined> {
    return (await this.attempt(record, logFile))?.output;
  }

  private async attempt(record: SessionRecord, logFile: string): Promise<SealAttempt | undefined> {
    const paths = this.files.paths(record.id);
    // The runner withheld the archive (it held a credential value), or no daemon searched it (one
    // stopped between the container's end and the search): the record says why instead.
    const withheld =
      withheldReason(paths.withheld) ??
      (existsSync(paths.archive) && !wasSearched(paths.archive, paths.searched)
        ? 'withheld: the output archive was not searched for credential values (a daemon stopped before it could be, or the search failed)'
        : undefined);
    const described = (output: OutputSummary): OutputSummary =>
      withheld === undefined ? output : { ...output, missing: withheld };
    try {
      const { output } = await this.records.seal({
        agent: record.agent,
        sessionId: record.id,
        // As `agentd logs` shows it: the text of each line, and where lines are missing.
        // Its gap note first, if it still owes one: a copy without it would end where the disk filled,
        // saying nothing (no room for it yet: the seal waits for room as for the rest).
        log: () => {
          writeOwedGapNote(logFile);
          return Buffer.from(renderSessionLog(logFile));
        },
        ...(withheld === undefined ? { archive: paths.archive } : {}),
        archiveLimit: outputArchiveLimit(record.outputLimit ?? DEFAULT_OUTPUT_BYTES),
        cut: existsSync(cutNoteOf(paths.archive)),
        json: (output) => sessionJson({ ...record, output: described(output) }),
        pending: sessionJson({ ...record, output: sealPending() }),
      });
      this.failed.delete(record.id);
      this.unsealed.delete(record.id);
      this.prune();
      if (withheld !== undefined && archiveUnkept(withheld)) this.unkept(record.id, withheld);
      return { output: described(output), sealed: true };
    } catch (error) {
      if (noRoom(error)) {
        this.sealLater(record, logFile, error);
        return undefined;
      }
      // No amount of waiting fixes it: made again, it would keep the session's output in the state dir
      // (whatever daemon.history says) and be tried every 30 s for the daemon's life.
      this.unsealed.delete(record.id);
      this.warn(record.id, error);
      return { output: sealFailed(error), sealed: false };
    }
  }

  /**
   * A warning once a session's record is sealed without the output its container left, which the state
   * dir had no room to archive (or refused otherwise): without it only `agentd show` would say so.
   */
  private unkept(session: string, reason: string): void {
    this.log.warn(
      { event: 'session.output_unkept', session, reason },
      `the output of session ${session} is not kept: ${reason}; free space there (the records take up to daemon.records_max_size, whatever the filesystem holds: see agentd doctor)`,
    );
  }

  /**
   * Whether a finished session's record waits to be sealed: its state-dir record and its work dir must
   * stay (a start seals it from them). Known by this daemon, or its record directory is still open.
   */
  waiting(record: SessionRecord): boolean {
    if (this.unsealed.has(record.id)) return true;
    // A sealed record's summary is in the state dir's record (but for a stop in between): only those
    // without one are looked at on disk.
    if (record.recordDir === undefined || (record.output !== undefined && !isSealPending(record.output)))
      return false;
    return this.records.isOpen(record.recordDir);
  }

  /**
   * The finished sessions this daemon holds whose record waits to be sealed (see WaitingToSeal): those
   * whose seal failed for lack of room, by this daemon or at its start's recovery, and not sealed since.
   */
  waitingToSeal(): WaitingToSeal {
    let oldest: { session: string; finishedAt?: string } | undefined;
    let oldestAt = Number.POSITIVE_INFINITY;
    for (const [session, { record }] of this.unsealed) {
      const at = record.finishedAt === undefined ? Number.NaN : Date.parse(record.finishedAt);
      // One without a readable time counts, but is named only when no other has one.
      if (oldest === undefined || at < oldestAt) {
        oldest = { session, ...(record.finishedAt === undefined ? {} : { finishedAt: record.finishedAt }) };
        if (!Number.isNaN(at)) oldestAt = at;
      }
    }
    return { count: this.unsealed.size, oldest };
  }

  private waitingById(id: string, finished: ReadonlyMap<string, SessionRecord>): boolean {
    const record = finished.get(id);
    return record === undefined ? this.unsealed.has(id) : this.waiting(record);
  }

  /**
   * Seals again the records whose seal failed and whose time has come by `now` (the steady clock's),
   * one attempt at a time.
   */
  retry(now: number = performance.now()): Promise<void> {
    // A stopping daemon starts none (its next start seals what is left); one under way goes on (settled).
    if (this.closed) return this.retrying ?? Promise.resolve();
    this.retrying ??= this.retryDue(now)
      .catch((error: unknown) => {
        // A bug (seal never throws): logged, and the records are tried again on the timer.
        this.log.error({ event: 'session.record_unsealed', err: error }, 'sealing records again failed');
      })
      .finally(() => {
        this.retrying = undefined;
        this.schedule();
      });
    return this.retrying;
  }

  /**
   * No more attempts, on the timer or at `retry` (a stop: a next start seals what is left); one under way
   * ends, and `settled` waits for it.
   */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async retryDue(now: number): Promise<void> {
    // Room for them first: the floor frees it from the oldest sealed records (records_min_free).
    this.keepRoom();
    for (const [id, { record, logFile, due }] of [...this.unsealed]) {
      if (due > now || !this.unsealed.has(id)) continue;
      const attempt = await this.attempt(record, logFile);
      if (attempt === undefined) continue;
      if (attempt.sealed) {
        this.log.info(
          { event: 'session.record_sealed', session: id, dir: record.recordDir },
          `sealed the record of session ${id}, which had waited for room`,
        );
      }
      this.onSealedLate(record, attempt.output);
    }
  }

  /** The timer of the next attempt due, unless one is under way (it sets the timer when it ends). */
  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed || this.retrying !== undefined || this.unsealed.size === 0) return;
    const due = Math.min(...[...this.unsealed.values()].map((u) => u.due));
    // Never holds a stopping daemon up: its next start seals what is left.
    this.timer = setTimeout(() => void this.retry(), Math.max(0, due - performance.now()));
    this.timer.unref();
  }

  /** A seal that failed: made again later, with a wait doubled at each failure; logged once. */
  private sealLater(record: SessionRecord, logFile: string, error: unknown): void {
    const before = this.unsealed.get(record.id);
    const wait = before === undefined ? SEAL_RETRY_FIRST_MS : Math.min(before.wait * 2, SEAL_RETRY_MAX_MS);
    // Re-inserted last: the oldest first when one has to go.
    this.unsealed.delete(record.id);
    this.unsealed.set(record.id, { record, logFile, due: performance.now() + wait, wait });
    if (this.unsealed.size > FAILED_REMEMBERED) {
      const [oldest] = this.unsealed.keys();
      // Its work dir and open record stay: the next start seals it.
      if (oldest !== undefined) this.unsealed.delete(oldest);
    }
    this.schedule();
    // A seal that found no room: the floor makes some from the oldest sealed records, for its next try.
    this.keepRoom();
    if (before !== undefined) return;
    const message = errorMessage(error);
    // The reason, without a stack: a full disk is not a bug, and this comes once per session.
    this.log.warn(
      {
        event: 'session.record_unsealed',
        session: record.id,
        dir: record.recordDir,
        ...(error instanceof StateDirError ? { code: error.errno } : {}),
        reason: message,
      },
      `the record of session ${record.id} could not be sealed: ${message}. Its output and log are kept, and agentd seals the record as soon as it can (it tries again every ${SEAL_RETRY_MAX_MS / 1000} s at most, and at its next start)`,
    );
  }

  /**
   * At start, after `strays` read the record directories: records of finished sessions that a crash left
   * unsealed are sealed now (with the output still in their work dir), work dirs of sessions that are
   * over are removed, the staged files of those that go on are counted, and retention runs. The state
   * dir's record is written as finished before the seal (which can take a while: 10,000 files to
   * unpack), so `completed` is told, before any work dir is removed, the output summary of each record
   * recovery seals and of each sealed one whose state-dir record was stopped short of it (its work dir is
   * still there); undefined when the seal failed for lack of room (it is made again later: its work dir
   * is kept) or session.json has none. `working`: the sessions that
   * have a work dir (SessionFiles.sessions), read once by the caller before recovery; nothing makes one
   * while it runs.
   */
  async recover(
    records: readonly SessionRecord[],
    working: ReadonlySet<string>,
    logFile: (id: string) => string,
    completed: (record: SessionRecord, output: OutputSummary | undefined) => void = () => {},
  ): Promise<void> {
    const finished = new Map(records.filter((r) => r.outcome !== undefined).map((r) => [r.id, r]));
    const unfinished = new Set(records.filter((r) => r.outcome === undefined).map((r) => r.id));
    /** Records whose seal failed for another reason than room: not made again, their work dir goes. */
    const givenUp = new Set<string>();
    for (const record of finished.values()) {
      if (record.recordDir === undefined) continue;
      if (this.records.isSealed(record.recordDir)) {
        // Stopped between the seal and the state dir's write of its summary: session.json has it. One
        // sealed by a later attempt may have had its work dir removed already.
        if (record.output === undefined ? working.has(record.id) : isSealPending(record.output))
          completed(record, this.find(record.id)?.output);
        continue;
      }
      // Sealed, then removed by retention (records_max_age, _size, _count) while the state dir still
      // lists it (daemon.history): made again, it came back at every start (and on a full disk, a
      // warning that it could not be sealed and seals tried again every 30 s), to be removed again.
      if (sealedOnce(record) && !this.records.exists(record.recordDir)) continue;
      const attempt = await this.attempt(record, logFile(record.id));
      if (attempt?.sealed) {
        this.log.info(
          { event: 'session.record_sealed', session: record.id, dir: record.recordDir },
          `sealed the record of session ${record.id}, left open by an earlier daemon`,
        );
      } else if (attempt !== undefined) givenUp.add(record.id);
      completed(record, attempt?.output);
    }
    for (const id of working) {
      if (unfinished.has(id)) await this.files.adopt(id);
      else if (givenUp.has(id) || !this.waitingById(id, finished)) this.files.remove(id);
    }
    this.prune();
  }

  /**
   * records_min_free: while the records' filesystem has less free space than the floor (counting the room
   * of records being removed in the background as free), the oldest sealed records go until what they take
   * makes up the difference, never the newest RECORDS_KEPT_FOR_ROOM, nor an open one (a running session's,
   * or one whose seal waits for room). Logged as records.pruned; a floor it cannot reach is warned of once
   * (records.room_low) until the filesystem has that room again.
   */
  keepRoom(): void {
    const { minFree } = this.options;
    // Off (0, the default; 0% too): no statfs at each seal for a floor that asks for nothing.
    if (minFree === undefined || ('percent' in minFree ? minFree.percent : minFree.bytes) === 0) return;
    const space = (this.options.space ?? diskSpace)(this.options.recordsDir);
    if (space === undefined) return;
    const releasing = this.records.releasingRoom;
    const floor = minFreeBytes(minFree, space.total);
    const need = { bytes: Math.max(0, floor - space.free - releasing.bytes), inodes: 0 };
    // A share keeps as many inodes free: 10,000 empty files a record use them up long before the bytes.
    const totalInodes = space.totalInodes ?? 0;
    const inodeFloor =
      'percent' in minFree && totalInodes > 0 ? Math.floor((totalInodes * minFree.percent) / 100) : 0;
    if (inodeFloor > 0) need.inodes = Math.max(0, inodeFloor - (space.freeInodes ?? 0) - releasing.inodes);
    if (need.bytes === 0 && need.inodes === 0) {
      this.roomLow = false;
      return;
    }
    const removed = this.records.pruneForRoom(need, RECORDS_KEPT_FOR_ROOM);
    const freed = removed.reduce((sum, r) => sum + r.bytes, 0);
    const freedInodes = removed.reduce((sum, r) => sum + r.inodes, 0);
    const what = `${kib(space.free)} KiB${inodeFloor > 0 ? ` and ${space.freeInodes ?? 0} inodes` : ''} free`;
    const wanted = `${kib(floor)} KiB${inodeFloor > 0 ? ` and ${inodeFloor} inodes` : ''}`;
    if (removed.length > 0) {
      this.log.info(
        {
          event: 'records.pruned',
          reason: 'records_min_free',
          count: removed.length,
          bytes: freed,
          inodes: freedInodes,
          free: space.free,
          minFree: floor,
          ...(inodeFloor > 0 ? { freeInodes: space.freeInodes, minFreeInodes: inodeFloor } : {}),
          removed: removed.slice(0, PRUNED_IDS_LOGGED).map((r) => r.sessionId),
        },
        `removed ${removed.length} sealed record(s), the oldest, taking ${kib(freed)} KiB and ${freedInodes} inodes: the filesystem of ${this.options.recordsDir} had ${what}, less than daemon.records_min_free (${formatMinFree(minFree)}: ${wanted})`,
      );
    }
    if (freed >= need.bytes && freedInodes >= need.inodes) {
      this.roomLow = false;
      return;
    }
    if (this.roomLow) return;
    this.roomLow = true;
    this.log.warn(
      {
        event: 'records.room_low',
        dir: this.options.recordsDir,
        free: space.free,
        minFree: floor,
        ...(inodeFloor > 0 ? { freeInodes: space.freeInodes, minFreeInodes: inodeFloor } : {}),
        kept: RECORDS_KEPT_FOR_ROOM,
      },
      `the filesystem of ${this.options.recordsDir} has ${what}, less than daemon.records_min_free (${formatMinFree(minFree)}: ${wanted}), and retention can remove no more: it keeps the newest ${RECORDS_KEPT_FOR_ROOM} sealed records and never an open one. Free space on that filesystem (what else takes it?), or give the records a larger one`,
    );
  }

  private prune(): void {
    const removed = this.records.prune(this.options.maxAgeMs, this.options.maxBytes, this.options.maxCount);
    if (removed.length > 0) {
      // The ids up to a bound: a start that prunes a long history at once (records_max_count lowered)
      // would write one line of megabytes.
      this.log.info(
        {
          event: 'records.pruned',
          count: removed.length,
          removed: removed.slice(0, PRUNED_IDS_LOGGED).map((r) => r.sessionId),
        },
        `removed ${removed.length} sealed record(s) past records_max_age, records_max_size or records_max_count`,
      );
    }
    // What age, size and count removed is counted as free already (being removed in the background).
    this.keepRoom();
  }

  private warn(sessionId: string, error: unknown): void {
    if (this.failed.has(sessionId)) return;
    this.failed.add(sessionId);
    // Sessions whose seals keep failing (a full records dir) are forgotten oldest first: the set is
    // only there to log each once, and must not grow for the daemon's life.
    if (this.failed.size > FAILED_REMEMBERED) {
      const [oldest] = this.failed;
      if (oldest !== undefined) this.failed.delete(oldest);
    }
    this.log.warn(
      { event: 'session.record_unwritten', session: sessionId, ...errorFields(error) },
      `the sealed record of session ${sessionId} could not be written: ${errorMessage(error)}`,
    );
  }
}

/** What session.json holds: the session's record, which never holds a credential value. */
function sessionJson(record: SessionRecord): object {
  return { ...record };
}

/** Bytes in KiB, rounded down, for a log message. */
function kib(bytes: number): number {
  return Math.floor(bytes / 1024);
}
