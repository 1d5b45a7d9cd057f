import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  open as openAsync,
  openSync,
  readSync,
  rename,
  statSync,
  write,
} from 'node:fs';
import {
  appendNoFollow,
  READ_NO_FOLLOW,
  readNoFollow,
  regularFileStat,
  removeQuietly,
} from '../adapters/state-files.js';
import { CONTAINER_LOG_MAX_BYTES } from '../constants.js';
import { type Held, LogArena, SLAB_BYTES } from './log-arena.js';

/** Where a line of a session's output came from: the container's stdout or stderr, or agentd itself. */
export type OutputStream = 'stdout' | 'stderr' | 'agentd';

/** One line of a session's output as the log keeps it and the protocol sends it. */
export interface OutputLine {
  /** 1, 2, 3, ... per session, never reused: where a follower resumes. */
  seq: number;
  /** When the daemon read it (ISO 8601, UTC). */
  time: string;
  stream: OutputStream;
  text: string;
  /** Continues the line before it: that one was cut at OUTPUT_LINE_MAX_BYTES. */
  cont?: boolean;
}

/**
 * Lines that came at once (whole lines of a chunk of the container's output with nothing in them that
 * needs a line of its own): `count` lines numbered from `seq`, all read at `time`, masked, as UTF-8
 * bytes, each ending in `\n`. The log encodes them as records only when it writes them, and a reader
 * gets them as OutputLines (linesOfBlock) only when it asks. The bytes handed on as the container's
 * output comes may be a view of the reader's buffer (see ChunkSource): they hold until the turn's
 * immediates have run (the session bus's batch), and whatever keeps them longer copies them (the log
 * does).
 */
export interface OutputBlock {
  seq: number;
  count: number;
  time: string;
  stream: OutputStream;
  bytes: Buffer;
}

/** The lines of a block, one by one. */
export function linesOfBlock(block: OutputBlock): OutputLine[] {
  const { seq, time, stream, bytes } = block;
  return bytes
    .toString('utf8', 0, bytes.length - 1)
    .split('\n')
    .map((text, i) => ({ seq: seq + i, time, stream, text }));
}

/** A stretch of output a reader does not get: `count` lines from `fromSeq` to `toSeq`, and why. */
export interface SkippedLines {
  fromSeq: number;
  toSeq: number;
  count: number;
  reason: string;
}

/** Output that could not be written (the state dir was full): recorded in the log once it can be. */
interface Gap {
  lines: number;
  bytes: number;
  since: string;
  until: string;
  errno: string;
}

const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = constants;
/**
 * How the log is opened to be written: O_NONBLOCK so that a FIFO planted in its place fails at once
 * (ENXIO) rather than holding the open until a reader comes; adopt refuses one that has a reader.
 * Writes to a regular file ignore it.
 */
const WRITE_FLAGS = O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK;
const GAP_RETRY_MS = 2000;
/**
 * A log is written at most this often: what comes in between is written in one batch, and of a flood
 * only what the bound keeps is ever encoded and written.
 */
const WRITE_EVERY_MS = 100;
/**
 * ... and at most this often while more than the bound comes between two writes (the last one dropped
 * records unwritten): a flood costs the disk about the bound a second, not all of it.
 */
const FLOOD_WRITE_EVERY_MS = 1000;
/**
 * Unwritten bytes beyond the bound (maxBytes) after which the log asks its writer to wait (`backlogged`):
 * what waits beyond the bound is dropped as the oldest, so only records the log cannot drop yet (one
 * large part, such as a block of many empty lines) come to this.
 */
const HIGH_WATER = 256 * 1024;
/** ... and below which it tells the writer to carry on. */
const LOW_WATER = 64 * 1024;
/** Characters of records gathered as text before they are encoded: one encoding call for many lines. */
const ENCODE_AT = 8 * 1024;
const TOKENS: Record<OutputStream, string> = { stdout: 'out', stderr: 'err', agentd: 'agentd' };
const STREAMS: Record<string, OutputStream> = { out: 'stdout', err: 'stderr', agentd: 'agentd' };
export const TRIMMED_REASON = 'earlier output dropped to keep the log bounded (daemon.log_max_bytes)';

/** The logs of sessions being written in this process, by path: readers also get what is not on disk yet. */
const writing = new Map<string, SessionLog>();

/**
 * The log of a session, open: the one still being written in this process when there is one (a runner
 * that follows its container again after losing it goes on where it was), else opened from its file.
 */
export function openSessionLog(
  path: string,
  maxBytes: number,
  onMissed?: (lines: number) => void,
): SessionLog {
  return writing.get(path) ?? new SessionLog(path, maxBytes, onMissed);
}

/** Closed logs whose gap note found no room yet (tried again every GAP_RETRY_MS), by path. */
const owingNotes = new Map<string, SessionLog>();
/** At most this many of them are kept for writeOwedGapNote. */
export const MAX_OWING_NOTES = 1000;

/**
 * Writes now the gap note a closed log still owes, if any: a copy of the log (the sealed record's) must
 * not be made without it. Throws the write's StateDirError while there is still no room for it.
 */
export function writeOwedGapNote(path: string): void {
  owingNotes.get(path)?.writeOwedNote();
}

/** Writes what a session's open log still holds and closes it; a log that is not open is left alone. */
export async function closeSessionLog(path: string): Promise<void> {
  await writing.get(path)?.close();
}

