import { isUtf8 } from 'node:buffer';
import { NeedleSet } from '../adapters/output-archive.js';
import type { AttachedRun, OutputHandler } from '../adapters/podman.js';
import { OUTPUT_LINE_MAX_BYTES } from '../constants.js';
import { type Masker, maskSpans, type Span } from './mask.js';

/** What a block is searched with for the masked forms. */
interface FormSearch {
  foundIn(bytes: Buffer): boolean;
}

/**
 * Up to this many forms (a token has about ten), a block is searched natively, with the masker's
 * lineHints (searchEach): Buffer.indexOf is native and some 100 times faster per pass than NeedleSet's one pass in JavaScript (measured 0.01 to
 * 0.2 ms per MB a form against 3.6 ms per MB; NeedleSet for every session raised the daemon's CPU per MB
 * of output from 5.5 to 7.5 ms in the output-heavy benchmark). Beyond, one pass for them all.
 */
const SEARCHED_EACH_MAX = 32;

/**
 * The forms (from their rarest bytes) and hints, those that hold another one left out, looked for by
 * first byte: a block without that byte (most blocks, for most first bytes) costs one native scan for
 * all the needles that start with it, where each needle, and needsLines' each hint, cost a scan of its
 * own (25 scans of every block for one token; bench/findings.md).
 */
function searchEach(forms: readonly Buffer[], hints: readonly Buffer[] = []): FormSearch {
  const groups = new Map<number, Buffer[]>();
  for (const needle of fewest([...forms.map((form) => anchorOf(form)), ...hints.map(hintAnchorOf)])) {
    const first = needle[0] as number;
    const group = groups.get(first);
    if (group) group.push(needle);
    else groups.set(first, [needle]);
  }
  const firsts = [...groups.keys()];
  const lists = [...groups.values()];
  return {
    foundIn(bytes) {
      for (let g = 0; g < firsts.length; g++) {
        const at = bytes.indexOf(firsts[g] as number);
        if (at === -1) continue;
        // Each needle's first place, if any, is at or after its first byte's.
        for (const needle of lists[g] as Buffer[]) if (bytes.indexOf(needle, at) !== -1) return true;
      }
      return false;
    },
  };
}

/**
 * The needles without repeats, and without those that hold another one: a block that holds such a
 * needle holds the other too, and either sends it line by line.
 */
function fewest(needles: readonly Buffer[]): Buffer[] {
  const kept: Buffer[] = [];
  for (const needle of [...needles].sort((a, b) => a.length - b.length))
    if (needle.length > 0 && !kept.some((shorter) => needle.includes(shorter))) kept.push(needle);
  return kept;
}

/** The shortest part of a form a block is searched for instead of the whole form (see anchorOf). */
const ANCHOR_MIN_BYTES = 12;

/**
 * What a block is searched for in place of a form: the form from its rarest byte on (at least
 * ANCHOR_MIN_BYTES of it). A block that holds the form holds this part of it too, so none is missed;
 * one that holds only the part goes line by line, where the form itself is looked for. Buffer.indexOf
 * looks for a pattern's first byte and is slow where that byte is common: on log-like text, forms
 * starting with a lowercase letter or a digit took 0.2 to 0.4 ms per MB each, those starting with a
 * capital about 0.01 (the search of a block for one token's 17 forms 2.0 to 2.8 ms per MB, from their
 * rarest bytes 1.0 to 1.6; bench/findings.md).
 */
function anchorOf(form: Buffer, min = ANCHOR_MIN_BYTES): Buffer {
  let best = 0;
  for (let i = 1; i <= form.length - min; i++)
    if (commonness(form[i] as number) < commonness(form[best] as number)) best = i;
  return form.subarray(best);
}

/**
 * The shortest part of a line's hint (Masker.lineHints: 8 characters of base64, a `+` form, a `\\`
 * sign) a block is searched for: a hint starting with a lowercase letter or a digit cost a search of
 * log-like text as much as all the forms (bench/findings.md).
 */
const HINT_ANCHOR_MIN_BYTES = 5;

function hintAnchorOf(hint: Buffer): Buffer {
  return anchorOf(hint, HINT_ANCHOR_MIN_BYTES);
}

