import {
  coresOf,
  formsOf,
  type MaskedValue,
  MIN_DERIVED_LENGTH,
  MIN_MASKED_LENGTH,
  partsOf,
} from './mask-forms.js';
import { hasPercentEscape, type LineView, percentDecoded, withoutEscapes } from './mask-views.js';

export type { MaskedValue } from './mask-forms.js';
export const MASK = '********';

/**
 * Builds a function that hides credential values in output lines. Output reaches it one line at a
 * time, decoded as UTF-8 (invalid bytes become U+FFFD, exactly as the output reader decodes them), so
 * each value is looked for in every form an agent is likely to print:
 *
 * - the value itself, and without its trailing CR/LF (`echo "$TOKEN"` of a value read with `\r\n`);
 * - each line of a multi-line value (a PEM key printed as it is), without its CR;
 * - its bytes read as Latin-1 (a non-UTF-8 value the agent converted to UTF-8);
 * - standard base64 of its bytes, with and without padding, and inside a longer base64 text (the value
 *   after other bytes, as `user:TOKEN` in HTTP Basic auth), each line of it wrapped at 76 or 64 columns;
 * - URL (percent) encoding of any of its characters (every encoder's choice of which to encode),
 *   either hex case, and with a space as `+` (form encoding);
 * - JSON string escaping (a multi-line value printed inside JSON stays on one line), also with `\/`
 *   and with `\u00XX` for what is not ASCII;
 * - shell and source-code quoting of `'`, `"`, `\`, `$` and backticks (`set -x`, `printf %q`,
 *   `declare -p`, Python's repr);
 * - with terminal escape sequences (colours) anywhere inside it;
 * - each part of a structured value on its own: the strings of a JSON credential file (a service
 *   account's private key), the values of its `key = value` or `key: value` lines (an AWS credentials
 *   file, an .npmrc), of at least 16 characters and not URLs.
 *
 * Every character of the line that is part of any of these forms is hidden, where forms overlap too.
 * Not masked: hex, reversed or otherwise transformed values, a value split across lines in any other
 * way, and any text shorter than 4 characters.
 */
export function createMasker(values: readonly MaskedValue[]): Masker {
  const needles = new Set<string>();
  const cores = new Set<string>();
  for (const value of values) {
    for (const needle of formsOf(value)) needles.add(needle);
    for (const core of coresOf(value)) cores.add(core);
    for (const part of partsOf(value)) {
      for (const needle of formsOf(part)) needles.add(needle);
      for (const core of coresOf(part)) cores.add(core);
    }
  }
  const wrapped = wrappedBase64([...cores]);
  const ordered = [...needles]
    .filter((n) => n.length >= MIN_MASKED_LENGTH)
    .sort((a, b) => b.length - a.length);
  // Form encoding's `+` for a space: what a form with a space looks like with each space a `+` (with
  // percent escapes too, a block has one anyway). Only these send a block with a `+` line by line.
  const plused = ordered.filter((n) => n.includes(' ')).map((n) => Buffer.from(n.replaceAll(' ', '+')));
  // Spans are pushed one by one: a 64 KiB line may hold a hundred thousand (no spread of that many).
  const find = (text: string, spans: Span[], view?: LineView): void => {
    for (const needle of ordered) {
      // Every occurrence, overlapping ones too (a value of `aaaa` in `aaaaaa`).
      for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) {
        const end = at + needle.length;
        spans.push(view ? view.source(at, end) : [at, end]);
      }
    }
  };
  const spansOf = (line: string): Span[] => {
    const spans: Span[] = [];
    find(line, spans);
    for (const span of wrapped.spans(line)) spans.push(span);
    const views = [
      withoutEscapes(line),
      hasPercentEscape(line) ? percentDecoded(line, false) : undefined,
      plused.length > 0 && line.includes('+') ? percentDecoded(line, true) : undefined,
    ];
    for (const view of views) if (view) find(view.text, spans, view);
    return spans;
  };
  const mask = (line: string) => {
    const spans = spansOf(line);
    return spans.length > 0 ? maskSpans(line, spans) : line;
  };
  if (ordered.length === 0)
    return Object.assign((line: string) => line, {
      forms: [],
      needsLines: () => false,
      spans: () => [],
      reach: 0,
    });
  return Object.assign(mask, {
    forms: ordered,
    spans: spansOf,
    reach: reachOf(ordered),
    needsLines: (bytes: Buffer) =>
      bytes.includes(0x1b) ||
      hasPercentEscape(bytes) ||
      plused.some((form) => bytes.includes(form)) ||
      wrapped.hinted(bytes),
  });
}