/**
 * Records waiting to be written, in order: whole records encoded in chunks and blocks of lines not
 * encoded yet (counted by the size of their records), then the newest (at most about ENCODE_AT
 * characters) still as text. `bytes` counts the records' bytes plus the characters of the text (its
 * bytes once it is encoded).
 */
interface Pending {
  parts: PendingPart[];
  text: string;
  bytes: number;
}

/** Encoded records, or a block of lines (its bytes a copy in the log's arena): both held in the arena. */
type PendingPart = { records: Held } | { block: OutputBlock; size: number; held: Held };

/**
 * A session's output log: one line per output line, `SEQ TIME STREAM TEXT` (STREAM is `out`, `err` or
 * `agentd`, with a `+` for a continuation), at most maxBytes on disk (the newest output): the file
 * `<id>.log` and, once that holds half of maxBytes, the half before it as `<id>.log.1`.
 *
 * Writes are buffered and asynchronous: appending never blocks the daemon, one file stays open while
 * the session runs, and what is appended while a write is under way or within WRITE_EVERY_MS of the
 * last one (FLOOD_WRITE_EVERY_MS during a flood) goes out in the next. Records are encoded a few
 * kilobytes at a time, and blocks of lines copied, into slabs the log reuses (LogArena); blocks are
 * encoded as records only when they are written. So a flood of lines leaves little for the garbage
 * collector, and the container's pipe chunks are not kept. Records with the whole bound of newer ones
 * after them are dropped unwritten (the rotation would delete them): a flood costs the disk at most
 * the bound per write. When more is waiting than the bound and HIGH_WATER, `backlogged` tells the
 * writer to stop reading the container until `onDrain`.
 *
 * The file is never opened through a symbolic link. A write that fails (a full state dir) never stops
 * the session: the lines still reach followers, and the log gets one note saying what is missing,
 * from when to when, as soon as it can be written.
 */
