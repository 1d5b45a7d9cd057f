import type { ChunkSource } from './output-channel.js';

/**
 * Reading a container's output without trusting it: lines are cut at a fixed maximum (a stream that
 * never sends a newline still comes out in pieces), the work done per event-loop turn is bounded (the
 * control plane stays responsive whatever the agent prints), and the consumer can pause the pipe
 * (backpressure reaches the container instead of memory growing in the daemon).
 */

/** One piece of output: a whole line, or a part of a line longer than the maximum. */
export interface OutputPiece {
  /** Decoded as UTF-8 (invalid bytes become U+FFFD), without the line break. */
  text: string;
  /** A line break (or the end of the stream) ends this piece; false: the line goes on in the next piece. */
  end: boolean;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits bytes into lines at `\n`, `\r\n` and a lone `\r` (as readline does), cutting any line longer
 * than maxBytes into pieces of at most maxBytes bytes, at a UTF-8 character boundary. Holds at most
 * maxBytes bytes of an unfinished line. A chunk is taken with `feed` and its pieces with `next`, one
 * at a time, so that a consumer can stop in the middle of a chunk and carry on later.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  /** The last chunk ended in `\r`: a `\n` starting the next one belongs to that line break. */
  private afterCr = false;
  private chunk: Buffer | undefined;
  private at = 0;
  private nextLf = -1;
  private nextCr = -1;
  /** Whether the piece `next` returned last ends its line. */
  end = false;
  /** How many lines the block `block` returned last holds. */
  blockLines = 0;
  /** The next byte starts a line (nothing of the current one was handed on or is held). */
  private lineStart = true;
  /** block() has nothing more to offer in this chunk (until one is taken). */
  private offered = false;

  constructor(private readonly maxBytes: number) {
    if (maxBytes < 4) throw new RangeError('maxBytes must be at least 4');
  }

  /** Takes a chunk; its pieces come from next(). The previous chunk must have been used up. */
  feed(chunk: Buffer): void {
    this.chunk = chunk;
    this.at = 0;
    this.offered = false;
    if (this.afterCr) {
      this.afterCr = false;
      if (chunk[0] === LF) this.at = 1;
    }
    this.nextLf = chunk.indexOf(LF, this.at);
    this.nextCr = chunk.indexOf(CR, this.at);
  }

  /** The next piece of the chunk (`end` says whether it ends a line), or undefined when it is used up. */
  next(): string | undefined {
    const chunk = this.chunk;
    if (chunk === undefined) return undefined;
    const at = this.at;
    if (at >= chunk.length) {
      this.chunk = undefined;
      return undefined;
    }
    if (this.nextLf !== -1 && this.nextLf < at) this.nextLf = chunk.indexOf(LF, at);
    if (this.nextCr !== -1 && this.nextCr < at) this.nextCr = chunk.indexOf(CR, at);
    const { nextLf, nextCr } = this;
    const brk = nextLf === -1 ? nextCr : nextCr === -1 ? nextLf : Math.min(nextLf, nextCr);
    const lineEnd = brk === -1 ? chunk.length : brk;
    // A line that will not fit: cut it.
    if (this.size + (lineEnd - at) > this.maxBytes) {
      const cut = charBoundary(chunk, at + (this.maxBytes - this.size), at);
      this.at = cut;
      this.end = false;
      this.lineStart = false;
      return this.take(chunk, at, cut);
    }
    if (brk === -1) {
      if (lineEnd > at) {
        // A copy: the chunk may be the source's buffer, read into again (see ChunkSource).
        this.parts.push(Buffer.from(chunk.subarray(at, lineEnd)));
        this.size += lineEnd - at;
      }
      this.chunk = undefined;
      return undefined;
    }
    const text = this.take(chunk, at, lineEnd);
    let after = brk + 1;
    if (chunk[brk] === CR) {
      if (after === chunk.length) this.afterCr = true;
      else if (chunk[after] === LF) after++;
    }
    this.at = after;
    this.end = true;
    this.lineStart = true;
    return text;
  }

