import type { Connection } from '../adapters/socket-server.js';
import { PROTOCOL_VERSION } from '../constants.js';
import { type LogSource, type OutputLine, type SkippedLines, skippedText } from '../runner/session-log.js';
import { type RequestHead, reply } from './context.js';
import type { ReplyBody } from './replies.js';

/**
 * A batch of the bus serialised once for every follower of its session: the `output` bodies, and what
 * is sent of it with each reply prefix (followers without a request id share one).
 */
const serialised = new WeakMap<readonly OutputLine[], { bodies: string[]; byPrefix: Map<string, Newest> }>();

/** What a follower is sent of a batch: its lines from `start` on (all of them, or the newest that fit). */
interface Newest {
  start: number;
  data: Buffer;
}

/**
 * One client following one session's output over one connection. Output lines are batched (one
 * write per turn) and serialised once for all followers. A client that reads slower than the session
 * prints falls behind: while its connection lags, lines are skipped and counted, and once it has read
 * what was queued it gets one marker, `[agentd: N lines skipped ...]`, then the newest output. It is
 * never cut off for lagging, and never gets half a message. Replies that must arrive (phases, the
 * outcome) are never skipped.
 */
export class Follower {
  private batch: Buffer[] = [];
  /** Bytes in the batch: sent at once beyond FLUSH_AT, so that lagging is seen. */
  private batchSize = 0;
  private scheduled = false;
  private skipped: SkippedLines | undefined;
  private stopDrain: (() => void) | undefined;
  /** The newest seq sent (or skipped). */
  lastSeq = 0;
  private readonly prefix: string;

  constructor(
    private readonly connection: Connection,
    private readonly request: RequestHead,
    private readonly sessionId: string,
    /** Lines up to here the client has (a follower that resumes): they are not sent again. */
    afterSeq = 0,
  ) {
    this.lastSeq = afterSeq;
    // Every reply in the request's version and with its id: what `reply()` adds, once per follower.
    const v = request.v ?? PROTOCOL_VERSION;
    this.prefix = request.id === undefined ? `{"v":${v},` : `{"v":${v},"id":${JSON.stringify(request.id)},`;
  }