export class SessionLog {
  private fd: number | undefined;
  private size = 0;
  private nextSeq: number;
  /** Appended, not yet handed to a write. */
  private pending: Pending = emptyPending();
  /** Where pending records and blocks are held (see LogArena). */
  private readonly arena = new LogArena();
  /** Being written. */
  private flying: Buffer | undefined;
  private scheduled = false;
  /** The next write, when it waits for WRITE_EVERY_MS since the last. */
  private timer: NodeJS.Timeout | undefined;
  /** When the last write began (performance.now()). */
  private lastFlush = Number.NEGATIVE_INFINITY;
  /** Records were dropped unwritten: the log starts again with what is written next. */
  private droppedPending = false;
  /** The last write began after records were dropped unwritten: the next waits FLOOD_WRITE_EVERY_MS. */
  private flooded = false;
  private closed = false;
  private wasBacklogged = false;
  /** One per SessionOutput writing to the log now: each attachment of the session takes its own back. */
  private readonly drainListeners = new Set<() => void>();
  private idleWaiters: (() => void)[] = [];
  private gap: Gap | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** When the newest line appended (or found when opened) was read. */
  private lastTime: string | undefined;
  /**
   * Container lines (agentd's own and continuations not counted) handed to the log from the first on,
   * with an estimate of what Podman's own copy of them takes; undefined once the log does not hold all
   * of them (trimmed, or a gap) when it was opened.
   */
  private containerLines: { stdout: number; stderr: number } | undefined;
  private containerLogBytes = 0;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    /**
     * Told of lines whose write failed (counted by the metrics as log_full). Not of those the bound
     * drops unwritten meanwhile: it drops them with room just the same (trimming, never counted),
     * though the gap note counts them (they are missing from its stretch).
     */
    private readonly onMissed: (lines: number) => void = () => {},
  ) {
    const { lines, notes, trimmed } = readRecords(path);
    const last = lines.at(-1);
    this.lastTime = last?.time;
    this.nextSeq = (last?.seq ?? 0) + 1;
    const complete = !trimmed && notes.size === 0 && lines.every((line, i) => line.seq === i + 1);
    this.containerLines = complete ? { stdout: 0, stderr: 0 } : undefined;
    for (const line of lines) this.count(line);
    writing.set(path, this);
  }

  /**
   * Container output lines handed on so far on each stream, from the first on (agentd's own lines and continuations not
   * counted): where a replay of the container's own log resumes (an adopted session, a dropped
   * attachment). Undefined when not known: the log did not hold all of them when it was opened, or
   * Podman may have emptied its own copy since (`--log-opt max-size`).
   */
  writtenLines(): { stdout: number; stderr: number } | undefined {
    if (this.containerLines === undefined || this.containerLogBytes >= CONTAINER_LOG_MAX_BYTES / 2)
      return undefined;
    return { ...this.containerLines };
  }

  /**
   * When the newest line was read, if any: handed on, whether or not it is on disk yet (a follow that
   * resumes from here must not hand on again what is still to be written).
   */
  lastWrite(): Date | undefined {
    return this.lastTime === undefined ? undefined : new Date(this.lastTime);
  }

  /** Appends one line; it gets the next sequence number and is written soon. */
  append(text: string, options: { stream?: OutputStream; cont?: boolean } = {}): OutputLine {
    const line: OutputLine = { seq: this.nextSeq++, time: now(), stream: options.stream ?? 'stdout', text };
    this.lastTime = line.time;
    if (options.cont) line.cont = true;
    this.count(line);
    if (this.closed) return line;
    encode(this.pending, record(line), this.arena);
    this.appended();
    return line;
  }

  /**
   * Appends `count` whole lines at once (see OutputBlock; `bytes` holds them, each ending in `\n`, none
   * with a `\r`): they get the next sequence numbers and one time, and are written soon.
   */
  appendBlock(bytes: Buffer, count: number, stream: 'stdout' | 'stderr'): OutputBlock {
    const block: OutputBlock = { seq: this.nextSeq, count, time: now(), stream, bytes };
    if (count > 0) this.lastTime = block.time;
    this.nextSeq += count;
    this.containerLogBytes += bytes.length - count + 40 * count;
    if (this.containerLines !== undefined) this.containerLines[stream] += count;
    if (this.closed || count === 0) return block;
    settle(this.pending, this.arena);
    const size = blockSize(block);
    // A copy: the container's pipe chunk is not kept until the write (see LogArena).
    const held = this.arena.copy(bytes);
    this.pending.parts.push({ block: { ...block, bytes: held.bytes }, size, held });
    this.pending.bytes += size;
    this.appended();
    return block;
  }

  /** After an append: the oldest records beyond the bound dropped, a write planned. */
  private appended(): void {
    const { pending } = this;
    // Records with the whole bound of newer ones after them cannot be in the log once those are.
    while (
      pending.parts.length > 1 &&
      pending.bytes - partSize(pending.parts[0] as PendingPart) >= this.maxBytes
    ) {
      const dropped = pending.parts.shift() as PendingPart;
      pending.bytes -= partSize(dropped);
      // An open gap's note says how many lines are missing from `since` to `until`: these are, too.
      if (this.gap) widenGapBy(this.gap, dropped);
      this.arena.release(heldBy(dropped));
      this.droppedPending = true;
    }
    if (pending.bytes > this.maxBytes + HIGH_WATER) this.wasBacklogged = true;
    this.schedule();
  }

  /**
   * A write soon (at most one per WRITE_EVERY_MS, or FLOOD_WRITE_EVERY_MS), unless one is under way
   * or planned (its end writes what is pending).
   */
  private schedule(): void {
    if (this.scheduled || this.timer !== undefined || this.flying !== undefined) return;
    const wait = this.lastFlush + (this.flooded ? FLOOD_WRITE_EVERY_MS : WRITE_EVERY_MS) - performance.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, wait);
      return;
    }
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Counts a container line; Podman's own log line for it is its text and about 40 bytes. */
  private count(line: OutputLine): void {
    if (line.stream === 'agentd') return;
    this.containerLogBytes += line.text.length + 40;
    if (!line.cont && this.containerLines !== undefined) this.containerLines[line.stream]++;
  }

  /** More is waiting to be written than the log buffers: the writer should pause until onDrain. */
  get backlogged(): boolean {
    return this.pending.bytes > this.maxBytes + HIGH_WATER;
  }

  /** Records were dropped unwritten since the last write (see LogReader). */
  get dropping(): boolean {
    return this.droppedPending;
  }

  /** Called (each time) once a backlog has been written down to LOW_WATER, until the returned function is. */
  onDrain(listener: () => void): () => void {
    const once = () => listener();
    this.drainListeners.add(once);
    return () => {
      this.drainListeners.delete(once);
    };
  }

  /**
   * What is appended but not on disk yet, as it stands now, in order: records (being written, or
   * encoded) and blocks of lines. What a reader of the file would miss; taken in the same turn as the
   * end of the file, it is read at the reader's pace (nothing in it changes later).
   */
  unwritten(): (Buffer | OutputBlock)[] {
    settle(this.pending, this.arena);
    const parts: (Buffer | OutputBlock)[] = this.flying === undefined ? [] : [this.flying];
    // Copies: the arena reuses its slabs once these are written.
    for (const part of this.pending.parts)
      parts.push(
        'records' in part
          ? Buffer.from(part.records.bytes)
          : { ...part.block, bytes: Buffer.from(part.block.bytes) },
      );
    return parts;
  }

  /** Resolves once everything appended so far was written (or found missing). */
  flushed(): Promise<void> {
    if (this.pending.bytes === 0 && this.flying === undefined) return Promise.resolve();
    // Waiting before the flush below: one that ends at once (the file cannot even be opened: a full
    // disk) is idle before it returns, and a waiter pushed after would wait for ever.
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (this.timer !== undefined) {
      // Someone waits for it: no waiting for WRITE_EVERY_MS.
      clearTimeout(this.timer);
      this.timer = undefined;
      this.flush();
    }
    return idle;
  }

  /** The session ended: what is buffered is written, the file closed; a gap is noted as soon as there is room. */
  async close(): Promise<void> {
    await this.flushed();
    this.closed = true;
    this.arena.clear();
    if (this.fd !== undefined) closeQuietly(this.fd);
    this.fd = undefined;
    if (writing.get(this.path) === this) writing.delete(this.path);
    if (this.gap) this.writeGapNote();
    if (this.gap) {
      owingNotes.set(this.path, this);
      // A note that can never be written (the path is no file) must not hold its log, nor a timer, for
      // the daemon's life: the oldest are given up (their log ends without the note).
      for (const [path, owing] of owingNotes) {
        if (owingNotes.size <= MAX_OWING_NOTES) break;
        owingNotes.delete(path);
        owing.giveUpNote();
      }
    }
  }

  /** Whether a timer still tries to write this log's gap note (for tests). */
  get retrying(): boolean {
    return this.retry !== undefined;
  }

  /** Stops trying to write the gap note of a closed log that owes one (too many owe one). */
  private giveUpNote(): void {
    clearInterval(this.retry);
    this.retry = undefined;
  }

  /** The gap note of a closed log, written now (see writeOwedGapNote); throws while there is no room. */
  writeOwedNote(): void {
    if (this.gap && this.closed) this.appendGapNote(this.gap);
  }

  /** Output not written because of a gap, if any (for tests and status). */
  get missing(): { lines: number; bytes: number } | undefined {
    return this.gap && { lines: this.gap.lines, bytes: this.gap.bytes };
  }

  private flush(): void {
    if (this.flying !== undefined || this.pending.bytes === 0) {
      this.idle();
      return;
    }
    this.lastFlush = performance.now();
    const note = this.gap ? Buffer.from(noteRecord(this.gap)) : undefined;
    const batch = pendingBytes(this.pending, this.arena);
    for (const part of this.pending.parts) this.arena.release(heldBy(part));
    const restart = this.droppedPending;
    this.flooded = restart;
    this.pending = emptyPending();
    this.droppedPending = false;
    this.flying = batch;
    const half = Math.floor(this.maxBytes / 2);
    const noteBytes = note?.length ?? 0;
    const done = (errno: string | undefined) =>
      this.written(batch, errno, errno === undefined && note !== undefined);
    try {
      if (this.fd === undefined) this.open();
      if (restart || noteBytes + batch.length > half) {
        // Newer than everything the log holds by more than it keeps (records were dropped unwritten,
        // or the batch alone is over half the bound): the log starts again with the batch, gap-free,
        // its newest half in `<path>` and the half before it in `<path>.1`.
        const tailFrom = lineAfter(batch, batch.length - (half - noteBytes));
        const headFrom = lineAfter(batch, tailFrom - half + noteBytes);
        const head = batch.subarray(headFrom, tailFrom);
        const tail = batch.subarray(tailFrom);
        ftruncateSync(this.fd as number, 0);
        this.size = 0;
        if (head.length === 0) {
          removeQuietly(`${this.path}.1`);
          this.writeBatch(note ? Buffer.concat([note, tail]) : tail, done);
          return;
        }
        this.writeBatch(note ? Buffer.concat([note, head]) : head, (errno) => {
          if (errno !== undefined) done(errno);
          else this.rotate(tail, done);
        });
        return;
      }
      const data = note ? Buffer.concat([note, batch]) : batch;
      if (this.size > 0 && this.size + data.length > half) {
        this.rotate(data, done);
        return;
      }
      this.writeBatch(data, done);
    } catch (error) {
      done((error as NodeJS.ErrnoException).code ?? 'EIO');
    }
  }

  /**
   * The file becomes `<path>.1`, replacing the half before it (rename never follows a link at either
   * path), and `data` starts a new file; off the event loop: dropping the old half costs the
   * filesystem some time, and creating the new file as much as the rename.
   */
  private rotate(data: Buffer, done: (errno: string | undefined) => void): void {
    closeQuietly(this.fd as number);
    this.fd = undefined;
    rename(this.path, `${this.path}.1`, (error) => {
      if (error) {
        done(error.code ?? 'EIO');
        return;
      }
      this.openLater((failure) => {
        if (failure) done(failure.code ?? 'EIO');
        else this.writeBatch(data, done);
      });
    });
  }

  /** Appends data to the open file; a write cut short is taken back. */
  private writeBatch(data: Buffer, done: (errno: string | undefined) => void): void {
    const fd = this.fd as number;
    const before = this.size;
    const writeFrom = (offset: number): void => {
      write(fd, data, offset, data.length - offset, null, (error, n) => {
        if (error) {
          // A write cut short (no room for all of it) would leave half a line: take it back.
          try {
            ftruncateSync(fd, before);
          } catch {
            // Nothing more can be done; the next write starts after the fragment.
          }
          done(error.code ?? 'EIO');
          return;
        }
        if (offset + n < data.length) {
          writeFrom(offset + n);
          return;
        }
        this.size = before + data.length;
        done(undefined);
      });
    };
    if (data.length === 0) done(undefined);
    else writeFrom(0);
  }

  private written(batch: Buffer, errno: string | undefined, noteWritten: boolean): void {
    this.flying = undefined;
    if (errno !== undefined) this.missed(batch, errno);
    else {
      if (noteWritten) this.gapWritten();
    }
    if (this.wasBacklogged && this.pending.bytes <= LOW_WATER) {
      this.wasBacklogged = false;
      for (const listener of [...this.drainListeners]) {
        try {
          listener();
        } catch {
          // A listener's failure is its own.
        }
      }
    }
    if (this.pending.bytes > 0) {
      // Someone waits for everything to be written: no waiting for WRITE_EVERY_MS.
      if (this.idleWaiters.length > 0) this.flush();
      else this.schedule();
    } else {
      // Quiet again: the slabs a flood needed are let go.
      if (batch.length <= SLAB_BYTES) this.arena.shrink();
      this.idle();
    }
  }

  private idle(): void {
    if (this.pending.bytes > 0 || this.flying !== undefined) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private open(): void {
    this.adopt(openSync(this.path, WRITE_FLAGS, 0o600));
  }

  /** open(), with the file opened in the thread pool. */
  private openLater(done: (error: NodeJS.ErrnoException | undefined) => void): void {
    openAsync(this.path, WRITE_FLAGS, 0o600, (error, fd) => {
      if (error) {
        done(error);
        return;
      }
      try {
        this.adopt(fd);
      } catch (failure) {
        done(failure as NodeJS.ErrnoException);
        return;
      }
      done(undefined);
    });
  }

  /** Takes an opened log file as the one written to. */
  private adopt(fd: number): void {
    try {
      // A planted directory or device is not a log.
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
      this.size = stat.size;
    } catch (error) {
      closeQuietly(fd);
      throw error;
    }
    this.fd = fd;
  }

  private missed(batch: Buffer, errno: string): void {
    const { lines, bytes, first, last } = countRecords(batch);
    try {
      this.onMissed(lines);
    } catch {
      // Counting is not writing: it never stops the log.
    }
    if (this.gap) widenGap(this.gap, lines, bytes, last);
    else {
      const since = first ?? now();
      this.gap = { lines, bytes, since, until: last ?? since, errno };
    }
    if (!this.retry) {
      // Without new output the note would wait for ever: try again on a timer until it is written.
      this.retry = setInterval(() => this.writeGapNote(), GAP_RETRY_MS);
      this.retry.unref();
    }
  }

  /** Writes the note for the current gap on its own, when nothing else is being written. */
  private writeGapNote(): void {
    if (!this.gap || this.flying !== undefined || this.pending.bytes > 0) return;
    try {
      this.appendGapNote(this.gap);
    } catch {
      // Still no room: the retry timer tries again.
    }
  }

  /** Appends the note for `gap` on its own; throws while there is no room. */
  private appendGapNote(gap: Gap): void {
    const note = noteRecord(gap);
    appendNoFollow(this.path, note, 'write the session log');
    this.size += Buffer.byteLength(note);
    this.gapWritten();
  }

  private gapWritten(): void {
    this.gap = undefined;
    clearInterval(this.retry);
    this.retry = undefined;
    if (owingNotes.get(this.path) === this) owingNotes.delete(this.path);
  }
}

