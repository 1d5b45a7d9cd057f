import { isUtf8 } from 'node:buffer';
import type { AttachedRun, OutputHandler } from '../adapters/podman.js';
import { OUTPUT_LINE_MAX_BYTES } from '../constants.js';
import type { Masker } from './mask.js';
import {
  linesOfBlock,
  type OutputBlock,
  type OutputLine,
  type OutputStream,
  openSessionLog,
  type SessionLog,
} from './session-log.js';

/**
 * Joins the pieces the output reader cuts a long line into, and cuts the line again only where no
 * guarded text (a masked value, the setup step's marker) would be split: of an unfinished line, the
 * last `longest guard` characters are held back until more comes, the rest is handed on at once. It
 * holds at most the longest guard plus one piece, and makes no string much longer than a piece (the
 * garbage of a stream of long lines stays in V8's young generation).
 */
export class LineAssembler {
  private buf = '';
  private started = false;

  constructor(
    private readonly guards: () => readonly string[],
    private readonly emit: (text: string, end: boolean, cont: boolean) => void,
  ) {}

  /** Nothing of a line is held or was handed on: the next text starts a line. */
  get idle(): boolean {
    return this.buf === '' && !this.started;
  }

  push(text: string, end: boolean): void {
    if (end) {
      const whole = this.buf === '' ? text : this.buf + text;
      const cont = this.started;
      this.buf = '';
      this.started = false;
      this.emit(whole, true, cont);
      return;
    }
    this.buf += text;
    const guards = this.guards();
    const hold = guards.reduce((max, guard) => Math.max(max, guard.length), 0);
    if (this.buf.length <= hold) return;
    const cut = safeCut(this.buf, this.buf.length - hold, guards, hold);
    const cont = this.started;
    this.started = true;
    const head = this.buf.slice(0, cut);
    this.buf = this.buf.slice(cut);
    this.emit(head, false, cont);
  }
}

/** A cut at or before `at` that splits no guard (nor a surrogate pair). */
function safeCut(text: string, at: number, guards: readonly string[], hold: number): number {
  let cut = at;
  for (let moved = true; moved; ) {
    moved = false;
    for (const guard of guards) {
      const found = text.indexOf(guard, Math.max(0, cut - guard.length + 1));
      if (found !== -1 && found < cut) {
        cut = found;
        moved = true;
      }
    }
    // Only text that repeats a guard over and over walks this far back: cut where it was meant to be.
    if (cut < at - hold || cut <= 0) {
      cut = at;
      break;
    }
  }
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut--;
  return cut;
}

/** Cuts text into pieces of at most maxBytes UTF-8 bytes, at character boundaries. */
export function cutBytes(text: string, maxBytes: number): string[] {
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes) return [text];
  const bytes = Buffer.from(text);
  const pieces: string[] = [];
  for (let at = 0; at < bytes.length; ) {
    let end = Math.min(at + maxBytes, bytes.length);
    if (end < bytes.length) {
      for (let back = 0; back < 3 && end > at + 1 && ((bytes[end] ?? 0) & 0xc0) === 0x80; back++) end--;
    }
    pieces.push(bytes.toString('utf8', at, end));
    at = end;
  }
  return pieces;
}

export interface SessionOutputOptions {
  logFile: string;
  logMaxBytes: number;
  /** Each line as it is logged (masked, numbered). A listener that throws does not stop the output. */
  onLine: (line: OutputLine) => void;
  /** Lines logged at once (writeBlock); without it they go to onLine one by one. */
  onBlock?: (block: OutputBlock) => void;
  /** Lines the log could not write (a full state dir). */
  onMissed?: (lines: number) => void;
}

/**
 * A session's output on its way from the container: cut into lines of at most OUTPUT_LINE_MAX_BYTES
 * (never inside a masked value), masked, numbered and logged, and handed on. While its log has more
 * unwritten than it buffers, the container's output is paused (backpressure on the pipe).
 */
export class SessionOutput {
  readonly log: SessionLog;
  /** Undefined while output is withheld: an adopted session whose values could not be read back. */
  private mask: Masker | undefined;
  private guards: string[] = [];
  /** The masked forms as UTF-8 that can be on one line (no CR or LF): what a block is searched for. */
  private needles: Buffer[] = [];
  private marker = '';
  private withheld = 0;
  private run: AttachedRun | undefined;
  private paused = false;

  /** With no masker, output is withheld (fail closed). */
  constructor(
    private readonly options: SessionOutputOptions,
    mask: Masker | undefined,
  ) {
    this.log = openSessionLog(options.logFile, options.logMaxBytes, options.onMissed);
    this.setMask(mask);
    this.log.onDrain(() => {
      if (!this.paused) return;
      this.paused = false;
      this.run?.resume();
    });
  }

