import type { Logger } from 'pino';
import type { OutputSummary } from '../adapters/sealed-records.js';
import type { SessionFiles } from '../adapters/session-files.js';
import {
  QUARANTINE_MAX_BYTES,
  QUARANTINE_MAX_FILES,
  type QuarantinedRecord,
  type SessionStore,
} from '../adapters/session-store.js';
import { closeSessionLog, LogReader, type OutputBlock, type OutputLine } from '../runner/session-log.js';
import { type HistoryFilter, type HistoryPage, SessionIndex } from '../sessions/history.js';
import type { SessionRecord } from '../sessions/records.js';
import { type BusEvent, SessionBus } from '../sessions/session-bus.js';
import type { Outcome, SessionOutcome, SessionPhase, SessionRequest } from '../sessions/types.js';
import type { WorkPayload } from '../sessions/work.js';
import { isSealPending, type RecordKeeper, sealPending, type WaitingToSeal } from './record-keeper.js';

/** Outcomes between two prunings of the state dir. */
const PRUNE_EVERY = 20;

/**
 * What the daemon keeps of its sessions, in one place: their records in the state dir (and every kept
 * one in memory, for `status`, `show` and `history`), the log of each session's output, the bus that
 * streams phases, output and outcomes to the clients that follow them, and each running session's work
 * directory (what its trigger handed over, where its output arrives). The machines' provided actions and actors write
 * through it; the socket handlers read through the daemon port (port.ts).
 */
export class SessionJournal {
  private readonly bus = new SessionBus();
  /** Every kept record; a session id with a record is used once. */
  private readonly index = new SessionIndex();
  private finishedSincePrune = 0;
  /** Told the ids of records pruned from the state dir (the daemon machine forgets their keys). */
  onPruned: (sessionIds: string[]) => void = () => {};
  /**
   * Called just before a session's record is written as finished (the notifier keeps its notifications
   * on disk first, so that a crash in between does not lose them).
   */
  onFinishing: (session: { id: string; agent: string }, outcome: Outcome) => void = () => {};
  /** What load read, until recover has used it. */
  private loaded: SessionRecord[] = [];
  /** Outcomes being recorded (finish under way). */
  private readonly finishing = new Set<Promise<void>>();
  /**
   * When each session started in this process, by the steady clock (performance.now()): its duration
   * does not follow the wall clock when that is set back or forward meanwhile. Forgotten at its outcome.
   */
  private readonly steadyStarts = new Map<string, number>();

  constructor(
    private readonly store: SessionStore<SessionRecord>,
    private readonly files: SessionFiles,
    private readonly keeper: RecordKeeper,
    private readonly log: Logger,
    private readonly historyLimit: number,
  ) {
    keeper.onSealedLate = (record, output) => this.sealedLate(record, output);
  }