/** Where the record after position `at` (or `at` itself, if a record starts there) starts; 0 before the start. */
function lineAfter(batch: Buffer, at: number): number {
  if (at <= 0) return 0;
  return batch.indexOf(10, at - 1) + 1 || batch.length;
}

/**
 * Counts a part the bound dropped unwritten in an open gap, as missed() counts a batch: a block knows
 * its count, and its bytes are the lines' text, each with its `\n`; records are counted as written.
 */
function widenGapBy(gap: Gap, part: PendingPart): void {
  if ('block' in part) widenGap(gap, part.block.count, part.block.bytes.length, part.block.time);
  else {
    const { lines, bytes, last } = countRecords(part.records.bytes);
    widenGap(gap, lines, bytes, last);
  }
}

/** Adds lines to a gap; `until` only moves forward (lines dropped while a batch was written are newer). */
function widenGap(gap: Gap, lines: number, bytes: number, last: string | undefined): void {
  gap.lines += lines;
  gap.bytes += bytes;
  if (last !== undefined && last > gap.until) gap.until = last;
}

/** The output lines in encoded records (notes not counted), their text bytes plus one a line, and their times. */
function countRecords(batch: Buffer): { lines: number; bytes: number; first?: string; last?: string } {
  const lines = batch
    .toString('utf8')
    .split('\n')
    .map(parseRecord)
    .filter((line): line is OutputLine => line !== undefined && line !== 'note');
  return {
    lines: lines.length,
    bytes: lines.reduce((sum, line) => sum + Buffer.byteLength(line.text) + 1, 0),
    first: lines[0]?.time,
    last: lines.at(-1)?.time,
  };
}

