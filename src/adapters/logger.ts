import { writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import pino, { type DestinationStream, type Logger } from 'pino';
import { inertJson, visibleKeepingColours } from '../visible-text.js';

export type LogFormat = 'json' | 'pretty';

/** Field names that may hold credential values: redacted once here, for every logger. */
const REDACT = [
  'value',
  '*.value',
  'token',
  '*.token',
  'repoToken',
  '*.repoToken',
  'credentials[*].value',
  'secret',
];

/**
 * What the log holds while stderr takes no writes (a log file on a full disk, a pipe nobody reads):
 * beyond it the newest lines are dropped, counted, and said in one line once stderr takes writes again.
 */
export const LOG_HELD_MAX_BYTES = 1024 * 1024;
/** While stderr takes no writes, writing is tried again this often (not at every line). */
export const LOG_RETRY_MS = 1000;

/** How long the exit waits for a stderr pipe that takes no more for now (EAGAIN). */
const FLUSH_WAIT_MS = 2000;

/** Lines the log could not hold while stderr took no writes. */
export interface LostLines {
  lines: number;
  bytes: number;
  /** The error of the first write that failed, e.g. ENOSPC. */
  code: string;
  from: Date;
  to: Date;
}

/** The log's stderr takes no writes: since when, why, and what it has lost and holds so far. */
export interface LogUnwritten {
  code: string;
  since: Date;
  /** Lines dropped beyond LOG_HELD_MAX_BYTES: they will never be written. */
  lostLines: number;
  /** Bytes held to be written once stderr takes writes again. */
  heldBytes: number;
}

/** What `agentd status` says (its `degraded` reason) while the daemon's log cannot be written. */
export function logUnwrittenReason(u: LogUnwritten): string {
  const full = u.code === 'ENOSPC' || u.code === 'EDQUOT';
  const lost = u.lostLines === 0 ? 'no line lost yet' : `${u.lostLines} line(s) lost`;
  const fix = full ? 'free space on the filesystem stderr is written to' : 'fix where stderr goes';
  return `the daemon's log could not be written since ${u.since.toISOString()}: ${lost}, ${u.heldBytes} bytes held to write once it can (${u.code}); ${fix}`;
}

const SINK = Symbol('agentd.logSink');

/**
 * Why the daemon's log is not being written, while it is not (undefined for a logger that createLogger
 * did not make, and while it is written). Child loggers answer for their root's sink.
 */
export function logUnwritten(log: Logger): LogUnwritten | undefined {
  return (log as unknown as { [SINK]?: LogSink })[SINK]?.unwritten();
}

/** The message of the line that says lines were lost. */
export function lostLinesMessage(lost: LostLines): string {
  const why =
    lost.code === 'ENOSPC' || lost.code === 'EDQUOT'
      ? ': the filesystem of the file it goes to was full; free space there'
      : '';
  return `${lost.lines} log line(s), ${lost.bytes} bytes, were not written: stderr took no writes (${lost.code}) from ${lost.from.toISOString()} to ${lost.to.toISOString()}${why}`;
}

/**
 * Writes the log's lines to a file descriptor (stderr) and never throws: a log that cannot be written
 * must not stop the daemon (an exception in a machine's action would stop the machine, with sessions
 * running). A line that finds stderr taking no writes is held, with those after it, up to
 * LOG_HELD_MAX_BYTES; more is dropped and counted. The held lines are written, in order and whole (a
 * write cut short goes on where it stopped), once stderr takes writes again (tried every LOG_RETRY_MS
 * and at exit, never at every line), followed by the line `note` makes of what was dropped.
 */
export class LogSink {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private failed: { code: string; since: Date } | undefined;
  private dropped = { lines: 0, bytes: 0 };
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly fd: number,
    private readonly note: (lost: LostLines) => string,
  ) {}

  write(text: string): void {
    const bytes = Buffer.from(text, 'utf8');
    if (this.heldBytes + bytes.length > LOG_HELD_MAX_BYTES) {
      this.dropped.lines += Math.max(1, text.split('\n').length - 1);
      this.dropped.bytes += bytes.length;
      return;
    }
    this.held.push(bytes);
    this.heldBytes += bytes.length;
    if (this.failed === undefined) this.drain();
  }

  /**
   * Writes what is held, at the exit: a pipe that is only slow (EAGAIN) is waited for up to
   * FLUSH_WAIT_MS; what still fails then is lost.
   */
  flush(): void {
    this.drain();
    const gate = new Int32Array(new SharedArrayBuffer(4));
    for (let waited = 0; this.held.length > 0 && this.failed?.code === 'EAGAIN'; waited += 10) {
      if (waited >= FLUSH_WAIT_MS) break;
      Atomics.wait(gate, 0, 0, 10);
      this.drain();
    }
  }

  /** Bytes held, not yet written. */
  get pending(): number {
    return this.heldBytes;
  }

  /**
   * Why the log is not being written, while it is not: stderr has failed its writes for a retry at least
   * (a pipe that was busy for a moment is not said), or lines were already dropped. Undefined once a
   * write succeeds again and what was held is written.
   */
  unwritten(now: Date = new Date()): LogUnwritten | undefined {
    const failed = this.failed;
    if (failed === undefined) return undefined;
    if (this.dropped.lines === 0 && now.getTime() - failed.since.getTime() < LOG_RETRY_MS) return undefined;
    return {
      code: failed.code,
      since: failed.since,
      lostLines: this.dropped.lines,
      heldBytes: this.heldBytes,
    };
  }

  private drain(): void {
    for (;;) {
      const head = this.held[0];
      if (head === undefined) {
        const failed = this.failed;
        if (failed === undefined || this.dropped.lines === 0) break;
        // Said after the lines held before the drop, where the lost ones were.
        const text = this.note({ ...this.dropped, code: failed.code, from: failed.since, to: new Date() });
        const note = Buffer.from(text, 'utf8');
        this.dropped = { lines: 0, bytes: 0 };
        this.held.push(note);
        this.heldBytes += note.length;
        continue;
      }
      let written: number;
      try {
        written = writeSync(this.fd, head);
      } catch (error) {
        this.failed ??= { code: (error as NodeJS.ErrnoException).code ?? 'EIO', since: new Date() };
        this.retry ??= setTimeout(() => {
          this.retry = undefined;
          this.drain();
        }, LOG_RETRY_MS).unref();
        return;
      }
      this.heldBytes -= written;
      if (written < head.length) this.held[0] = head.subarray(written);
      else this.held.shift();
    }
    this.failed = undefined;
  }
}

