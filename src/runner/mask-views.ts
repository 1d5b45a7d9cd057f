import { isUtf8 } from 'node:buffer';
import { nonUtf8At } from '../utf8-offset.js';

/**
 * Other readings of an output line, in which a value printed with something woven into it shows as
 * itself: the line without terminal escape sequences (`grep --color=always` colours the match inside
 * a token), the line with its percent escapes decoded (a URL encoder that leaves some of a value's
 * characters as they are: Python's `quote` keeps `/`, WHATWG URL userinfo keeps `+`), and the line
 * without the backslashes before punctuation (bash's `printf %q`). What is found in a view is masked
 * in the line: `source` says which part of the line a part of the view came from. A view's text is
 * made by one native replace; where each of its characters came from is worked out only when
 * something was found in it (rarely).
 */
export interface LineView {
  text: string;
  /** The part of the line that the view's characters [start, end) came from. */
  source(start: number, end: number): [start: number, end: number];
}

/**
 * CSI (colours, cursor), OSC (titles, links, ended by BEL or ST), two-character escapes, and ESC with
 * intermediate bytes and a final one (`\e(B`, which `tput sgr0` prints before `\e[m`).
 */
const ESCAPE_SEQUENCE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escape sequences are what is removed.
  /\x1b(?:\[[0-9:;<=>?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_]|[ -/]+[0-~])/g;

/** The line without its escape sequences, or undefined if it has none. */
export function withoutEscapes(line: string): LineView | undefined {
  if (!line.includes('\x1b')) return undefined;
  const text = line.replace(ESCAPE_SEQUENCE, '');
  if (text.length === line.length) return undefined;
  return view(line, text, ESCAPE_SEQUENCE, () => '');
}

/**
 * A backslash and the ASCII punctuation or space after it. `printf %q` puts one before each of
 * ` !"$&'()*,;<>?[\\]^\`{|}` (and `#`, `~` where a shell would read them): no fixed list of forms holds
 * every mix of those in a value, so they are read without their backslashes. `\\` is one match, so
 * an escaped backslash reads as one backslash.
 */
const BACKSLASHED = /\\([ -/:-@[-`{-~])/g;

/** The line with each backslash before punctuation or a space removed, or undefined if it has none. */
export function withoutBackslashes(line: string): LineView | undefined {
  const text = line.replace(BACKSLASHED, '$1');
  if (text.length === line.length) return undefined;
  return view(line, text, BACKSLASHED, (match) => match.slice(1));
}

const PERCENT_ESCAPE = /%[0-9A-Fa-f]{2}/;
const ESCAPE_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
const ESCAPE_RUN_OR_PLUS = /(?:%[0-9A-Fa-f]{2})+|\+/g;

/** Whether a line (or a block of lines, as bytes) has a percent escape. */
export function hasPercentEscape(text: string | Buffer): boolean {
  if (typeof text === 'string') return PERCENT_ESCAPE.test(text);
  for (let at = text.indexOf(0x25); at !== -1; at = text.indexOf(0x25, at + 1)) {
    if (isHex(text[at + 1]) && isHex(text[at + 2])) return true;
  }
  return false;
}

export function isHex(byte: number | undefined): boolean {
  return (
    byte !== undefined &&
    ((byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66))
  );
}

/**
 * The line with each run of percent escapes decoded (as UTF-8 where the run is valid UTF-8, else as
 * Latin-1), and with `+` read as a space if `plusIsSpace` (form encoding). Undefined if that changes
 * nothing.
 */
export function percentDecoded(line: string, plusIsSpace: boolean): LineView | undefined {
  const pattern = plusIsSpace ? ESCAPE_RUN_OR_PLUS : ESCAPE_RUN;
  const text = line.replace(pattern, decodeRun);
  if (text === line) return undefined;
  return view(line, text, pattern, decodeRun);
}

function decodeRun(run: string): string {
  if (run === '+') return ' ';
  // Most escapes in output are ASCII (%20, %2F, a run such as %41%42): no buffer for those (a line of
  // short ASCII runs made a buffer, a hex decode and a UTF-8 check for each).
  let ascii = '';
  for (let at = 0; at < run.length; at += 3) {
    const high = hexDigit(run.charCodeAt(at + 1));
    if (high >= 8) {
      ascii = '';
      break;
    }
    ascii += String.fromCharCode((high << 4) | hexDigit(run.charCodeAt(at + 2)));
  }
  if (ascii !== '') return ascii;
  const bytes = Buffer.from(run.replaceAll('%', ''), 'hex');
  return bytes.toString(isUtf8(bytes) ? 'utf8' : 'latin1');
}

/** The value of a hex digit's character code (one PERCENT_ESCAPE has matched). */
function hexDigit(code: number): number {
  return code <= 0x39 ? code - 0x30 : (code | 0x20) - 0x57;
}

/**
 * A view made by replacing each match of `pattern` in `line` with `replace(match)`. A replacement's
 * characters come from their match: all of it, except where a run of escapes decodes to several
 * characters, each of which comes from its own escapes (so a value that starts inside a run is not
 * masked with the escapes before it).
 */
function view(line: string, text: string, pattern: RegExp, replace: (match: string) => string): LineView {
  let map: { from: Int32Array; to: Int32Array } | undefined;
  const build = () => {
    const from = new Int32Array(text.length);
    const to = new Int32Array(text.length);
    let at = 0;
    let v = 0;
    const literal = (end: number) => {
      for (; at < end; at++, v++) {
        from[v] = at;
        to[v] = at + 1;
      }
    };
    for (const match of line.matchAll(pattern)) {
      literal(match.index);
      const replaced = replace(match[0]);
      const bytes = match[0].startsWith('%') ? match[0].length / 3 : 0;
      const utf8 = bytes > 0 && Buffer.byteLength(replaced) === bytes;
      let start = match.index;
      for (const char of replaced) {
        const width = match[0].startsWith('%') ? (utf8 ? Buffer.byteLength(char) : 1) * 3 : match[0].length;
        // A character outside the BMP is two UTF-16 units: both come from its escapes.
        for (let unit = 0; unit < char.length; unit++, v++) {
          from[v] = start;
          to[v] = start + width;
        }
        start += width;
      }
      at = match.index + match[0].length;
    }
    literal(line.length);
    return { from, to };
  };
  return {
    text,
    source(start, end) {
      map ??= build();
      return [map.from[start] as number, map.to[end - 1] as number];
    },
  };
}

/** No reading: the line reads as it is. */
const NONE = -1;

/** Bits of LineReadings.triggers: the reading two bytes may make differ from the line. */
export const READ_ESCAPES = 1;
export const READ_PERCENT = 2;
export const READ_BACKSLASHES = 4;
/** A `+`, where a form has a space: read as one in a line with a percent escape. */
export const READ_PLUS = 8;

/** What a reading is searched for: the output archive's needles (see its NeedleSet). */
export interface ReadingSearch {
  /** Of each two bytes (the first as the high byte): whether a needle has them, one after the other. */
  readonly pairs: Uint8Array;
  /** One less than the longest needle's bytes: how far from a change a needle over it may reach. */
  readonly margin: number;
  /** Whether a needle is in reading[start, end). */
  found(reading: Buffer, start: number, end: number): boolean;
}

/**
 * The views above, over a line's bytes, for the output archive's search: a file of hundreds of MB is
 * read line by line, where a string and a regular expression for each line with (say) a percent escape
 * cost seconds. `triggers` says which bytes may make which reading differ from the line, so that the
 * search's one loop over a file's bytes tells which lines to read again; such a line is read only
 * from its first change (an escape sequence, a percent escape, a backslash before punctuation, found by
 * the native search for its first byte) in one loop into a buffer kept for the next. A reading's bytes
 * are the view's text as UTF-8 (bytes that are not UTF-8 stay as they are, where masking reads U+FFFD:
 * a value's own bytes are looked for too). A reading is searched only where what is found in it may
 * not be in the line as it is: a needle found there and not in the line covers a change, so it has
 * two bytes in a row of which one was decoded or which removed bytes had kept apart; a reading none of
 * whose such two bytes a needle has (ReadingSearch.pairs) is not searched, nor any part of one
 * farther from a change than a needle reaches.
 *
 * - Escape sequences (ESC): removed, as withoutEscapes.
 * - Percent escapes (`%`): decoded, as percentDecoded; with `plus` (a form has a space), also with `+`
 *   as a space where the line has a `+` and a percent escape (without one, a form with `+` for its
 *   spaces is found in the line as it is: see Masker.identifying).
 * - `printf %q`'s backslashes (with `signs`): the line without those before punctuation or a space, as
 *   withoutBackslashes, where one is before a character that follows the backslash in a sign (see
 *   printfQSign; masking wants all of a sign); in a line with escape sequences too, also the line
 *   without both.
 */
export class LineReadings {
  /**
   * Of each two bytes (the first as the high byte): the READ_* readings they may make differ from the
   * line there, or 0. An ESC before what may go on a sequence, `%` before a hex digit, a backslash
   * before a character of a sign, a `+`.
   */
  readonly triggers = new Uint8Array(65536);
  /** Of each byte: whether it follows the backslash in one of the values' signs. */
  private readonly signed = new Uint8Array(256);
  private out = Buffer.alloc(0);
  /** A reading read again (see withoutEscapesAndBackslashes). */
  private inner = Buffer.alloc(0);
  /** Where the reading last made differs from the line: [first, last), as positions in it. */
  private first = 0;
  private last = 0;
  /** The needles' pairs of bytes, while a reading is made; whether two bytes about a change are one. */
  private pairs: Uint8Array = new Uint8Array(0);
  private hit = false;

  constructor(options: { plus: boolean; signs: readonly string[] }) {
    for (const sign of options.signs) this.signed[sign.charCodeAt(sign.indexOf('\\') + 1)] = 1;
    for (let next = 0; next < 256; next++) {
      if (next === 0x5b || next === 0x5d || startsTwoCharacterEscape(next) || isIntermediate(next))
        this.triggers[0x1b00 | next] = READ_ESCAPES;
      if (isHex(next)) this.triggers[0x2500 | next] = READ_PERCENT;
      if (this.signed[next] === 1) this.triggers[0x5c00 | next] = READ_BACKSLASHES;
      if (options.plus) this.triggers[0x2b00 | next] = READ_PLUS;
    }
  }

  /**
   * Whether a needle of `search` is in a reading of bytes[start, end) where it may not be in the line
   * as it is: one reading of each kind in `kinds` (the triggers of the line's bytes, or-ed).
   */
  some(bytes: Buffer, start: number, end: number, kinds: number, search: ReadingSearch): boolean {
    if (this.out.length < end - start)
      this.out = Buffer.allocUnsafe(Math.max(end - start, 2 * this.out.length));
    this.pairs = search.pairs;
    if ((kinds & READ_ESCAPES) !== 0 && this.search(this.withoutEscapes(bytes, start, end), search))
      return true;
    if ((kinds & READ_PERCENT) !== 0) {
      const decoded = this.percentDecoded(bytes, start, end, false);
      if (this.search(decoded, search)) return true;
      // With `+` too: only a line with a percent escape (decoded) needs it, and only one with a `+`.
      if (decoded !== NONE && (kinds & READ_PLUS) !== 0) {
        if (this.search(this.percentDecoded(bytes, start, end, true), search)) return true;
      }
    }
    if ((kinds & READ_BACKSLASHES) === 0) return false;
    if (this.search(this.withoutBackslashes(bytes, start, end), search)) return true;
    return (
      (kinds & READ_ESCAPES) !== 0 &&
      this.search(this.withoutEscapesAndBackslashes(bytes, start, end), search)
    );
  }

  /**
   * Both readings, one of the other (a highlighter colours `printf %q`'s `\!` apart from the letters
   * around it), as masking reads a line with both: searched whole (such a line is rare), or NONE.
   */
  private withoutEscapesAndBackslashes(bytes: Buffer, start: number, end: number): number {
    const length = this.withoutEscapes(bytes, start, end);
    if (length === NONE) return NONE;
    if (this.inner.length < length) this.inner = Buffer.allocUnsafe(Math.max(length, 2 * this.inner.length));
    this.out.copy(this.inner, 0, 0, length);
    const read = this.withoutBackslashes(this.inner, 0, length);
    if (read === NONE) return NONE;
    this.first = 0;
    this.last = read;
    this.hit = true;
    return read;
  }

  /**
   * Whether a needle is in the reading just made (`length` bytes; NONE if none), from `margin` before
   * its first change to `margin` after its last, if a needle has two bytes in a row about a change.
   */
  private search(length: number, search: ReadingSearch): boolean {
    if (length === NONE || !this.hit) return false;
    const { margin } = search;
    return search.found(this.out, Math.max(0, this.first - margin), Math.min(length, this.last + margin));
  }

  /**
   * Marks the reading's bytes [from, to) (a point, where bytes were removed) as differing from the
   * line, and whether a needle has two bytes in a row of them, or the byte before them and their first
   * (their last and the byte after them are looked at where that is written: see `literal`).
   */
  private changed(from: number, to: number, any: boolean): void {
    if (!any) {
      this.first = from;
      this.hit = false;
    }
    this.last = to;
    if (this.hit) return;
    const { out, pairs } = this;
    for (let at = Math.max(1, from); at < to; at++) {
      if (pairs[((out[at - 1] as number) << 8) | (out[at] as number)] === 1) this.hit = true;
    }
  }

  /**
   * Writes a byte as the line has it at `length`; `after` a change that ends there, looks at it with
   * the byte before it.
   */
  private literal(byte: number, length: number, after: boolean): void {
    const { out } = this;
    if (after && length > 0 && this.pairs[((out[length - 1] as number) << 8) | byte] === 1) this.hit = true;
    out[length] = byte;
  }

  /** The line without its escape sequences (ESCAPE_SEQUENCE, byte by byte): its length, or -1 if the same. */
  private withoutEscapes(bytes: Buffer, start: number, end: number): number {
    const from = firstWhere(bytes, 0x1b, start, end, startsEscape);
    if (from < 0) return NONE;
    let length = bytes.copy(this.out, 0, start, from);
    let any = false;
    // Whether bytes were removed just before: the byte written next joins what they kept apart.
    let joined = false;
    for (let at = from; at < end; ) {
      const byte = bytes[at] as number;
      const after = byte === 0x1b ? escapeEnd(bytes, at, end) : -1;
      if (after < 0) {
        this.literal(byte, length++, joined);
        joined = false;
        at++;
        continue;
      }
      this.changed(length, length, any);
      any = true;
      joined = true;
      at = after;
    }
    return any ? length : NONE;
  }

  /**
   * The line with its runs of percent escapes decoded, as UTF-8 where a run is, else as Latin-1 (each
   * byte as the character of its value, in UTF-8), and `+` as a space with `plus` (as percentDecoded):
   * its length, or -1 if the same.
   */
  private percentDecoded(bytes: Buffer, start: number, end: number, plus: boolean): number {
    let from = firstWhere(bytes, 0x25, start, end, startsPercentEscape);
    if (from < 0) return NONE;
    const plused = plus ? firstWhere(bytes, 0x2b, start, from, () => true) : -1;
    if (plused >= 0) from = plused;
    const { out } = this;
    let length = bytes.copy(out, 0, start, from);
    let any = false;
    // Whether the byte written last was decoded: the byte written next is looked at with it.
    let decoded = false;
    for (let at = from; at < end; ) {
      const byte = bytes[at] as number;
      if (byte === 0x25 && startsPercentEscape(bytes, at, end)) {
        const run = length;
        let high = false;
        do {
          const value = (hexValue(bytes[at + 1] as number) << 4) | hexValue(bytes[at + 2] as number);
          out[length++] = value;
          if (value >= 0x80) high = true;
          at += 3;
        } while (at + 2 < end && bytes[at] === 0x25 && isHex(bytes[at + 1]) && isHex(bytes[at + 2]));
        if (high && nonUtf8At(out, run, length) !== -1) length = latin1AsUtf8(out, run, length);
        this.changed(run, length, any);
        any = true;
        decoded = true;
      } else if (plus && byte === 0x2b) {
        out[length++] = 0x20;
        this.changed(length - 1, length, any);
        any = true;
        decoded = true;
        at++;
      } else {
        this.literal(byte, length++, decoded);
        decoded = false;
        at++;
      }
    }
    return any ? length : NONE;
  }

  /**
   * The line without the backslashes before punctuation or a space (BACKSLASHED, byte by byte): its
   * length, or -1 if none of them is before a character of a sign.
   */
  private withoutBackslashes(bytes: Buffer, start: number, end: number): number {
    const { out, signed } = this;
    if (
      firstWhere(bytes, 0x5c, start, end, (b, at, e) => at + 1 < e && signed[b[at + 1] as number] === 1) < 0
    )
      return NONE;
    const from = firstWhere(
      bytes,
      0x5c,
      start,
      end,
      (b, at, e) => at + 1 < e && PUNCTUATION[b[at + 1] as number] === 1,
    );
    let length = bytes.copy(out, 0, start, from);
    let any = false;
    let sign = false;
    for (let at = from; at < end; ) {
      const byte = bytes[at] as number;
      const next = at + 1 < end ? (bytes[at + 1] as number) : 0;
      if (byte === 0x5c && PUNCTUATION[next] === 1) {
        if (signed[next] === 1) sign = true;
        // The backslash removed joins the byte before it and the one after it.
        this.changed(length, length, any);
        any = true;
        this.literal(next, length++, true);
        at += 2;
      } else {
        out[length++] = byte;
        at++;
      }
    }
    return sign ? length : NONE;
  }
}

/**
 * The first place in bytes[start, end) that has `byte` and where `starts` says a change begins, or -1.
 * Found by the native search for the byte (with a line that has it, the next one is seldom far).
 */
function firstWhere(
  bytes: Buffer,
  byte: number,
  start: number,
  end: number,
  starts: (bytes: Buffer, at: number, end: number) => boolean,
): number {
  for (let at = bytes.indexOf(byte, start); at !== -1 && at < end; at = bytes.indexOf(byte, at + 1)) {
    if (starts(bytes, at, end)) return at;
  }
  return -1;
}

function startsEscape(bytes: Buffer, at: number, end: number): boolean {
  return escapeEnd(bytes, at, end) >= 0;
}

function startsPercentEscape(bytes: Buffer, at: number, end: number): boolean {
  return at + 2 < end && isHex(bytes[at + 1]) && isHex(bytes[at + 2]);
}

/**
 * Where the escape sequence at bytes[at] (an ESC) ends, as ESCAPE_SEQUENCE matches one: CSI, OSC
 * (ended by BEL or ST), ESC and one of `@`-`Z`, `\`-`_`, or ESC, intermediate bytes and a final one;
 * -1 if none starts there.
 */
function escapeEnd(bytes: Buffer, at: number, end: number): number {
  const next = at + 1 < end ? (bytes[at + 1] as number) : -1;
  if (next === 0x5b) {
    let i = at + 2;
    while (i < end && (bytes[i] as number) >= 0x30 && (bytes[i] as number) <= 0x3f) i++;
    while (i < end && (bytes[i] as number) >= 0x20 && (bytes[i] as number) <= 0x2f) i++;
    // `[` is no two-character escape: no final byte, no sequence.
    return i < end && (bytes[i] as number) >= 0x40 && (bytes[i] as number) <= 0x7e ? i + 1 : -1;
  }
  if (next === 0x5d) {
    let i = at + 2;
    while (i < end && bytes[i] !== 0x07 && bytes[i] !== 0x1b) i++;
    if (i < end && bytes[i] === 0x07) return i + 1;
    if (i + 1 < end && bytes[i + 1] === 0x5c) return i + 2;
    // Unended: `]` is a two-character escape's.
    return at + 2;
  }
  if (isIntermediate(next)) {
    let i = at + 2;
    while (i < end && isIntermediate(bytes[i] as number)) i++;
    return i < end && (bytes[i] as number) >= 0x30 && (bytes[i] as number) <= 0x7e ? i + 1 : -1;
  }
  return startsTwoCharacterEscape(next) ? at + 2 : -1;
}

/** An escape sequence's intermediate byte (space to `/`): `(` in `\e(B`. */
function isIntermediate(byte: number): boolean {
  return byte >= 0x20 && byte <= 0x2f;
}

function startsTwoCharacterEscape(next: number): boolean {
  return (next >= 0x40 && next <= 0x5a) || (next >= 0x5c && next <= 0x5f);
}

/** What BACKSLASHED takes a backslash away before: ASCII punctuation and the space. */
const PUNCTUATION = new Uint8Array(256);
for (let byte = 0x20; byte < 0x7f; byte++) {
  const char = String.fromCharCode(byte);
  if (!/[A-Za-z0-9]/.test(char)) PUNCTUATION[byte] = 1;
}

function hexValue(byte: number): number {
  return byte <= 0x39 ? byte - 0x30 : (byte | 0x20) - 0x57;
}

/** Re-encodes out[from, to) (bytes read as Latin-1) as UTF-8, in place: the new end. */
function latin1AsUtf8(out: Buffer, from: number, to: number): number {
  let high = 0;
  for (let at = from; at < to; at++) if ((out[at] as number) >= 0x80) high++;
  let write = to + high;
  const end = write;
  for (let at = to - 1; at >= from; at--) {
    const byte = out[at] as number;
    if (byte < 0x80) out[--write] = byte;
    else {
      out[--write] = 0x80 | (byte & 0x3f);
      out[--write] = 0xc0 | (byte >> 6);
    }
  }
  return end;
}