function partSize(part: PendingPart): number {
  return 'records' in part ? part.records.bytes.length : part.size;
}

function heldBy(part: PendingPart): Held {
  return 'records' in part ? part.records : part.held;
}

function emptyPending(): Pending {
  return { parts: [], text: '', bytes: 0 };
}

/** Adds one record to the pending ones; they are encoded ENCODE_AT characters at a time. */
function encode(pending: Pending, record: string, arena: LogArena): void {
  pending.text += record;
  pending.bytes += record.length;
  if (pending.text.length >= ENCODE_AT) settle(pending, arena);
}

/** Encodes the pending text into the arena, after the records before it where they have room. */
function settle(pending: Pending, arena: LogArena): void {
  const { text } = pending;
  if (text === '') return;
  const last = pending.parts.at(-1);
  const before = last !== undefined && 'records' in last ? last : undefined;
  const extended = before && arena.extend(before.records, text);
  let written: number;
  if (before && extended) {
    written = extended.bytes.length - before.records.bytes.length;
    before.records = extended;
  } else {
    const records = arena.encode(text);
    pending.parts.push({ records });
    written = records.bytes.length;
  }
  pending.bytes += written - text.length;
  pending.text = '';
}

/** The pending records as one buffer (the pending text encoded first, blocks encoded as records). */
function pendingBytes(pending: Pending, arena: LogArena): Buffer {
  settle(pending, arena);
  const out = Buffer.allocUnsafe(pending.bytes);
  let pos = 0;
  for (const part of pending.parts) {
    if ('records' in part) pos += part.records.bytes.copy(out, pos);
    else pos = encodeBlock(part.block, out, pos);
  }
  return pos === out.length ? out : out.subarray(0, pos);
}