/** How common a byte is in text as programs print it: 2 for lowercase letters, digits, space and usual punctuation, 0 for capitals, 1 for the rest. */
function commonness(byte: number): number {
  if ((byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || COMMON_PUNCTUATION.has(byte))
    return 2;
  return byte >= 0x41 && byte <= 0x5a ? 0 : 1;
}

/** Space and the punctuation of logs, paths and key=value text: ` " , - . / : = _`. */
const COMMON_PUNCTUATION = new Set([0x20, 0x22, 0x2c, 0x2d, 0x2e, 0x2f, 0x3a, 0x3d, 0x5f]);

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
 * guarded text (the setup step's marker) and nothing masking hides would be split: of an unfinished
 * line, the last characters (the longest guard, or how far one masked value may stretch: Masker.reach)
 * are held back until more comes, the rest is masked here (with what masking finds in all that is
 * held, so a value in any of its forms is found whole wherever the reader cut) and handed on at once.
 * Where hidden values overlap further back than that (text repeating a value over and over), the cut
 * falls inside one, and the start of what follows is masked too. It holds at most that much plus one
 * piece, and makes no string much longer than a piece (the garbage of a stream of long lines stays in
 * V8's young generation).
 */
export class LineAssembler {
  private buf = '';
  private started = false;
  /** Characters at the start of buf to mask: the rest of a value the last cut fell inside. */
  private hidden = 0;

  /**
   * `emit` gets `masked` true for text masked here (a part of a long line, or its end), false for a
   * whole line as it came (the caller masks it).
   */
  constructor(
    private readonly guards: () => readonly string[],
    private readonly emit: (text: string, end: boolean, cont: boolean, masked: boolean) => void,
    private readonly masker: () => Masker | undefined = () => undefined,
  ) {}

  /** Nothing of a line is held or was handed on: the next text starts a line. */
  get idle(): boolean {
    return this.buf === '' && !this.started;
  }

  push(text: string, end: boolean): void {
    const mask = this.masker();
    if (end) {
      const whole = this.buf === '' ? text : this.buf + text;
      const cont = this.started;
      const hidden = this.hidden;
      this.buf = '';
      this.started = false;
      this.hidden = 0;
      if (!cont || mask === undefined) this.emit(whole, true, cont, false);
      else this.emit(maskSpans(whole, withHidden(mask.spans(whole), hidden, whole.length)), true, cont, true);
      return;
    }
    this.buf += text;
    const guards = this.guards();
    const hold = guards.reduce((max, guard) => Math.max(max, guard.length), mask?.reach ?? 0);
    if (this.buf.length <= hold) return;
    const at = this.buf.length - hold;
    const spans = mask?.spans(this.buf) ?? [];
    let cut = safeCut(this.buf, at, guards, hold, spans);
    const hidden = this.hidden;
    let rest = hidden;
    // Only text that repeats a guard or a value over and over walks this far back: cut where it was
    // meant to be, and mask the rest of the values the cut falls inside.
    if (cut < at - hold || cut <= 0) {
      cut = at;
      for (const [from, to] of spans) if (from < cut && to > cut) rest = Math.max(rest, to);
    }
    const cont = this.started;
    this.started = true;
    const head = this.buf.slice(0, cut);
    this.buf = this.buf.slice(cut);
    this.hidden = Math.max(0, rest - cut);
    if (mask === undefined) this.emit(head, false, cont, false);
    else {
      const inHead = spans
        .filter(([from]) => from < cut)
        .map(([from, to]): Span => [from, Math.min(to, cut)]);
      this.emit(maskSpans(head, withHidden(inHead, hidden, cut)), false, cont, true);
    }
  }
}

/** The spans, and the first `hidden` characters (of a text `length` long) as one more. */
function withHidden(spans: Span[], hidden: number, length: number): Span[] {
  if (hidden > 0) spans.push([0, Math.min(hidden, length)]);
  return spans;
}

/**
 * A cut at or before `at` that splits no guard, no span (a value masking hides) nor a surrogate pair;
 * or one further back than `at - hold` where they overlap that far.
 */
function safeCut(text: string, at: number, guards: readonly string[], hold: number, spans: Span[]): number {
  const runs = mergedRuns(spans);
  let cut = at;
  for (let moved = true; moved && cut >= at - hold && cut > 0; ) {
    moved = false;
    for (const guard of guards) {
      const found = text.indexOf(guard, Math.max(0, cut - guard.length + 1));
      if (found !== -1 && found < cut) {
        cut = found;
        moved = true;
      }
    }
    // The last run starting before the cut is the only one that can hold it (runs do not overlap).
    let last: Span | undefined;
    for (const run of runs) {
      if (run[0] >= cut) break;
      last = run;
    }
    if (last !== undefined && last[1] > cut) {
      cut = last[0];
      moved = true;
    }
  }
  if (cut < at - hold || cut <= 0) return cut;
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut--;
  return cut;
}

/** The spans sorted and joined where they overlap. */
function mergedRuns(spans: readonly Span[]): Span[] {
  if (spans.length === 0) return [];
  const sorted = [...spans].sort((a, b) => a[0] - b[0]);
  const runs: Span[] = [[...(sorted[0] as Span)]];
  for (const [from, to] of sorted) {
    const run = runs[runs.length - 1] as Span;
    if (from < run[1]) run[1] = Math.max(run[1], to);
    else runs.push([from, to]);
  }
  return runs;
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
  /**
   * The masked forms as UTF-8 that can be on one line (no CR or LF): what a block is searched for, in
   * one pass (a long value has thousands of forms, the lines of its wrapped base64: a search each
   * made 50 MB of output cost 5 s of CPU with a 4 KB value, 29 s with a 100 KB one).
   */
  private needles: FormSearch = searchEach([]);
  /** `needles` holds the masker's lineHints too: needsLines need not look for them again. */
  private hintsSearched = false;
  private marker = '';
  private withheld = 0;
  private run: AttachedRun | undefined;
  private paused = false;
  private readonly stopDrain: () => void;

  /** With no masker, output is withheld (fail closed). */
  constructor(
    private readonly options: SessionOutputOptions,
    mask: Masker | undefined,
  ) {
    this.log = openSessionLog(options.logFile, options.logMaxBytes, options.onMissed);
    this.setMask(mask);
    this.stopDrain = this.log.onDrain(() => {
      if (!this.paused) return;
      this.paused = false;
      this.run?.resume();
    });
  }

  /**
   * The attachment writing through this output has ended, the log stays open (the container is
   * followed again by a new attachment, after a loss): the log no longer holds this output. Without it,
   * every round of a host that answers but cannot be followed left its output (masker, run, handlers)
   * on the session's log until the session ended.
   */
  detach(): void {
    this.stopDrain();
    this.run = undefined;
  }

  /** Masks with these values from now on; undefined withholds the output (fail closed). */
  setMask(mask: Masker | undefined): void {
    this.mask = mask;
    this.updateGuards();
    this.updateNeedles();
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
    onSegment: (
      text: string,
      end: boolean,
      cont: boolean,
      stream: 'stdout' | 'stderr',
      masked: boolean,
    ) => void,
    onBlock?: (bytes: Buffer, lines: number, stream: 'stdout' | 'stderr') => boolean,
  ): {
    handler: OutputHandler;
    bind: (run: AttachedRun) => void;
  } {
    // One per stream: a long line on stdout and one on stderr come in pieces that interleave.
    const stdout = new LineAssembler(
      () => this.guards,
      (text, end, cont, masked) => onSegment(text, end, cont, 'stdout', masked),
      () => this.mask,
    );
    const stderr = new LineAssembler(
      () => this.guards,
      (text, end, cont, masked) => onSegment(text, end, cont, 'stderr', masked),
      () => this.mask,
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

  /** Whether the output is withheld (nothing to mask with yet). */
  get withholding(): boolean {
    return !this.mask;
  }

  /** A line as `write` would log it (masked); undefined while the output is withheld. */
  shown(text: string, masked: boolean): string | undefined {
    if (!this.mask) return undefined;
    return masked ? text : this.mask(text);
  }

  /**
   * One line (or a part of one) of the container's output: masked (unless `masked` says the reader's
   * assembler did), logged, handed on.
   */
  write(text: string, cont = false, stream: OutputStream = 'stdout', masked = false): string | undefined {
    if (!this.mask) {
      if (!cont) this.withheld++;
      return undefined;
    }
    const line = masked ? text : this.mask(text);
    this.emit(line, cont, stream);
    return line;
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
    if (this.needles.foundIn(bytes)) return false;
    if (this.mask.needsLines(bytes, this.hintsSearched)) return false;
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
    this.detach();
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
    // The masked forms are not guards: the masker's spans keep a cut out of them (LineAssembler).
    this.guards = this.marker === '' ? [] : [this.marker];
  }

  /**
   * The search of blocks for the masker's forms, built only when the masker changes (not with the
   * marker: for long values it is a NeedleSet of some 150,000 forms, a second of the event loop).
   */
  private updateNeedles(): void {
    const forms = (this.mask?.forms ?? [])
      .filter((form) => !/[\r\n]/.test(form))
      .map((form) => Buffer.from(form, 'utf8'));
    // With few forms, the lines' hints go in the same search (a hint and a form often hold one another).
    this.hintsSearched = this.mask !== undefined && forms.length <= SEARCHED_EACH_MAX;
    this.needles =
      forms.length > SEARCHED_EACH_MAX
        ? new NeedleSet(forms)
        : searchEach(forms, this.hintsSearched ? this.mask?.lineHints : []);
  }
}