  /**
   * Reads the state dir once, at start: finished records feed `status`, the unfinished ones are
   * returned for crash recovery. Unreadable records are moved aside and reported.
   */
  load(onQuarantined: (bad: QuarantinedRecord) => void): {
    records: SessionRecord[];
    unfinished: SessionRecord[];
  } {
    const records = this.store.list(onQuarantined);
    // A session whose state-dir record is gone may still have its open record directory: recovered from
    // it (its container adopted, or the session settled), or it would look unfinished for ever.
    const known = new Set(records.map((r) => r.id));
    const strays = this.keeper.strays((id) => known.has(id));
    for (const stray of strays.records) {
      // Its record directory's copy is written behind the state dir's, so it may lag the container's
      // call: it does not say whether that call was made (as an older daemon's record does not).
      const { containerCallStarted: _call, ...record } = stray;
      this.store.put(record);
      records.push(record);
      this.log.warn(
        { event: 'daemon.record_rebuilt', session: record.id, from: record.recordDir },
        `session ${record.id} had no readable record in the state dir; rebuilt it from its record directory ${record.recordDir}`,
      );
    }
    for (const dir of strays.unreadable) {
      this.log.warn(
        { event: 'daemon.record_unreadable', dir },
        `the record directory ${dir} is open but neither it nor the state dir has a readable record of its session; look at it and remove it (rm -r ${dir})`,
      );
    }
    // The logs of sessions quarantined by an earlier start and not rebuilt since join their records, and
    // the quarantine keeps its newest files.
    const recorded = new Set(records.map((r) => r.id));
    const tidied = this.store.tidyQuarantine((id) => recorded.has(id));
    if (tidied.logsMoved.length > 0 || tidied.removed > 0) {
      this.log.info(
        {
          event: 'daemon.quarantine_tidied',
          logsMoved: tidied.logsMoved.length,
          removed: tidied.removed,
          removedBytes: tidied.removedBytes,
          keptBytes: tidied.keptBytes,
          dir: this.store.quarantineDir,
        },
        `moved ${tidied.logsMoved.length} log(s) of quarantined records into ${this.store.quarantineDir} and removed its ${tidied.removed} oldest file(s) (${mib(tidied.removedBytes)}) beyond the newest ${QUARANTINE_MAX_FILES} or ${mib(QUARANTINE_MAX_BYTES)}; it keeps ${mib(tidied.keptBytes)}`,
      );
    }
    this.loaded = records;
    for (const record of records) this.index.set(record);
    return { records, unfinished: records.filter((r) => r.outcome === undefined) };
  }

  /**
   * After load, before sessions run: seals the records a crash left open, removes work dirs of
   * sessions that are over, applies record retention.
   */
  async recover(): Promise<void> {
    // A seal removes the work dir just before it publishes the outcome: one still here was never published.
    // Read once for all of recovery.
    const working = new Set(this.files.sessions());
    await this.keeper.recover(
      this.loaded,
      working,
      (id) => this.store.logPath(id),
      (record, output) => this.completed(record, output, working.has(record.id)),
    );
    // At most `daemon.history` finished records from the start on, not only from the first pruning
    // after PRUNE_EVERY outcomes: a state dir left with 10,000 held them all in memory (about 10 MB).
    this.prune();
    this.loaded = [];
  }

  /**
   * A finished record whose seal a stop or a crash cut short, completed by recovery: the state dir's
   * record (written before the seal) gets the output summary the sealed session.json has, or `show`,
   * `history` and webhooks would lack it for ever. An outcome that was never published is published now
   * (the notifier holds its webhooks until then: see Notifier.resume).
   */
  private completed(record: SessionRecord, output: OutputSummary | undefined, unpublished: boolean): void {
    // A seal that failed again (no room yet) is made later; the record says so, and that its outcome is
    // published (now, if it was not), so that it never is a second time.
    const summary =
      output ?? (this.keeper.waiting(record) && record.output === undefined ? sealPending() : undefined);
    const complete = summary === undefined ? record : { ...record, output: summary };
    if (summary !== undefined) {
      this.store.put(complete);
      this.index.set(complete);
    }
    if (unpublished && record.output === undefined) {
      // Its daemon died while sealing it, before it logged the outcome: the log has it once, now.
      this.logOutcome(complete);
      this.bus.publish({ type: 'outcome', sessionId: complete.id, record: complete });
    }
  }

  /** The session.outcome line: once per session, when its outcome is published. */
  private logOutcome(record: SessionRecord, phase?: SessionOutcome['phase']): void {
    this.log.info(
      {
        event: 'session.outcome',
        session: record.id,
        agent: record.agent,
        outcome: record.outcome,
        kind: record.kind,
        exitCode: record.exitCode,
        phase,
        durationMs: record.durationMs,
        timings: record.timings,
        message: record.message,
      },
      `session ${record.outcome}${record.kind === undefined || record.kind === 'success' ? '' : ` (${record.kind})`}`,
    );
  }