/** Bytes of a block's records: `SEQ TIME TOKEN TEXT\n` a line. */
function blockSize(block: OutputBlock): number {
  const fixed = block.time.length + TOKENS[block.stream].length + 3;
  return block.bytes.length + block.count * fixed + digitsIn(block.seq, block.count);
}

/** Decimal digits of the numbers from..from+count-1, all together. */
function digitsIn(from: number, count: number): number {
  let total = 0;
  let n = from;
  let left = count;
  let width = String(from).length;
  let next = 10 ** width;
  while (left > 0) {
    const here = Math.min(left, next - n);
    total += here * width;
    left -= here;
    n += here;
    width++;
    next *= 10;
  }
  return total;
}

/**
 * Writes a block's records into `out` at `pos` (blockSize bytes); the end. Built as one Latin-1 string
 * (each byte of the block one character, so its bytes come out as they are) and written at once: three
 * Buffer.copy calls a line (number, time and stream, text) cost some 190 ns each, which made encoding
 * what a flood's writes keep about as costly as finding the lines of all of it (bench/findings.md).
 */
function encodeBlock(block: OutputBlock, out: Buffer, pos: number): number {
  const middle = ` ${block.time} ${TOKENS[block.stream]} `;
  const text = block.bytes.toString('latin1');
  let records = '';
  let seq = block.seq;
  let at = 0;
  for (let i = 0; i < block.count; i++) {
    const nl = text.indexOf('\n', at);
    records += seq++ + middle + text.slice(at, nl + 1);
    at = nl + 1;
  }
  return pos + out.write(records, pos, 'latin1');
}

/** What reads a session's log after a sequence number, a piece at a time (LogReader). */
export interface LogSource {
  /** The next entries, or undefined once everything has been read. */
  next(maxBytes?: number): (OutputLine | SkippedLines)[] | undefined;
  /** Stops reading (a reader that is not read to the end). */
  close(): void;
}

/** Bytes of the log read at a time. */
const READ_BLOCK = 64 * 1024;
/**
 * The longest record LogReader waits for the end of: agentd writes lines of at most 64 KiB
 * (OUTPUT_LINE_MAX_BYTES) behind a short head. Bytes with no newline past it (a log a crash left with
 * blocks of zeros, or a planted one) are not a record: skipped to the next newline, where the numbered
 * lines go on (a gap shows where). Waiting for their end copied what had come so far at every block: a
 * sparse 1 GiB log held the daemon's event loop for more than ten minutes.
 */
const MAX_RECORD_BYTES = 1024 * 1024;

/**
 * Reads a session's log after a sequence number, a block at a time, so that a client that reads
 * slowly costs a block of memory, not the whole log: the lines, and a `skipped` entry for each stretch
 * the log does not have (trimmed to its bound, or never written). The files are read through open
 * descriptors, so a rotation while a client is still reading changes nothing it reads; a newer file
 * is picked up at the end. Last come the lines of a running session not yet on disk.
 */
export class LogReader implements LogSource {
  private readonly files: { fd: number; pos: number; ino: number }[] = [];
  private carry: Buffer = Buffer.alloc(0);
  /** Inside bytes longer than any record (MAX_RECORD_BYTES): dropped up to the next newline. */
  private skipping = false;
  private expected: number;
  private firstRecord = true;
  private pendingNote: string | undefined;
  private lastSeq: number;
  /** The seq of the last line read from the files, wherever the reader starts: a gap note's lines follow it. */
  private lastOnDisk = 0;
  /** What the running session had not written when the files were read to their end, still to read. */
  private live: (Buffer | OutputBlock)[] | undefined;
  private done = false;
  private readonly block = Buffer.allocUnsafe(READ_BLOCK);

  constructor(
    private readonly path: string,
    afterSeq = 0,
  ) {
    this.expected = afterSeq + 1;
    this.lastSeq = afterSeq;
    for (const file of [`${path}.1`, path]) this.openFile(file);
  }

