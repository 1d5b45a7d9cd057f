/** Shortest text that is masked; shorter ones would mask ordinary text. */
const MIN_MASKED_LENGTH = 4;
/** Shortest part of an encoding that is masked (a base64 core, one line of wrapped base64). */
const MIN_DERIVED_LENGTH = 8;
export const MASK = '********';

/** A credential value as the agent received it: its bytes, or text (encoded as UTF-8). */
export type MaskedValue = string | Uint8Array;

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
 * - URL (percent) encoding of its bytes, as encodeURIComponent and as RFC 3986 (which also encodes
 *   `!*'()`), upper and lower case hex, and with a space as `+` (form encoding);
 * - JSON string escaping (a multi-line value printed inside JSON stays on one line).
 *
 * Every character of the line that is part of any of these forms is hidden, where forms overlap too.
 * Not masked: hex, reversed or otherwise transformed values, a value split across lines in any other
 * way, and any text shorter than 4 characters.
 */
export function createMasker(values: readonly MaskedValue[]): Masker {
  const needles = new Set<string>();
  for (const value of values) for (const needle of formsOf(value)) needles.add(needle);
  const ordered = [...needles]
    .filter((n) => n.length >= MIN_MASKED_LENGTH)
    .sort((a, b) => b.length - a.length);
  const mask = (line: string) => {
    const spans: Span[] = [];
    for (const needle of ordered) {
      // Every occurrence, overlapping ones too (a value of `aaaa` in `aaaaaa`).
      for (let at = line.indexOf(needle); at !== -1; at = line.indexOf(needle, at + 1)) {
        spans.push([at, at + needle.length]);
      }
    }
    return spans.length > 0 ? maskSpans(line, spans) : line;
  };
  return Object.assign(ordered.length === 0 ? (line: string) => line : mask, { forms: ordered });
}

type Span = [start: number, end: number];

/**
 * Replaces each run of overlapping spans with one mask. The spans are found in the line as printed,
 * not one after another in a line already partly masked: two values (or two forms of one) that
 * overlap are both hidden whole, where masking the first would break the match of the second and
 * leave the rest of it in clear. Spans that only touch keep a mask each.
 */
function maskSpans(line: string, spans: Span[]): string {
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

/** Masks one line; `forms` are the texts it hides, longest first (a line is never cut inside one). */
export type Masker = ((line: string) => string) & { readonly forms: readonly string[] };

/** The texts that stand for one value in output. */
export function formsOf(value: MaskedValue): string[] {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  const forms: string[] = [];
  const add = (text: string) => {
    if (text.length >= MIN_MASKED_LENGTH) forms.push(text);
  };
  const texts = new Set([bytes.toString('utf8'), bytes.toString('latin1')]);
  for (const text of texts) {
    add(text);
    add(text.replace(/[\r\n]+$/, ''));
    const lines = text.split(/\r\n|\r|\n/);
    if (lines.length > 1) for (const line of lines) add(line);
    const json = JSON.stringify(text).slice(1, -1);
    if (json !== text) {
      add(json);
      add(JSON.stringify(text.replace(/[\r\n]+$/, '')).slice(1, -1));
    }
  }
  const trimmed = trimTrailingNewlines(bytes);
  for (const form of trimmed.length === bytes.length ? [bytes] : [bytes, trimmed]) {
    const base64 = form.toString('base64');
    add(base64);
    add(base64.replace(/=+$/, ''));
    for (const piece of base64Cores(form)) if (piece.length >= MIN_DERIVED_LENGTH) forms.push(piece);
    for (const safe of [URI_COMPONENT_SAFE, RFC3986_SAFE]) {
      const percent = percentEncode(form, safe);
      add(percent);
      add(percent.replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
      // Form encoding (`quote_plus`, `urlencode`, `curl --data-urlencode`): a space is a `+`.
      if (form.includes(0x20)) {
        add(percent.replaceAll('%20', '+'));
        add(percent.replaceAll('%20', '+').replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
      }
    }
  }
  return forms;
}

/**
 * Base64 of a value printed with other bytes around it (`user:TOKEN` for HTTP Basic auth, a JSON
 * document, `echo "$TOKEN" | base64`) differs from the value's own base64 at its ends: the characters
 * that also carry a neighbour's bits. What stays the same is the part between, which depends on where
 * the value starts in its group of 3 bytes: 3 cores. The encoders wrap long output (`base64` at 76
 * columns, `openssl base64` at 64): each line's share of a core too, for a value at the start.
 */
function base64Cores(value: Buffer): string[] {
  const pieces: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), value]).toString('base64');
    const start = Math.ceil((offset * 8) / 6);
    const end = Math.floor(((offset + value.length) * 8) / 6);
    if (end <= start) continue;
    pieces.push(encoded.slice(start, end));
    for (const width of [76, 64]) {
      if (end <= width) continue;
      for (let line = 0; line < end; line += width) {
        pieces.push(encoded.slice(Math.max(line, start), Math.min(line + width, end)));
      }
    }
  }
  return pieces;
}

function trimTrailingNewlines(bytes: Buffer): Buffer {
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  return bytes.subarray(0, end);
}

/** What encodeURIComponent leaves as it is. */
const URI_COMPONENT_SAFE = /[A-Za-z0-9\-_.!~*'()]/;
/** What RFC 3986 leaves (Python's `quote`, Go's `url.QueryEscape`, curl): `!*'()` are encoded too. */
const RFC3986_SAFE = /[A-Za-z0-9\-_.~]/;

/** Percent encoding over bytes: the safe ASCII stays, every other byte becomes %XX. */
function percentEncode(bytes: Buffer, safe: RegExp): string {
  let out = '';
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    out += safe.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
