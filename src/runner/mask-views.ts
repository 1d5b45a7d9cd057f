import { isUtf8 } from 'node:buffer';

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

/** CSI (colours, cursor), OSC (titles, links, ended by BEL or ST) and two-character escapes. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: escape sequences are what is removed.
const ESCAPE_SEQUENCE = /\x1b(?:\[[0-9:;<=>?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;

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
  // Most escapes in output are one ASCII character (%20, %2F): no buffer for those.
  if (run.length === 3 && run.charCodeAt(1) < 0x38)
    return String.fromCharCode(Number.parseInt(run.slice(1), 16));
  const bytes = Buffer.from(run.replaceAll('%', ''), 'hex');
  return bytes.toString(isUtf8(bytes) ? 'utf8' : 'latin1');
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