  /** The next entries (about maxBytes of the log), or undefined once everything has been read. */
  next(maxBytes = READ_BLOCK): (OutputLine | SkippedLines)[] | undefined {
    if (this.done) return undefined;
    const out: (OutputLine | SkippedLines)[] = [];
    let read = 0;
    while (read < maxBytes) {
      const file = this.files[0];
      if (!file) break;
      let n = 0;
      try {
        n = readSync(file.fd, this.block, 0, READ_BLOCK, file.pos);
      } catch {
        n = 0;
      }
      if (n === 0) {
        // The end of this file: a newer one may have taken its place since (a rotation).
        if (this.files.length === 1 && this.rotatedSince(file.ino)) this.openFile(this.path);
        closeQuietly(file.fd);
        this.files.shift();
        // A record cut short at the end of a file is a write still under way: not a record.
        this.carry = Buffer.alloc(0);
        this.skipping = false;
        continue;
      }
      file.pos += n;
      read += n;
      let data =
        this.carry.length === 0
          ? this.block.subarray(0, n)
          : Buffer.concat([this.carry, this.block.subarray(0, n)]);
      if (this.skipping) {
        const end = data.indexOf(10);
        if (end === -1) continue;
        data = data.subarray(end + 1);
        this.skipping = false;
      }
      const last = data.lastIndexOf(10);
      this.carry = Buffer.from(last === -1 ? data : data.subarray(last + 1));
      if (this.carry.length > MAX_RECORD_BYTES) {
        this.carry = Buffer.alloc(0);
        this.skipping = true;
      }
      if (last === -1) continue;
      const text = data.toString('utf8', 0, last);
      let at = 0;
      while (at <= text.length) {
        const nl = text.indexOf('\n', at);
        const raw = text.slice(at, nl === -1 ? text.length : nl);
        at = nl === -1 ? text.length + 1 : nl + 1;
        this.take(raw, out);
      }
    }
    if (this.files.length === 0) {
      if (this.live === undefined) {
        // Everything on disk is read: in the same turn, what the running session has not written yet.
        const log = writing.get(this.path);
        this.live = log?.unwritten() ?? [];
        // Lines it dropped unwritten leave a gap before the rest, for the same reason as a rotation.
        if (log?.dropping) this.pendingNote ??= TRIMMED_REASON;
      }
      read = this.readLive(read, maxBytes, out);
      if (this.live.length === 0) {
        this.done = true;
        this.trailingNote(out);
      }
    }
    return out.length === 0 && this.done ? undefined : out;
  }

  /** Of what was not written yet, about maxBytes more (at least one record or block). */
  private readLive(read: number, maxBytes: number, out: (OutputLine | SkippedLines)[]): number {
    const live = this.live as (Buffer | OutputBlock)[];
    while (live.length > 0 && (read < maxBytes || out.length === 0)) {
      const part = live[0] as Buffer | OutputBlock;
      if (!Buffer.isBuffer(part)) {
        live.shift();
        read += part.bytes.length;
        if (part.seq + part.count > this.expected) for (const line of linesOfBlock(part)) this.add(line, out);
        continue;
      }
      // Whole records, about what is left of maxBytes.
      let end = part.length;
      if (end > maxBytes - read) {
        end = part.lastIndexOf(10, Math.max(0, maxBytes - read - 1)) + 1;
        if (end === 0) end = part.indexOf(10) + 1 || part.length;
      }
      for (const raw of part.toString('utf8', 0, end).split('\n')) {
        const line = parseRecord(raw);
        if (line !== undefined && line !== 'note') this.add(line, out);
      }
      read += end;
      if (end === part.length) live.shift();
      else live[0] = part.subarray(end);
    }
    return read;
  }

  /** Closes the files (a reader that is not read to the end). */
  close(): void {
    for (const file of this.files.splice(0)) closeQuietly(file.fd);
    this.live = [];
    this.done = true;
  }

  private take(raw: string, out: (OutputLine | SkippedLines)[]): void {
    const parsed = parseRecord(raw);
    if (parsed === 'note') {
      this.pendingNote = raw.slice(raw.indexOf(' note ') + 6);
      return;
    }
    // A line that is not a record (a log of an older agentd) is read as a stdout line.
    const line = parsed ?? { seq: this.lastSeq + 1, time: now(), stream: 'stdout', text: raw };
    this.lastOnDisk = line.seq;
    this.add(line, out);
  }

  /**
   * A gap note the log ends with (no line written after it yet, e.g. the session ended while the state
   * dir was full): its lines are missing all the same, and they follow the last line on disk.
   */
  private trailingNote(out: (OutputLine | SkippedLines)[]): void {
    const note = this.pendingNote;
    const lines = note === undefined ? undefined : GAP_NOTE_LINES.exec(note)?.[1];
    if (note === undefined || lines === undefined) return;
    this.pendingNote = undefined;
    const fromSeq = Math.max(this.lastOnDisk + 1, this.expected);
    const toSeq = this.lastOnDisk + Number(lines);
    if (toSeq < fromSeq) return;
    out.push({ fromSeq, toSeq, count: toSeq - fromSeq + 1, reason: note });
    this.expected = toSeq + 1;
  }

  private add(line: OutputLine, out: (OutputLine | SkippedLines)[]): void {
    const note = this.pendingNote;
    this.pendingNote = undefined;
    const first = this.firstRecord;
    this.firstRecord = false;
    if (line.seq < this.expected) return;
    if (line.seq > this.expected) {
      out.push({
        fromSeq: this.expected,
        toSeq: line.seq - 1,
        count: line.seq - this.expected,
        reason: note ?? (first ? TRIMMED_REASON : 'not in the log'),
      });
    }
    out.push(line);
    this.expected = line.seq + 1;
    this.lastSeq = line.seq;
  }

  private openFile(file: string): void {
    let fd: number;
    try {
      fd = openSync(file, READ_NO_FOLLOW);
    } catch {
      // Not there (yet), or a link we do not follow.
      return;
    }
    try {
      // A planted FIFO, device or directory is not a log: never waited on, read as no log.
      this.files.push({ fd, pos: 0, ino: regularFileStat(fd, file).ino });
    } catch {
      closeQuietly(fd);
    }
  }

  private rotatedSince(ino: number): boolean {
    try {
      return statSync(this.path).ino !== ino;
    } catch {
      return false;
    }
  }
}

/** A session's whole log after `afterSeq` at once (see LogReader). */
export function readSessionLog(path: string, afterSeq = 0): (OutputLine | SkippedLines)[] {
  const reader = new LogReader(path, afterSeq);
  const out: (OutputLine | SkippedLines)[] = [];
  for (let entries = reader.next(); entries !== undefined; entries = reader.next()) out.push(...entries);
  return out;
}