  /**
   * A record sealed by a later attempt (its first failed, the outcome was published then), or given up
   * by one: its output summary into the state dir's record, and its work dir removed, the output and log
   * being in the record now.
   */
  private sealedLate(record: SessionRecord, output: OutputSummary): void {
    const current = this.index.get(record.id);
    // Only over what the failed seal wrote. History may have let go of the session since (pruned once
    // the seal succeeded, before this): its record directory is where it is kept, and the state dir's
    // record is not written back.
    if (current?.outcome !== undefined && (current.output === undefined || isSealPending(current.output))) {
      const complete = { ...current, output };
      this.store.put(complete);
      this.index.set(complete);
    }
    this.files.remove(record.id);
  }

  /**
   * Writes a trigger's request and input files into its session's work dir, before the trigger is sent
   * to the machine; rejects with a StateDirError when the state dir cannot take them.
   */
  stage(sessionId: string, payload: WorkPayload): Promise<void> {
    return this.files.stage(sessionId, payload);
  }

  /**
   * Removes what `stage` wrote for a trigger that was not accepted: only that, when a session took its id
   * meanwhile (see SessionFiles.unstage).
   */
  unstage(sessionId: string): void {
    this.files.unstage(sessionId);
  }

  has(sessionId: string): boolean {
    return this.index.get(sessionId) !== undefined;
  }

  /** Whether a session id was ever used: in history, or in a record directory history has let go of. */
  used(sessionId: string): boolean {
    return this.has(sessionId) || this.keeper.has(sessionId);
  }

  /**
   * A session's record as last written (or waiting for room in the state dir); for a session history
   * has let go of, the one in its sealed record directory.
   */
  record(sessionId: string): SessionRecord | undefined {
    return this.index.get(sessionId) ?? this.keeper.find(sessionId);
  }

  history(filter: HistoryFilter): HistoryPage {
    return this.index.query(filter);
  }