  /**
   * Whole lines at once, undecoded, where nothing needs a line of its own: from the start of a line,
   * the run of complete lines of the chunk, at most maxLines of them and maxBytes (but one line at
   * least), ending before a line with a `\r` or longer than the maximum; each ends in `\n`, and
   * `blockLines` says how many there are.
   * Undefined when there is none; then (or when the consumer does not take them) next() hands on the
   * same bytes line by line. Offered once per chunk unless taken, so a consumer that declines pays for
   * one look, not one per line.
   */
  block(maxLines = Number.POSITIVE_INFINITY, maxBytes = Number.POSITIVE_INFINITY): Buffer | undefined {
    const chunk = this.chunk;
    if (chunk === undefined || this.offered || this.size !== 0 || !this.lineStart) return undefined;
    this.offered = true;
    const at = this.at;
    if (this.nextCr !== -1 && this.nextCr < at) this.nextCr = chunk.indexOf(CR, at);
    const before = this.nextCr === -1 ? chunk.length : this.nextCr;
    let end = at - 1;
    let lines = 0;
    for (
      let nl = chunk.indexOf(LF, at);
      nl !== -1 && nl < before && lines < maxLines;
      nl = chunk.indexOf(LF, nl + 1)
    ) {
      if (nl - end - 1 > this.maxBytes || (lines > 0 && nl - at >= maxBytes)) break;
      end = nl;
      lines++;
    }
    if (lines === 0) return undefined;
    this.blockLines = lines;
    return chunk.subarray(at, end + 1);
  }

  /** The consumer took what block() offered: next() goes on after it. */
  took(block: Buffer): void {
    this.at += block.length;
    this.end = true;
    this.offered = false;
  }

  /** All pieces of one chunk (tests, and consumers that never stop in the middle). */
  *split(chunk: Buffer): Generator<OutputPiece, void, undefined> {
    this.feed(chunk);
    for (let text = this.next(); text !== undefined; text = this.next()) yield { text, end: this.end };
  }

  /** The end of the stream: what is left of an unfinished line, if anything. */
  flush(): OutputPiece | undefined {
    this.lineStart = true;
    if (this.size === 0) return undefined;
    const text = Buffer.concat(this.parts).toString('utf8');
    this.parts = [];
    this.size = 0;
    return { text, end: true };
  }

  /** The held bytes of the line plus chunk[from, to), decoded; the holding buffer is emptied. */
  private take(chunk: Buffer, from: number, to: number): string {
    if (this.size === 0) return chunk.toString('utf8', from, to);
    this.parts.push(chunk.subarray(from, to));
    const text = Buffer.concat(this.parts).toString('utf8');
    this.parts = [];
    this.size = 0;
    return text;
  }
}

/** The index at or before `at` (but after `floor`) where a UTF-8 character starts. */
function charBoundary(chunk: Buffer, at: number, floor: number): number {
  let cut = at;
  // Continuation bytes are 10xxxxxx; a character is at most 4 bytes.
  for (let back = 0; back < 3 && cut > floor && ((chunk[cut] ?? 0) & 0xc0) === 0x80; back++) cut--;
  return cut > floor ? cut : at;
}

export interface OutputReaderOptions {
  /** Longest piece of a line, in bytes. */
  maxLineBytes: number;
  /**
   * Pieces (a block's lines each count) handed over per event-loop turn before the reader yields to
   * other work; and no more than maxLineBytes of them (a piece at least), whatever the number of chunks.
   */
  piecesPerTurn?: number;
  /**
   * Offered whole lines at once (see LineSplitter.block: `lines` of them, at most what is left of this
   * turn's piecesPerTurn, each at most maxLineBytes, none with a `\r`, each ending in `\n`,
   * undecoded): true takes them, false has them handed on one piece at a time.
   */
  onBlock?: (bytes: Buffer, lines: number) => boolean;
}

/**
 * Reads one stream into pieces. It takes one chunk at a time from the pipe and hands on at most
 * piecesPerTurn pieces (or blocks of whole lines) per turn of the event loop, whatever the number of
 * chunks; while the consumer has paused it, or the pieces of a chunk are still being handed on, nothing
 * more is read from the pipe, so a fast writer blocks on its pipe instead of filling the daemon's memory.
 */