/** A session's log as text, one output line a line, a line for each stretch of missing lines. */
export function renderSessionLog(path: string): string {
  return readSessionLog(path)
    .map((entry) => `${isSkipped(entry) ? skippedText(entry) : entry.text}\n`)
    .join('');
}

/** How a reader shows lines it does not get: `[agentd: N line(s) skipped (seq A-B): why]`. */
export function skippedText({ count, fromSeq, toSeq, reason }: SkippedLines): string {
  return `[agentd: ${count} line(s) skipped (seq ${fromSeq}-${toSeq}): ${reason}]`;
}

/** Whether an entry of readSessionLog is a stretch of skipped lines. */
export function isSkipped(entry: OutputLine | SkippedLines): entry is SkippedLines {
  return 'count' in entry;
}

function record(line: OutputLine): string {
  return `${line.seq} ${line.time} ${TOKENS[line.stream]}${line.cont ? '+' : ''} ${line.text}\n`;
}

/** How many lines a gap note (noteRecord) says are missing. */
const GAP_NOTE_LINES = /^\[agentd: (\d+) line\(s\), /;

function noteRecord(gap: Gap): string {
  const reason =
    gap.errno === 'ENOSPC' || gap.errno === 'EDQUOT'
      ? 'the state dir was full'
      : 'the log could not be written';
  return `- ${now()} note [agentd: ${gap.lines} line(s), ${gap.bytes} bytes of output are missing here: ${reason} (${gap.errno}) from ${gap.since} to ${gap.until}; followers received them live]\n`;
}

/**
 * The log's last container lines per stream (at most `max` each, oldest first), as it holds them
 * (masked): where a replay of Podman's copy resumes is found by them (see resume-overlap.ts). A line the
 * log holds cut in parts is one line to Podman: its parts joined.
 */
export function resumeTail(path: string, max: number): Record<'stdout' | 'stderr', string[]> {
  const whole: Record<'stdout' | 'stderr', string[]> = { stdout: [], stderr: [] };
  for (const line of readRecords(path).lines) {
    if (line.stream === 'agentd') continue;
    const lines = whole[line.stream];
    if (line.cont && lines.length > 0) lines[lines.length - 1] += line.text;
    else lines.push(line.text);
  }
  return { stdout: whole.stdout.slice(-max), stderr: whole.stderr.slice(-max) };
}

/**
 * The records of a log (`<path>.1`, then `<path>`). Notes are keyed by the seq of the line after
 * them. A line that is not a record (a log of an older agentd) is read as a stdout line.
 */
function readRecords(path: string): { lines: OutputLine[]; notes: Map<number, string>; trimmed: boolean } {
  const lines: OutputLine[] = [];
  const notes = new Map<number, string>();
  let pendingNote: string | undefined;
  for (const file of [`${path}.1`, path]) {
    let content: string;
    try {
      content = readNoFollow(file).toString('utf8');
    } catch {
      continue;
    }
    let fallbackTime: string | undefined;
    let at = 0;
    while (at < content.length) {
      const nl = content.indexOf('\n', at);
      // A last line without its newline is a write still under way: not a record yet.
      if (nl === -1) break;
      const raw = content.slice(at, nl);
      at = nl + 1;
      const parsed = parseRecord(raw);
      if (parsed === 'note') {
        pendingNote = raw.slice(raw.indexOf(' note ') + 6);
        continue;
      }
      let line = parsed;
      if (line === undefined) {
        fallbackTime ??= safeMtime(file);
        line = { seq: (lines.at(-1)?.seq ?? 0) + 1, time: fallbackTime, stream: 'stdout', text: raw };
      }
      if (pendingNote !== undefined) {
        notes.set(line.seq, pendingNote);
        pendingNote = undefined;
      }
      lines.push(line);
    }
  }
  // A note at the very end (nothing written after it yet) still makes the log incomplete.
  if (pendingNote !== undefined) notes.set((lines.at(-1)?.seq ?? 0) + 1, pendingNote);
  return { lines, notes, trimmed: (lines[0]?.seq ?? 1) !== 1 };
}

function parseRecord(raw: string): OutputLine | 'note' | undefined {
  const a = raw.indexOf(' ');
  const b = a === -1 ? -1 : raw.indexOf(' ', a + 1);
  const c = b === -1 ? -1 : raw.indexOf(' ', b + 1);
  if (c === -1) return undefined;
  const head = raw.slice(0, a);
  const token = raw.slice(b + 1, c);
  if (head === '-' && token === 'note') return 'note';
  if (!/^\d+$/.test(head)) return undefined;
  const cont = token.endsWith('+');
  const stream = STREAMS[cont ? token.slice(0, -1) : token];
  if (stream === undefined) return undefined;
  const line: OutputLine = { seq: Number(head), time: raw.slice(a + 1, b), stream, text: raw.slice(c + 1) };
  if (cont) line.cont = true;
  return line;
}

let lastMs = 0;
let lastIso = '';
/** The time as ISO 8601; computed once per millisecond (lines come by the thousand). */
function now(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

function safeMtime(file: string): string {
  try {
    return statSync(file).mtime.toISOString();
  } catch {
    return now();
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closing a log that failed changes nothing.
  }
}
