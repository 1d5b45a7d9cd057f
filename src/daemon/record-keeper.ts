import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { wasSearched, withheldReason } from '../adapters/output-archive.js';
import { type OutputSummary, SealedRecords } from '../adapters/sealed-records.js';
import type { SessionFiles } from '../adapters/session-files.js';
import { errorMessage } from '../errors.js';
import { renderSessionLog } from '../runner/session-log.js';
import { type SessionRecord, sessionRecordSchema } from '../sessions/records.js';
import { outputArchiveLimit } from '../sessions/run-plan.js';

/** The output size a record without one was run with (the built-in default). */
const DEFAULT_OUTPUT_BYTES = 64 * 1024 * 1024;

export interface RecordKeeperOptions {
  recordsDir: string;
  maxAgeMs: number;
  maxBytes: number;
  /** At most this many sealed records are kept (the oldest go first). */
  maxCount?: number;
}

/** Ids a `records.pruned` line lists at most; `count` says how many were removed. */
const PRUNED_IDS_LOGGED = 100;
/** Sessions whose unwritten record was logged, remembered at most (see warn). */
const FAILED_REMEMBERED = 1000;

/**
 * Each session's sealed record (see adapters/sealed-records.ts) as the journal keeps it: session.json
 * rewritten whenever the session's record changes, completed and sealed when it ends (its output
 * unpacked from the work dir, its log copied), retention applied after every seal. A record that
 * cannot be written never stops a session: the problem is logged, once per session.
 */
export class RecordKeeper {
  readonly records: SealedRecords;
  private readonly failed = new Set<string>();

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
    if (!found || !parsed.success || parsed.data.id !== sessionId) return undefined;
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

  /** session.json of a session that is not over yet (written in the background: see SealedRecords.write). */
  write(record: SessionRecord): void {
    this.records.write(record.agent, record.id, sessionJson(record), (error) => this.warn(record.id, error));
  }

  /** Resolves once every session.json given to `write` is written (or failed). */
  settled(): Promise<void> {
    return this.records.settled();
  }

  /**
   * Completes and seals a finished session's record. Never throws: what cannot be done is logged, and
   * undefined returned.
   */
  async seal(record: SessionRecord, logFile: string): Promise<OutputSummary | undefined> {
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
        log: () => Buffer.from(renderSessionLog(logFile)),
        ...(withheld === undefined ? { archive: paths.archive } : {}),
        archiveLimit: outputArchiveLimit(record.outputLimit ?? DEFAULT_OUTPUT_BYTES),
        json: (output) => sessionJson({ ...record, output: described(output) }),
      });
      this.failed.delete(record.id);
      this.prune();
      return described(output);
    } catch (error) {
      this.warn(record.id, error);
      return undefined;
    }
  }

  /**
   * At start, after `strays` read the record directories: records of finished sessions that a crash left
   * unsealed are sealed now (with the output still in their work dir), work dirs of sessions that are
   * over are removed, the staged files of those that go on are counted, and retention runs. The state
   * dir's record is written as finished before the seal (which can take a while: 10,000 files to
   * unpack), so `completed` is told, before any work dir is removed, the output summary of each record
   * recovery seals and of each sealed one whose state-dir record was stopped short of it (its work dir is
   * still there); undefined when the seal failed or session.json has none. `working`: the sessions that
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
    for (const record of finished.values()) {
      if (record.recordDir === undefined) continue;
      if (this.records.isSealed(record.recordDir)) {
        // Stopped between the seal and the state dir's write of its summary: session.json has it.
        if (record.output === undefined && working.has(record.id))
          completed(record, this.find(record.id)?.output);
        continue;
      }
      const output = await this.seal(record, logFile(record.id));
      this.log.info(
        { event: 'session.record_sealed', session: record.id, dir: record.recordDir },
        `sealed the record of session ${record.id}, left open by an earlier daemon`,
      );
      completed(record, output);
    }
    for (const id of working) {
      if (unfinished.has(id)) await this.files.adopt(id);
      else this.files.remove(id);
    }
    this.prune();
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
      { event: 'session.record_unwritten', session: sessionId, err: error },
      `the sealed record of session ${sessionId} could not be written: ${errorMessage(error)}`,
    );
  }
}

/** What session.json holds: the session's record, which never holds a credential value. */
function sessionJson(record: SessionRecord): object {
  return { ...record };
}