  /**
   * Writes an accepted session's record durably; throws (a StateDirError) when it cannot. `outputBytes`
   * is the size of its /agentd/out, which bounds what is kept of its output.
   */
  accept(request: SessionRequest, outputBytes: number): void {
    const record: SessionRecord = {
      version: 1,
      id: request.sessionId,
      agent: request.agent,
      repo: request.repoUrl,
      acceptedAt: request.acceptedAt,
      phase: 'queued',
      phases: [{ phase: 'queued', at: request.acceptedAt }],
      ...(request.workUnit === undefined ? {} : { workUnit: request.workUnit }),
      ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }),
      ...(request.work?.request === undefined ? {} : { request: request.work.request }),
      ...(request.work === undefined || request.work.inputs.length === 0
        ? {}
        : { inputs: request.work.inputs }),
      ...(request.scheduledFor === undefined ? {} : { scheduledFor: request.scheduledFor }),
      ...(request.key === undefined ? {} : { key: request.key }),
      recordDir: this.keeper.dirOf(request.agent, request.sessionId),
      outputLimit: outputBytes,
    };
    try {
      this.files.prepare(record.id);
      this.store.accept(record);
    } catch (error) {
      // Not the files a trigger with the same id is staging: its own refusal removes them.
      this.files.unprepare(record.id);
      throw error;
    }
    this.index.set(record);
    this.keeper.write(record);
    this.bus.publish({ type: 'phase', sessionId: record.id, agent: record.agent, phase: 'queued' });
  }

  /**
   * Changes a session's record: in the state dir, in its record directory and in the index. Not in the
   * state dir when `durable` is false: a change recovery decides nothing by, which the next write
   * carries (see enter).
   */
  private update(
    sessionId: string,
    change: (record: SessionRecord) => SessionRecord,
    durable = true,
  ): SessionRecord | undefined {
    let record: SessionRecord | undefined;
    if (durable) record = this.rewrite(sessionId, change);
    else {
      const current = this.index.get(sessionId);
      record = current === undefined ? undefined : change(current);
    }
    if (record) {
      this.index.set(record);
      this.keeper.write(record);
    }
    return record;
  }

  /**
   * Writes a changed record to the state dir. The index holds every record as last written (the journal
   * is their only writer), so it is not read back from the disk and parsed again at each phase change.
   */
  private rewrite(
    sessionId: string,
    change: (record: SessionRecord) => SessionRecord,
  ): SessionRecord | undefined {
    const current = this.index.get(sessionId) ?? this.store.read(sessionId);
    if (!current) return undefined;
    const record = change(current);
    this.store.put(record);
    return record;
  }

  /** A record rebuilt from a container's labels (its own was lost). */
  rebuilt(record: SessionRecord): void {
    this.store.put(record);
    this.index.set(record);
  }

  /**
   * A session's new phase; `host` once it is placed (it goes into the record with its first phase);
   * `decided`, with `tearing_down`, the outcome the teardown ends with (for a restarted daemon).
   */
  phase(sessionId: string, phase: SessionPhase, host?: string, decided?: SessionRecord['decided']): void {
    // A phase never comes after the outcome (some are written a microtask late: see main.ts).
    if (this.index.get(sessionId)?.outcome !== undefined) return;
    const before = this.index.get(sessionId);
    // Written already, with its container's call (containerCall: a session with no secret to make).
    if (phase === 'creating' && before?.phase === 'creating') return;
    this.enter(sessionId, phase, host, decided);
  }

  private enter(
    sessionId: string,
    phase: SessionPhase,
    host?: string,
    decided?: SessionRecord['decided'],
    containerCallStarted = false,
  ): void {
    const at = new Date().toISOString();
    const before = this.index.get(sessionId);
    if (before !== undefined && before.startedAt === undefined)
      this.steadyStarts.set(sessionId, performance.now());
    // `resolving` is not written to the state dir: recovery takes a record at resolving for a queued one
    // (no Podman object of it is made before its record says creating: recovery.ts, host-recovery.ts),
    // and requeues it without its start and host, so that write (a synchronous rename, about 0.5 ms of the
    // daemon's CPU) changed nothing a restart does. `creating`, written next, carries it.
    const record = this.update(
      sessionId,
      (r) => ({
        ...r,
        phase,
        phases: [...r.phases, { phase, at }],
        startedAt: r.startedAt ?? at,
        ...(host === undefined ? {} : { host }),
        ...(decided === undefined ? {} : { decided }),
        // From creating on, whether the call that makes its container was started (recovery.ts).
        ...(phase === 'creating' ? { containerCallStarted } : {}),
      }),
      phase !== 'resolving',
    );
    this.log.info({ event: 'session.phase', session: sessionId, phase }, `session ${phase}`);
    this.bus.publish({ type: 'phase', sessionId, agent: record?.agent ?? '', phase });
  }

  /**
   * The podman call that makes a session's container is spawned right after this: its record says so
   * first (and says creating, if a session with no secret to make had not written it yet), so that one
   * without it had no container (recovery runs it again) and one with it may have run its command.
   */
  containerCall(sessionId: string): void {
    const current = this.index.get(sessionId);
    if (current === undefined || current.outcome !== undefined || current.containerCallStarted === true)
      return;
    if (current.phase === 'creating') this.update(sessionId, (r) => ({ ...r, containerCallStarted: true }));
    else this.enter(sessionId, 'creating', undefined, undefined, true);
  }

  /**
   * A session an earlier daemon was resolving the credentials of, queued again by recovery: its record
   * says queued, with no start and no host (both are chosen afresh when it runs).
   */
  requeued(sessionId: string): void {
    const at = new Date().toISOString();
    this.update(sessionId, ({ startedAt: _startedAt, host: _host, containerCallStarted: _call, ...r }) => ({
      ...r,
      phase: 'queued',
      phases: [...r.phases, { phase: 'queued', at }],
    }));
  }

  /**
   * The session's container, once it exists. Recovery finds a session's container by its labels, never by
   * this field (recovery.ts), so at creating it is not written to the state dir on its own: the setup
   * step's `phase cloning` comes next (or its exit, tearing_down), and that write carries it. A crash in
   * between costs the recovered record this field, nothing a restart decides (bench/findings.md).
   */
  container(sessionId: string, container: string): void {
    this.update(sessionId, (r) => ({ ...r, container }), !this.beforeCloning(sessionId));
  }

  /**
   * The commit the session's clone checked out. Not written on its own: the setup step says `phase
   * running` right after it (or exits: tearing_down), and that write carries it; recovery decides nothing
   * by it.
   */
  commit(sessionId: string, commit: string): void {
    this.update(sessionId, (r) => ({ ...r, commit }), false);
  }

  /**
   * The image the session's container runs: the reference, and its id and digest when known. Known at
   * the container's start (the usual case) it waits for the cloning write as the container does; read
   * later (inspected beside the clone), it is written at once, the clone may take long.
   */
  image(sessionId: string, image: string, id?: string, digest?: string): void {
    this.update(
      sessionId,
      (r) => ({
        ...r,
        image,
        ...(id === undefined ? {} : { imageId: id }),
        ...(digest === undefined ? {} : { imageDigest: digest }),
      }),
      !this.beforeCloning(sessionId),
    );
  }

  /** Whether a session is still creating: its next state-dir write (cloning, or tearing_down) comes soon. */
  private beforeCloning(sessionId: string): boolean {
    return this.index.get(sessionId)?.phase === 'creating';
  }

  /** One line of a session's output, or lines that came at once (already masked, numbered and on their way to its log file). */
  output(sessionId: string, line: OutputLine | OutputBlock): void {
    this.bus.publishLine(sessionId, line);
  }

  /**
   * Records a session's outcome, seals its record (with its output and log), logs the outcome and
   * tells its followers; prunes old state-dir records now and then.
   */
  finish(request: SessionRequest, outcome: SessionOutcome): Promise<void> {
    // Kept until done: sessions settled at shutdown are sealed in the background, and their followers
    // must hear the outcome before the socket closes (outcomesPublished).
    const done: Promise<void> = this.seal(request, outcome).finally(() => this.finishing.delete(done));
    this.finishing.add(done);
    return done;
  }

  /** Resolves once the outcomes being recorded now have been told to their followers, or after timeoutMs. */
  async outcomesPublished(timeoutMs: number): Promise<void> {
    if (this.finishing.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(this.finishing),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  private async seal(request: SessionRequest, outcome: SessionOutcome): Promise<void> {
    // All its output in the log file (a run that ended in an error may have left some unwritten).
    await closeSessionLog(this.store.logPath(request.sessionId));
    const finishedAt = new Date();
    const steadyStart = this.steadyStarts.get(request.sessionId);
    this.steadyStarts.delete(request.sessionId);
    if (this.index.get(request.sessionId) !== undefined)
      this.onFinishing({ id: request.sessionId, agent: request.agent }, outcome.outcome);
    let record = this.rewrite(
      request.sessionId,
      ({ decided: _decided, containerCallStarted: _call, ...r }) => ({
        ...r,
        phase: 'finished',
        phases: [...r.phases, { phase: 'finished', at: finishedAt.toISOString() }],
        finishedAt: finishedAt.toISOString(),
        durationMs: sessionDuration(r, finishedAt, outcome.timings, steadyStart),
        outcome: outcome.outcome,
        ...(outcome.kind === undefined ? {} : { kind: outcome.kind }),
        ...(outcome.exitCode === undefined ? {} : { exitCode: outcome.exitCode }),
        ...(outcome.signal === undefined ? {} : { signal: outcome.signal }),
        ...(outcome.message === undefined ? {} : { message: outcome.message }),
        ...(outcome.timings === undefined ? {} : { timings: outcome.timings }),
      }),
    );
    if (!record) {
      this.files.remove(request.sessionId);
      return;
    }
    let unsealed = false;
    if (record.recordDir !== undefined) {
      const output = await this.keeper.seal(record, this.store.logPath(record.id));
      // Not through the index, which still holds the record from before the outcome. A seal that failed
      // (no room) is made again later: its record says so, and that the outcome is published.
      unsealed = output === undefined;
      record = { ...record, output: output ?? sealPending() };
      this.store.put(record);
    }
    this.index.set(record);
    // Gone before anyone hears of the outcome; kept, with the output and the log, for a seal that failed.
    if (!unsealed) this.files.remove(record.id);
    this.logOutcome(record, outcome.phase);
    this.bus.publish({ type: 'outcome', sessionId: record.id, record });
    if (++this.finishedSincePrune >= PRUNE_EVERY) {
      this.finishedSincePrune = 0;
      this.prune();
    }
  }

  /**
   * Removes the finished records beyond `daemon.history`, found in the index: it holds every record as
   * written (load read them all). Reading and parsing every record in the state dir each time made
   * settling many sessions at once (500 after a restart) quadratic.
   */
  private prune(): void {
    // Not one whose record waits to be sealed: a start seals it from the state dir's record (without
    // one, its open record directory would be taken for a session still running).
    const pruned = this.index
      .beyond(this.historyLimit)
      .filter((r) => !this.keeper.waiting(r))
      .map((r) => r.id);
    this.store.remove(pruned);
    for (const id of pruned) this.index.delete(id);
    if (pruned.length > 0) this.onPruned(pruned);
  }

  logPath(sessionId: string): string {
    return this.store.logPath(sessionId);
  }

  /** The newest finished sessions, newest first. */
  recent(count: number): SessionRecord[] {
    return this.index.recent(count);
  }

  /** A session's record, and a reader of its stored output; undefined for an unknown session. */
  readLog(
    sessionId: string,
  ): { record: SessionRecord; reader: (afterSeq?: number) => LogReader } | undefined {
    const record = this.index.get(sessionId);
    if (!record) return undefined;
    const path = this.store.logPath(sessionId);
    return { record, reader: (afterSeq = 0) => new LogReader(path, afterSeq) };
  }

  follow(sessionId: string, listener: (event: BusEvent) => void): () => void {
    return this.bus.follow(sessionId, listener);
  }

  followAll(listener: (event: BusEvent) => void): () => void {
    return this.bus.followAll(listener);
  }

  /**
   * Writes records that waited in memory for room, and seals again those whose seal failed, when due
   * (in the background); throws while the state dir takes no write.
   */
  flush(): void {
    void this.keeper.retry();
    this.store.flush();
  }

  /**
   * Resolves once the record files being written in the background are written, and a seal made again
   * that is under way is done (before the daemon exits: it writes the state dir's record).
   */
  settled(): Promise<void> {
    return this.keeper.settled();
  }

  /** At the end: records still waiting in memory written in the room kept for them; the ids that were not. */
  writeWaiting(): string[] {
    return this.store.writeWaiting();
  }

  /** Finished sessions whose record waits to be sealed, their output and log held in their work dir. */
  waitingToSeal(): WaitingToSeal {
    return this.keeper.waitingToSeal();
  }

  /** Records waiting in memory for the state dir to take writes. */
  get unwritten(): number {
    return this.store.unwritten;
  }
}

/**
 * How long a session took. Started in this process: by the steady clock, whatever the wall clock did.
 * Otherwise (adopted after a restart, settled at start) the wall clock's difference, never negative and
 * never less than its run's phases took by the steady clock (a clock set back meanwhile).
 */
export function sessionDuration(
  record: SessionRecord,
  finishedAt: Date,
  timings: SessionOutcome['timings'],
  steadyStart: number | undefined,
): number {
  if (steadyStart !== undefined) return Math.round(performance.now() - steadyStart);
  const wall = finishedAt.getTime() - Date.parse(record.startedAt ?? record.acceptedAt);
  const phases = Object.values(timings ?? {}).reduce((sum, ms) => sum + ms, 0);
  return Math.max(0, Number.isNaN(wall) ? 0 : wall, phases);
}

/** Bytes in MiB, one decimal, for a log message. */
function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