/**
 * pino JSON lines on stderr, or human-readable lines with --log-format pretty. What the log says can come
 * from an agent or a remote host (an outcome's message, a host's answer), and the log is read on
 * terminals: JSON has what a terminal acts on escaped (src/visible-text.ts), pretty lines have it made
 * visible, their own colours kept.
 */
export async function createLogger(format: LogFormat, level: string): Promise<Logger> {
  const options = { level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' } };
  if (format === 'pretty') {
    // Loaded only when asked for: clients and JSON daemons never pay for it.
    const { default: pretty } = await import('pino-pretty');
    const sink = new LogSink(2, (lost) => `[${new Date().toISOString()}] WARN: ${lostLinesMessage(lost)}\n`);
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        sink.write(visibleKeepingColours(chunk.toString('utf8')));
        done();
      },
    });
    return withSink(pino(options, pretty({ destination, sync: true, ignore: 'pid,hostname' })), sink);
  }
  const sink = new LogSink(
    2,
    (lost) =>
      `${JSON.stringify({
        level: 40,
        time: Date.now(),
        pid: process.pid,
        event: 'daemon.log_lost',
        lines: lost.lines,
        bytes: lost.bytes,
        code: lost.code,
        from: lost.from.toISOString(),
        to: lost.to.toISOString(),
        msg: lostLinesMessage(lost),
      })}\n`,
  );
  return withSink(
    pino(options, {
      write: (line: string) => sink.write(inertJson(line)),
      flush: () => sink.flush(),
    } as DestinationStream),
    sink,
  );
}

/** Keeps the sink where logUnwritten finds it: pino's children inherit it (they are made by Object.create). */
function withSink(log: Logger, sink: LogSink): Logger {
  Object.defineProperty(log, SINK, { value: sink });
  return log;
}

export type { Logger };
