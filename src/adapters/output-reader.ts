import type { Readable } from 'node:stream';

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

  constructor(private readonly maxBytes: number) {
    if (maxBytes < 4) throw new RangeError('maxBytes must be at least 4');
  }

  /** Takes a chunk; its pieces come from next(). The previous chunk must have been used up. */
  feed(chunk: Buffer): void {
    this.chunk = chunk;
    this.at = 0;
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
      return this.take(chunk, at, cut);
    }
    if (brk === -1) {
      if (lineEnd > at) {
        this.parts.push(chunk.subarray(at, lineEnd));
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
    return text;
  }

  /** All pieces of one chunk (tests, and consumers that never stop in the middle). */
  *split(chunk: Buffer): Generator<OutputPiece, void, undefined> {
    this.feed(chunk);
    for (let text = this.next(); text !== undefined; text = this.next()) yield { text, end: this.end };
  }

  /** The end of the stream: what is left of an unfinished line, if anything. */
  flush(): OutputPiece | undefined {
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
  /** Pieces handed over per event-loop turn before the reader yields to other work. */
  piecesPerTurn?: number;
}

/**
 * Reads one stream into pieces. It takes one chunk at a time from the pipe and hands its pieces on
 * piecesPerTurn at a time, yielding the event loop in between; while the consumer has paused it, or
 * the pieces of a chunk are still being handed on, nothing more is read from the pipe, so a fast
 * writer blocks on its pipe instead of filling the daemon's memory.
 */
export class OutputReader {
  readonly done: Promise<void>;
  private readonly splitter: LineSplitter;
  private readonly piecesPerTurn: number;
  /** A chunk whose pieces are still being handed on. */
  private pending = false;
  private paused = false;
  private scheduled = false;
  private inputEnded = false;
  private finished = false;
  private resolveDone: () => void = () => {};

  constructor(
    private readonly input: Readable,
    private readonly onPiece: (text: string, end: boolean) => void,
    options: OutputReaderOptions,
  ) {
    this.splitter = new LineSplitter(options.maxLineBytes);
    this.piecesPerTurn = options.piecesPerTurn ?? 1024;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    input.on('data', (chunk: Buffer) => {
      input.pause();
      this.splitter.feed(chunk);
      this.pending = true;
      this.work();
    });
    input.once('end', () => {
      this.inputEnded = true;
      this.work();
    });
    // A pipe that fails (the process died) ends the output; the exit code says the rest.
    input.once('error', () => {
      this.inputEnded = true;
      this.work();
    });
    input.once('close', () => {
      if (this.inputEnded) return;
      this.inputEnded = true;
      this.work();
    });
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
    let budget = this.piecesPerTurn;
    while (this.pending) {
      const text = this.splitter.next();
      if (text === undefined) {
        this.pending = false;
        break;
      }
      this.deliver(text, this.splitter.end);
      if (this.paused) return;
      if (--budget === 0) {
        this.later();
        return;
      }
    }
    if (!this.inputEnded) {
      // The next chunk in a later turn: other sockets and timers get their share first.
      if (this.input.isPaused()) setImmediate(() => this.finished || this.paused || this.input.resume());
      return;
    }
    const rest = this.splitter.flush();
    if (rest) this.deliver(rest.text, true);
    this.finished = true;
    this.resolveDone();
  }

  private deliver(text: string, end: boolean): void {
    try {
      this.onPiece(text, end);
    } catch {
      // A consumer's failure must not stop the reading: the container would block on a full pipe.
    }
  }
}