export class OutputReader {
  readonly done: Promise<void>;
  private readonly splitter: LineSplitter;
  private readonly piecesPerTurn: number;
  private readonly onBlock: ((bytes: Buffer, lines: number) => boolean) | undefined;
  /** A chunk whose pieces are still being handed on. */
  private pending = false;
  private paused = false;
  private scheduled = false;
  /** Pieces still to be handed on in this turn of the event loop (for all chunks of the turn). */
  private budget: number;
  /** ... and bytes (what a follower gets in one batch stays about one piece's worth). */
  private budgetBytes: number;
  private readonly bytesPerTurn: number;
  private refillScheduled = false;
  private inputEnded = false;
  private finished = false;
  private resolveDone: () => void = () => {};

  /** The source was told to stop reading (a chunk's pieces were not all handed on at once). */
  private stopped = false;

  constructor(
    private readonly source: ChunkSource,
    private readonly onPiece: (text: string, end: boolean) => void,
    options: OutputReaderOptions,
  ) {
    this.splitter = new LineSplitter(options.maxLineBytes);
    this.piecesPerTurn = options.piecesPerTurn ?? 1024;
    this.budget = this.piecesPerTurn;
    this.bytesPerTurn = options.maxLineBytes;
    this.budgetBytes = this.bytesPerTurn;
    this.onBlock = options.onBlock;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    source.start(
      (chunk) => {
        this.splitter.feed(chunk);
        this.pending = true;
        this.work();
        // The source is read on only while the chunks it gives are handed on at once: the rest of one
        // waits for a later turn (its budget spent) or the consumer (paused), and so does the source.
        this.stopped = this.pending || this.paused;
        return !this.stopped;
      },
      // Called once (see ChunkSource).
      () => {
        this.inputEnded = true;
        this.work();
      },
    );
  }

  /** Stops handing on pieces (and reading the pipe) until resume(). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.later();
  }

  private later(): void {
    if (this.scheduled || this.finished) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.work();
    });
  }

  private work(): void {
    if (this.finished || this.paused) return;
    while (this.pending) {
      if (this.budget <= 0 || this.budgetBytes <= 0) {
        // This turn's share is used up: other sockets and timers get theirs first.
        this.later();
        return;
      }
      if (this.onBlock !== undefined && this.offerBlock()) {
        if (this.paused) return;
        continue;
      }
      const text = this.splitter.next();
      if (text === undefined) {
        this.pending = false;
        break;
      }
      this.spend(1, text.length);
      this.deliver(text, this.splitter.end);
      if (this.paused) return;
    }
    if (!this.inputEnded) {
      // The source was stopped for this chunk: the next one in a later turn.
      if (this.stopped)
        setImmediate(() => {
          if (this.finished || this.paused || this.pending || !this.stopped) return;
          this.stopped = false;
          this.source.resume();
        });
      return;
    }
    const rest = this.splitter.flush();
    if (rest) this.deliver(rest.text, true);
    this.finished = true;
    this.resolveDone();
  }

  /** Pieces (or a block's lines) of this turn's budget; the budget is refilled in the next turn. */
  private spend(pieces: number, bytes: number): void {
    this.budget -= pieces;
    this.budgetBytes -= bytes;
    if (this.refillScheduled) return;
    this.refillScheduled = true;
    setImmediate(() => {
      this.refillScheduled = false;
      this.budget = this.piecesPerTurn;
      this.budgetBytes = this.bytesPerTurn;
    });
  }

  /** Whole lines at once, if the splitter has them and the consumer takes them. */
  private offerBlock(): boolean {
    const block = this.splitter.block(this.budget, this.budgetBytes);
    if (block === undefined) return false;
    const lines = this.splitter.blockLines;
    let taken: boolean;
    try {
      taken = (this.onBlock as (bytes: Buffer, lines: number) => boolean)(block, lines);
    } catch {
      // As with a piece: the reading goes on, and what failed is not handed on twice.
      taken = true;
    }
    if (!taken) return false;
    this.splitter.took(block);
    this.spend(lines, block.length);
    return true;
  }

  private deliver(text: string, end: boolean): void {
    try {
      this.onPiece(text, end);
    } catch {
      // A consumer's failure must not stop the reading: the container would block on a full pipe.
    }
  }
}