export type Span = [start: number, end: number];

/**
 * How far a masked value may stretch in a line as printed, per character of its longest form: each
 * UTF-16 unit is at most 3 bytes of UTF-8, each percent-escaped as 3 characters; and what terminal
 * escape sequences woven into it may add. A line cut into pieces is never cut inside a value that
 * stretches no further than this (see LineAssembler).
 */
const REACH_PER_CHAR = 9;
const REACH_ESCAPES = 256;
/** ... but no further than a line's piece (what a line being cut holds back stays bounded) ... */
const REACH_MAX = 64 * 1024;

/** ... and never less than the longest one-line form itself, however long (it is never cut in two). */
function reachOf(forms: readonly string[]): number {
  const longest = Math.max(0, ...forms.filter((n) => !/[\r\n]/.test(n)).map((n) => n.length));
  return Math.max(longest, Math.min(REACH_MAX, REACH_PER_CHAR * longest + REACH_ESCAPES));
}

/** A line of base64 as encoders wrap it (`base64` at 76 columns, `openssl base64` at 64). */
const WRAPPED_BASE64_LINE = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * A value inside a longer text whose base64 is wrapped (`base64 .env`): wherever the wrap falls, a
 * line ends with the start of one of the value's cores, or starts with the rest of it. Only the ends
 * of a core: a middle line of a core longer than a line (a value of more than about 57 bytes in the
 * middle of a file) is not found. `hinted` says whether a block of lines may hold such a line (the
 * first or last 8 characters of a core), so that blocks without one need not be split into lines.
 */
function wrappedBase64(cores: string[]) {
  const ends = cores.map((core) => ({
    core,
    head: core.slice(0, MIN_DERIVED_LENGTH),
    tail: core.slice(-MIN_DERIVED_LENGTH),
  }));
  const hints = ends.flatMap(({ head, tail }) => [Buffer.from(head), Buffer.from(tail)]);
  return {
    hinted: (bytes: Buffer) => hints.some((hint) => bytes.includes(hint)),
    spans(line: string): Span[] {
      if (ends.length === 0 || line.length < MIN_DERIVED_LENGTH || line.length > 76) return [];
      if (!WRAPPED_BASE64_LINE.test(line)) return [];
      const spans: Span[] = [];
      for (const { core, head, tail } of ends) {
        if (line.includes(head)) {
          for (let k = Math.min(core.length, line.length); k >= MIN_DERIVED_LENGTH; k--) {
            if (line.endsWith(core.slice(0, k))) {
              spans.push([line.length - k, line.length]);
              break;
            }
          }
        }
        if (line.includes(tail)) {
          for (let k = Math.min(core.length, line.length); k >= MIN_DERIVED_LENGTH; k--) {
            if (line.startsWith(core.slice(-k))) {
              spans.push([0, k]);
              break;
            }
          }
        }
      }
      return spans;
    },
  };
}

/**
 * Replaces each run of overlapping spans with one mask. The spans are found in the line as printed,
 * not one after another in a line already partly masked: two values (or two forms of one) that
 * overlap are both hidden whole, where masking the first would break the match of the second and
 * leave the rest of it in clear. Spans that only touch keep a mask each.
 */
export function maskSpans(line: string, spans: Span[]): string {
  if (spans.length === 0) return line;
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let out = '';
  let done = 0;
  let [start, end] = spans[0] as Span;
  for (const [from, to] of spans) {
    if (from < end) {
      end = Math.max(end, to);
      continue;
    }
    out += line.slice(done, start) + MASK;
    done = end;
    [start, end] = [from, to];
  }
  return out + line.slice(done, start) + MASK + line.slice(end);
}

/**
 * Masks one line; `forms` are the texts it hides, longest first (a line is never cut inside one).
 * `needsLines` says whether a block of lines (bytes) holds what only masking line by line sees: an
 * escape sequence, a percent escape or a `+` (the views a value may hide in without any of its forms).
 */
export type Masker = ((line: string) => string) & {
  readonly forms: readonly string[];
  readonly needsLines: (bytes: Buffer) => boolean;
  /** Where in the line masking hides something (the mask is maskSpans of these). */
  readonly spans: (line: string) => Span[];
  /** The most characters of a line one hidden value may stretch over (see REACH_PER_CHAR). */
  readonly reach: number;
};