  /** Live lines (one batch of the bus): sent, or skipped while the client lags. */
  lines(lines: readonly OutputLine[]): void {
    if (this.connection.closed) return;
    let from = 0;
    while (from < lines.length && (lines[from] as OutputLine).seq <= this.lastSeq) from++;
    const last = lines.at(-1);
    if (last === undefined || from === lines.length) return;
    const first = lines[from] as OutputLine;
    this.lastSeq = last.seq;
    if (this.skipped || this.connection.lagging) {
      this.skip({ fromSeq: first.seq, toSeq: last.seq, count: lines.length - from, reason: LAG_REASON });
      return;
    }
    this.queueNewest(lines, from);
    // Much at once (lines handed over one by one, or a large batch): written now, so that the lines
    // after it see whether the client keeps up, instead of all of them going out in one write.
    if (this.batchSize > FLUSH_AT) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  /** Lines the client will not get (a trimmed log, or lag): one marker, sent as soon as it can be. */
  skip(skipped: SkippedLines): void {
    this.lastSeq = Math.max(this.lastSeq, skipped.toSeq);
    if (this.skipped) {
      this.skipped.toSeq = skipped.toSeq;
      this.skipped.count += skipped.count;
      if (this.skipped.reason !== skipped.reason) this.skipped.reason = LAG_REASON;
    } else {
      this.skipped = { ...skipped };
    }
    if (this.connection.lagging) {
      this.stopDrain ??= this.connection.onDrain(() => this.flush());
    } else {
      this.flush();
    }
  }

  /** A reply that must arrive: after the batched lines and any skip marker. */
  send(body: ReplyBody): void {
    this.flush(true);
    reply(this.connection, this.request, body);
  }

  /**
   * History (a log read back): sent a block at a time, waiting for the client to read each, never
   * skipped. Resolves when all is sent, or the connection closed.
   */
  async replay(reader: LogSource): Promise<void> {
    try {
      for (let entries = reader.next(); entries !== undefined; entries = reader.next()) {
        if (this.connection.closed) return;
        let chunk: string[] = [];
        for (const entry of entries) {
          if ('count' in entry) {
            this.connection.sendRaw(chunk.join(''));
            chunk = [];
            this.skip(entry);
            this.flush(true);
          } else if (entry.seq > this.lastSeq) {
            this.lastSeq = entry.seq;
            chunk.push(this.serialise(entry));
          }
        }
        this.connection.sendRaw(chunk.join(''));
        await this.writable();
      }
    } finally {
      reader.close();
    }
  }

  /** Stops following: nothing more is sent. */
  stop(): void {
    this.stopDrain?.();
    this.stopDrain = undefined;
    this.batch = [];
    this.batchSize = 0;
  }

  /** Resolves once the client has read what was queued (or the connection closed). */
  private writable(): Promise<void> {
    if (!this.connection.lagging || this.connection.closed) return Promise.resolve();
    return new Promise((resolve) => {
      // Whichever comes first takes both listeners back: a long log read waits like this once a block.
      let stopDrain: (() => void) | undefined;
      let stopClose: (() => void) | undefined;
      const done = () => {
        stopDrain?.();
        stopClose?.();
        resolve();
      };
      stopDrain = this.connection.onDrain(done);
      stopClose = this.connection.onClose(done);
    });
  }

  private flush(force = false): void {
    if (this.connection.closed) return;
    if (this.batch.length > 0) {
      for (const data of this.batch) this.connection.sendRaw(data);
      this.batch = [];
      this.batchSize = 0;
    }
    if (this.skipped && (force || !this.connection.lagging)) {
      const { count, fromSeq, toSeq, reason } = this.skipped;
      this.skipped = undefined;
      this.stopDrain?.();
      this.stopDrain = undefined;
      reply(this.connection, this.request, {
        type: 'output',
        sessionId: this.sessionId,
        line: skippedText({ count, fromSeq, toSeq, reason }),
        stream: 'agentd',
        skipped: { fromSeq, toSeq, count, reason },
      });
    }
  }

  /**
   * Lines from `from` on, or only the newest of them that fit in MAX_BATCH_BYTES (always the newest
   * one): the older ones are skipped as if the client lagged. A batch is what the daemon read in one
   * turn, which a loaded machine makes large (3.4 MB for one client of four `yes` measured); without
   * the cut, every client that stops reading kept one such batch queued for it.
   */
  private queueNewest(lines: readonly OutputLine[], from: number): void {
    const { start, data } = from === 0 ? this.sharedNewest(lines) : this.newest(lines, from);
    if (start > from) {
      const skippedTo = lines[start - 1] as OutputLine;
      const first = lines[from] as OutputLine;
      this.skip({ fromSeq: first.seq, toSeq: skippedTo.seq, count: start - from, reason: BATCH_REASON });
      // The marker went out first; if the connection lags it is still waiting, and these lines join it.
      if (this.skipped) {
        const newest = lines.at(-1) as OutputLine;
        const fromSeq = (lines[start] as OutputLine).seq;
        this.skip({ fromSeq, toSeq: newest.seq, count: lines.length - start, reason: LAG_REASON });
        return;
      }
    }
    this.queue(data);
  }

  /** What `newest` gives for a whole batch, serialised once for every follower with this prefix. */
  private sharedNewest(lines: readonly OutputLine[]): Newest {
    let cached = serialised.get(lines);
    if (!cached) {
      cached = { bodies: lines.map((line) => bodyOf(this.sessionId, line)), byPrefix: new Map() };
      serialised.set(lines, cached);
    }
    let newest = cached.byPrefix.get(this.prefix);
    if (newest === undefined) {
      newest = this.newest(lines, 0, cached.bodies);
      cached.byPrefix.set(this.prefix, newest);
    }
    return newest;
  }

  /** The lines from `from` on as sent, or the newest that fit in MAX_BATCH_BYTES and where they start. */
  private newest(lines: readonly OutputLine[], from: number, bodies?: readonly string[]): Newest {
    const texts: string[] = [];
    for (let i = from; i < lines.length; i++) texts.push(this.serialise(lines[i] as OutputLine, bodies?.[i]));
    // Three bytes a character at most: most batches fit without measuring.
    let chars = 0;
    for (const text of texts) chars += text.length;
    if (chars * 3 <= MAX_BATCH_BYTES) return { start: from, data: Buffer.from(texts.join('')) };
    let bytes = 0;
    let start = lines.length;
    while (start > from) {
      const size = Buffer.byteLength(texts[start - 1 - from] as string);
      if (start < lines.length && bytes + size > MAX_BATCH_BYTES) break;
      bytes += size;
      start--;
    }
    return { start, data: Buffer.from(texts.slice(start - from).join('')) };
  }

  private queue(data: Buffer): void {
    this.batch.push(data);
    this.batchSize += data.length;
  }

  private serialise(line: OutputLine, body = bodyOf(this.sessionId, line)): string {
    return `${this.prefix}${body.slice(1)}\n`;
  }
}

/** The `output` reply of a line, without `v` and `id`. */
function bodyOf(sessionId: string, line: OutputLine): string {
  return JSON.stringify({
    type: 'output',
    sessionId,
    line: line.text,
    seq: line.seq,
    stream: line.stream,
    time: line.time,
    ...(line.cont ? { cont: true } : {}),
  });
}

/**
 * The most of one batch queued for one client, beyond which its older lines are skipped. At least one
 * line always goes: a block of 64 KiB of control characters is some 400 KB as JSON.
 */
const MAX_BATCH_BYTES = 256 * 1024;

/** Queued lines beyond which they are written at once (the connection's lag threshold is 64 KiB). */
const FLUSH_AT = 64 * 1024;

const LAG_REASON = 'this client read slower than the session printed';

const BATCH_REASON = `the session printed more than ${MAX_BATCH_BYTES / 1024} KiB at once`;