  /** Masks with these values from now on; undefined withholds the output (fail closed). */
  setMask(mask: Masker | undefined): void {
    this.mask = mask;
    this.updateGuards();
  }

  /** The setup step's marker: never cut in two, so its last report is found whole. */
  setMarker(marker: string): void {
    this.marker = marker;
    this.updateGuards();
  }

  /** Lines not shown because the output is withheld. */
  get withheldLines(): number {
    return this.withheld;
  }

  /**
   * The output handler for a podman stream: whole lines (`end`) and safe parts of longer ones (`cont`
   * when they continue one) go to onSegment; `bind` lets backpressure pause the run.
   */
  reader(
    onSegment: (text: string, end: boolean, cont: boolean, stream: 'stdout' | 'stderr') => void,
    onBlock?: (bytes: Buffer, lines: number, stream: 'stdout' | 'stderr') => boolean,
  ): {
    handler: OutputHandler;
    bind: (run: AttachedRun) => void;
  } {
    // One per stream: a long line on stdout and one on stderr come in pieces that interleave.
    const stdout = new LineAssembler(
      () => this.guards,
      (text, end, cont) => onSegment(text, end, cont, 'stdout'),
    );
    const stderr = new LineAssembler(
      () => this.guards,
      (text, end, cont) => onSegment(text, end, cont, 'stderr'),
    );
    const handler: OutputHandler = (text, end, stream) =>
      (stream === 'stderr' ? stderr : stdout).push(text, end);
    // Whole lines at once only between lines (never while a long one is being assembled).
    if (onBlock !== undefined)
      handler.block = (bytes, lines, stream) =>
        (stream === 'stderr' ? stderr : stdout).idle && onBlock(bytes, lines, stream);
    return {
      handler,
      bind: (run) => {
        this.run = run;
        if (this.paused) run.pause();
      },
    };
  }

  /** One line (or a part of one) of the container's output: masked, logged, handed on. */
  write(text: string, cont = false, stream: OutputStream = 'stdout'): string | undefined {
    if (!this.mask) {
      if (!cont) this.withheld++;
      return undefined;
    }
    const masked = this.mask(text);
    this.emit(masked, cont, stream);
    return masked;
  }

  /**
   * Whole lines of the container's output at once (see OutputHandler.block): logged and handed on as
   * one block when nothing in them is masked, and they are valid UTF-8 (so they are what decoding them
   * line by line would give); `lines` is how many there are. Otherwise false: the caller hands them on
   * line by line (write), where masking and the replacement of invalid bytes happen as always.
   */
  writeBlock(bytes: Buffer, lines: number, stream: 'stdout' | 'stderr'): boolean {
    if (!this.mask || !isUtf8(bytes)) return false;
    // In valid UTF-8, a form's bytes are in the block exactly where the form is in the decoded text;
    // forms with a line break cannot be within one line, and are never matched line by line either.
    for (const needle of this.needles) if (bytes.indexOf(needle) !== -1) return false;
    if (this.mask.needsLines(bytes)) return false;
    const block = this.log.appendBlock(bytes, lines, stream);
    try {
      if (this.options.onBlock) this.options.onBlock(block);
      else for (const line of linesOfBlock(block)) this.options.onLine(line);
    } catch {
      // As with a line: a broken listener is its own problem.
    }
    this.pauseIfBacklogged();
    return true;
  }

  /** A line agentd adds to the session's output. */
  notice(text: string): void {
    this.emit(text, false, 'agentd');
  }

  /** Everything logged; the log file closed. */
  close(): Promise<void> {
    return this.log.close();
  }

  private emit(text: string, cont: boolean, stream: OutputStream): void {
    // Nearly every line fits at once: it is not measured or cut.
    if (text.length * 3 <= OUTPUT_LINE_MAX_BYTES) this.hand(text, cont, stream);
    else {
      const pieces = cutBytes(text, OUTPUT_LINE_MAX_BYTES);
      for (let i = 0; i < pieces.length; i++) this.hand(pieces[i] as string, cont || i > 0, stream);
    }
    this.pauseIfBacklogged();
  }

  private pauseIfBacklogged(): void {
    if (this.log.backlogged && !this.paused) {
      this.paused = true;
      this.run?.pause();
    }
  }

  /** One piece: logged and handed on. */
  private hand(text: string, cont: boolean, stream: OutputStream): void {
    const line = this.log.append(text, { stream, cont });
    try {
      this.options.onLine(line);
    } catch {
      // A broken listener is its own problem: the session and its log go on.
    }
  }

  private updateGuards(): void {
    const guards = [...(this.mask?.forms ?? [])];
    if (this.marker !== '') guards.push(this.marker);
    this.guards = guards;
    this.needles = (this.mask?.forms ?? [])
      .filter((form) => !/[\r\n]/.test(form))
      .map((form) => Buffer.from(form, 'utf8'));
  }
}
