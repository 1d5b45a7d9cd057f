import { isUtf8 } from 'node:buffer';

/** Shortest text that is masked; shorter ones would mask ordinary text. */
export const MIN_MASKED_LENGTH = 4;
/** Shortest part of an encoding that is masked (a base64 core, one line of wrapped base64). */
export const MIN_DERIVED_LENGTH = 8;
/** Shortest part of a structured value (a JSON string, a `key = value` value) masked on its own. */
const MIN_PART_LENGTH = 16;
/** Most parts of one structured value masked on their own. */
const MAX_PARTS = 32;

/** A credential value as the agent received it: its bytes, or text (encoded as UTF-8). */
export type MaskedValue = string | Uint8Array;

/**
 * A value as string escaping and quoting print it: JSON (also with `\/`, and with `\u00XX` for what
 * is not ASCII, as Python's json.dumps does), shell single quotes (`'\''` as bash's `set -x` prints a
 * quote, `'"'"'` as Python's shlex.quote), backslashes before `\ " $ \`` (`declare -p`, double-quoted
 * shell), backslashes before `\ '` (Python's repr, Node's inspect), and with `markup` (the value is
 * text, read as UTF-8) for a value with the character concerned: HTML and XML entities (see
 * markupForms), also of its JSON escaping, `''` for a quote (YAML, SQL) and `""` for a double quote
 * (CSV), and for one with non-ASCII: `\u00XX` in upper case (Java) and XML character references.
 * `printf %q` of a value with any other punctuation is found in a view instead (see printfQSign).
 */
function quotedForms(text: string, markup: boolean): string[] {
  const json = JSON.stringify(text).slice(1, -1);
  const ascii = asciiJson(json);
  const forms = [
    json,
    json.replaceAll('/', '\\/'),
    ascii,
    // Go's encoding/json (json.Marshal, a Go program's JSON log) escapes `<`, `>` and `&` for HTML.
    json.replace(/[<>&\u2028\u2029]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`),
  ];
  // The same in upper-case hex (Java: Jackson's ESCAPE_NON_ASCII, Properties.store, native2ascii), only
  // for text with a character of non-ASCII whose code has a letter: any other has the forms it had.
  const upper = ascii.replace(/\\u[0-9a-f]{4}/g, (code) => `\\u${code.slice(2).toUpperCase()}`);
  if (markup && upper !== ascii && ascii !== json) forms.push(upper);
  if (text.includes("'")) forms.push(...singleQuoted(text));
  forms.push(text.replace(/[\\"$`]/g, '\\$&'), text.replace(/[\\']/g, '\\$&'));
  // Only for a value with the character concerned: any other has the forms it had.
  if (markup && /[&<>"']/.test(text)) {
    forms.push(...markupForms(text));
    // Its JSON escaping in HTML (`\&quot;`: a JSON dump in an HTML report), for a value that is not long.
    if (text.length <= COMBINED_MAX)
      for (const escaped of new Set([json, ascii]))
        if (escaped !== text && /[&<>"']/.test(escaped)) forms.push(...markupForms(escaped));
  }
  // XML with what is not ASCII as character references (`&#228;`: ElementTree's tostring and write,
  // whose encoding is US-ASCII unless told), for a value with non-ASCII that is not long.
  if (markup && text.length <= COMBINED_MAX && NON_ASCII.test(text))
    for (const form of /[&<>"']/.test(text) ? markupForms(text) : [text])
      forms.push(form.replace(NON_ASCII_ALL, (char) => `&#${char.codePointAt(0)};`));
  if (markup) forms.push(...doubledQuotes(text));
  return forms;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: everything that is ASCII stays.
const NON_ASCII = /[^\x00-\x7f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: everything that is ASCII stays.
const NON_ASCII_ALL = /[^\x00-\x7f]/gu;

/** A quote doubled: `''` in a YAML single-quoted scalar and an SQL string, `""` in a CSV field. */
function doubledQuotes(text: string): string[] {
  const forms: string[] = [];
  if (text.includes("'")) forms.push(text.replaceAll("'", "''"));
  if (text.includes('"')) forms.push(text.replaceAll('"', '""'));
  return forms;
}

/** JSON escaping with `\u00XX` for what is not ASCII (Python's json.dumps, JavaScript's ensure-ASCII printers). */
function asciiJson(json: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: everything that is ASCII stays.
  return json.replace(/[^\x00-\x7f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The longest value (in characters or bytes) whose encodings of encodings are made: JSON escaping in
 * HTML, base64 of its JSON escaping, base64 of its base64. Credentials that are printed so (a password,
 * a token, a PEM key, a service account file) are far shorter; each such form of a 128 KB value would
 * be hundreds of KB more of every masker's memory.
 */
const COMBINED_MAX = 16 * 1024;

/**
 * How the escapers of HTML and XML write `"` and `'` (`&`, `<` and `>` are `&amp;`, `&lt;` and `&gt;`
 * in all): as they are (XML text, Python's xml.sax.saxutils.escape and html.escape with quote=False),
 * `"` alone (PHP's htmlspecialchars before 8.1), `&quot;` `&#x27;` (Python's html.escape), `&quot;`
 * `&#39;` (lodash, Ruby's CGI.escapeHTML, .NET), `&#34;` `&#39;` (Go's html.EscapeString and
 * html/template, Jinja's markupsafe), `&quot;` `&apos;` (XML attributes, Java's escapeXml), `&quot;`
 * `&#039;` (PHP's htmlspecialchars since 8.1).
 */
const QUOTE_ENTITIES: readonly (readonly [string, string])[] = [
  ['"', "'"],
  ['&quot;', "'"],
  ['&quot;', '&#x27;'],
  ['&quot;', '&#39;'],
  ['&#34;', '&#39;'],
  ['&quot;', '&apos;'],
  ['&quot;', '&#039;'],
];

/** A value as HTML or XML text or an attribute holds it (an agent's HTML report, an XML config). */
function markupForms(text: string): string[] {
  const forms = new Set<string>();
  for (const [double, single] of QUOTE_ENTITIES) {
    const entities: Record<string, string> = {
      '&': '&amp;',
      '<': '&lt;',
      '>': '&gt;',
      '"': double,
      "'": single,
    };
    forms.add(text.replace(/[&<>"']/g, (char) => entities[char] as string));
  }
  return [...forms];
}

/** Inside shell single quotes: `'\\''` as bash's `set -x` prints a quote, `'"'"'` as Python's shlex.quote. */
function singleQuoted(text: string): string[] {
  return [text.replaceAll("'", "'\\''"), text.replaceAll("'", `'"'"'`)];
}

/**
 * Whether a value has what quotedForms prints as it is and escapedForms does not: a control character,
 * DEL, or a byte of non-ASCII.
 */
function needsEscaping(bytes: Buffer): boolean {
  for (const byte of bytes) if (byte < 0x20 || byte >= 0x7f) return true;
  // `\` with `"`: Node's inspect in backticks (or Python's repr in `"`) doubles the backslash alone.
  return bytes.includes(0x5c) && bytes.includes(0x22);
}

/**
 * A value as the printers that escape control characters print it, each character escaped on its own
 * (so the value's form is the same inside a longer printed text):
 *
 * - bash's ANSI-C quoting `$'...'` (`printf %q`, `declare -p`, `${v@Q}`, and `set -x` of a value with a
 *   control character other than a newline or tab): `\n \t \r \a \b \f \v`, `\E` for ESC, three-digit
 *   octal for the other control characters, DEL, C1 controls and bytes that are not UTF-8, `\'` and
 *   `\\`; in the C locale (a container without a locale) every byte of non-ASCII in octal, which bash
 *   then prints for a value with no control character too;
 * - coreutils' shell-escape quoting (`ls`, and the file names in `cat`, `cp`, `rm` errors): control
 *   characters in `'$'\033\n''`, octal but for `\a \b \t \n \v \f \r`, and `'\''` for a quote;
 * - Python's repr of a str (`\n \t \r`, `\xNN`/`\uNNNN` for what is not printable) and of bytes (`\xNN`
 *   for each byte of non-ASCII), inside `'` (`\'`) or `"` (a quote as it is);
 * - Node's inspect (`console.log` of an object): `\b \t \n \f \r`, `\xNN` with upper-case hex, the
 *   quote it is in escaped (or none: in `"` or backticks);
 * - Go's `%q` (`strconv.Quote`): `\a \b \f \n \r \t \v`, `\x1b`, `\u0085`, `\"` and `\\`;
 * - PyYAML's double-quoted scalar, of a value that is UTF-8 (see pyyamlQuoted).
 *
 * JSON escaping (quotedForms) is one of these for most values: a value with only newlines and no quote
 * (a PEM key) adds no form but coreutils'.
 */
function* escapedForms(bytes: Buffer, text: boolean): Generator<void, string[]> {
  const chars = decodeChars(bytes);
  const forms = new Set<string>();
  // What a printer makes of an ASCII character depends on it alone (its bytes are its code): made
  // once a printer, where a value of 128 KB was as many calls and strings for each of the printers.
  const printed = (print: (char: Char) => string) => {
    const ascii: (string | undefined)[] = [];
    // Added to a piece at a time, joined once at the end: a string added to a character at a time
    // was a tree of 128,000 strings for a value of 128 KB, which garbage collection marked and kept
    // until it was read (twice the memory of ten such values' forms, twice a full collection's pause).
    const pieces: string[] = [];
    let out = '';
    for (const char of chars) {
      const { point } = char;
      if (point >= 0 && point < 0x80) {
        let text = ascii[point];
        if (text === undefined) {
          text = print(char);
          ascii[point] = text;
        }
        out += text;
      } else out += print(char);
      if (out.length >= PRINTED_PIECE) {
        pieces.push(out);
        out = '';
      }
    }
    pieces.push(out);
    return pieces.join('');
  };
  // A step for each printer (see formsInSteps): each prints the whole value.
  yield;
  for (const locale of ['utf8', 'c'] as const) {
    const ansiC = (char: Char) => bashAnsiC(char, locale);
    forms.add(printed(ansiC));
    yield;
    forms.add(coreutilsQuoted(chars, locale));
    yield;
  }
  for (const quote of ["'", ''] as const) {
    forms.add(printed((char) => pythonRepr(char, quote, false)));
    yield;
    forms.add(printed((char) => pythonRepr(char, quote, true)));
    yield;
    forms.add(printed((char) => nodeInspect(char, quote)));
    yield;
  }
  forms.add(printed(goQuoted));
  // PyYAML takes text: a value of bytes it dumps as `!!binary` base64 (found as base64).
  if (text) {
    yield;
    for (const unicode of [false, true]) forms.add(printed((char) => pyyamlQuoted(char, unicode)));
  }
  return [...forms];
}

/** Characters of a printed form made as one string before it is joined with the others. */
const PRINTED_PIECE = 1024;

/** A character of a value (its code point and UTF-8 bytes), or a byte that is not UTF-8 (`point` -1). */
interface Char {
  point: number;
  bytes: Buffer;
}

/** Each ASCII character's byte, shared by every Char of it (read only). */
const ASCII_BYTES = Array.from({ length: 0x80 }, (_, byte) => Buffer.from([byte]));

function decodeChars(bytes: Buffer): Char[] {
  const chars: Char[] = [];
  for (let at = 0; at < bytes.length; ) {
    const byte = bytes[at] as number;
    if (byte < 0x80) {
      chars.push({ point: byte, bytes: ASCII_BYTES[byte] as Buffer });
      at++;
      continue;
    }
    const size = utf8Size(bytes, at);
    const char = bytes.subarray(at, at + Math.max(size, 1));
    chars.push({ point: size > 0 ? (char.toString('utf8').codePointAt(0) as number) : -1, bytes: char });
    at += Math.max(size, 1);
  }
  return chars;
}

/** Bytes of the UTF-8 character at bytes[at], or 0 if none starts there. */
function utf8Size(bytes: Buffer, at: number): number {
  const lead = bytes[at] as number;
  if (lead < 0x80) return 1;
  const size =
    lead >= 0xc2 && lead <= 0xdf
      ? 2
      : lead >= 0xe0 && lead <= 0xef
        ? 3
        : lead >= 0xf0 && lead <= 0xf4
          ? 4
          : 0;
  if (size === 0 || at + size > bytes.length) return 0;
  const char = bytes.subarray(at, at + size);
  return Buffer.from(char.toString('utf8'), 'utf8').equals(char) ? size : 0;
}

/** The escapes of C for control characters that each printer below has (a subset of them). */
const C_ESCAPES: Record<number, string> = { 7: 'a', 8: 'b', 9: 't', 10: 'n', 11: 'v', 12: 'f', 13: 'r' };

/** A control character (C0, DEL or C1): what every printer escapes. */
function isControl(point: number): boolean {
  return point < 0x20 || (point >= 0x7f && point < 0xa0);
}

/**
 * What Python's str.isprintable and Go's strconv.IsPrint do not leave as it is: a control, format,
 * separator (but the space), unassigned or private-use character.
 */
const NOT_PRINTABLE = /[\p{C}\p{Z}]/u;

function octal(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) out += `\\${byte.toString(8).padStart(3, '0')}`;
  return out;
}

function hex(point: number, upper = false): string {
  const digits = point.toString(16).padStart(2, '0');
  return `\\x${upper ? digits.toUpperCase() : digits}`;
}

function unicode(point: number): string {
  return point < 0x10000
    ? `\\u${point.toString(16).padStart(4, '0')}`
    : `\\U${point.toString(16).padStart(8, '0')}`;
}

function bashAnsiC(char: Char, locale: 'utf8' | 'c'): string {
  const { point } = char;
  if (point === 0x27 || point === 0x5c) return `\\${String.fromCharCode(point)}`;
  if (point === 0x1b) return '\\E';
  const named = C_ESCAPES[point];
  if (named !== undefined) return `\\${named}`;
  if (point < 0 || isControl(point) || (locale === 'c' && point >= 0x80)) return octal(char.bytes);
  return String.fromCodePoint(point);
}

/** coreutils' shell-escape quoting, without the quotes around the whole (as inside a longer name). */
function coreutilsQuoted(chars: Char[], locale: 'utf8' | 'c'): string {
  let out = '';
  let escaping = false;
  for (const char of chars) {
    const { point } = char;
    const escaped = point < 0 || isControl(point) || (locale === 'c' && point >= 0x80);
    if (escaped !== escaping) out += escaped ? "'$'" : "''";
    escaping = escaped;
    if (!escaped) out += point === 0x27 ? "'\\''" : String.fromCodePoint(point);
    else if (point >= 0 && C_ESCAPES[point] !== undefined) out += `\\${C_ESCAPES[point]}`;
    else out += octal(char.bytes);
  }
  // A value that ends in a control character ends where its `$'...'` does.
  return escaping ? `${out}'` : out;
}

function pythonRepr(char: Char, quote: "'" | '', bytes: boolean): string {
  const { point } = char;
  if (point === 0x5c || (quote !== '' && point === 0x27)) return `\\${String.fromCharCode(point)}`;
  if (point === 9 || point === 10 || point === 13) return `\\${C_ESCAPES[point]}`;
  if (bytes && (point < 0 || point >= 0x80)) return [...char.bytes].map((byte) => hex(byte)).join('');
  // A str holds no byte that is not UTF-8: such a value is printed as bytes (above), or decoded with U+FFFD.
  if (point < 0) return '\ufffd';
  if (point === 0x20 || !NOT_PRINTABLE.test(String.fromCodePoint(point))) return String.fromCodePoint(point);
  return point < 0x100 ? hex(point) : unicode(point);
}

function nodeInspect(char: Char, quote: "'" | ''): string {
  const { point } = char;
  if (point === 0x5c || (quote !== '' && point === 0x27)) return `\\${String.fromCharCode(point)}`;
  if (point === 8 || point === 9 || point === 10 || point === 12 || point === 13)
    return `\\${C_ESCAPES[point]}`;
  if (point < 0) return '\ufffd';
  if (isControl(point)) return hex(point, true);
  return String.fromCodePoint(point);
}

/** PyYAML's escapes in a double-quoted scalar (its emitter's ESCAPE_REPLACEMENTS). */
const YAML_ESCAPES: Record<number, string> = {
  0: '0',
  7: 'a',
  8: 'b',
  9: 't',
  10: 'n',
  11: 'v',
  12: 'f',
  13: 'r',
  27: 'e',
  34: '"',
  92: '\\',
  133: 'N',
  160: '_',
  8232: 'L',
  8233: 'P',
};

/**
 * PyYAML's double-quoted scalar (yaml.dump, yaml.safe_dump of a value with a control character, or
 * by default with anything not ASCII): `\t`, `\e`, `\xE4`, `\u03A9`, `\U0001F511` in upper-case hex;
 * with allow_unicode, what is printable stays as it is. A long value is folded over lines, not found.
 */
function pyyamlQuoted(char: Char, unicode: boolean): string {
  const point = char.point < 0 ? 0xfffd : char.point;
  const printable =
    (point >= 0x20 && point <= 0x7e) ||
    (unicode && ((point >= 0xa0 && point <= 0xd7ff) || (point >= 0xe000 && point <= 0xfffd)));
  if (
    printable &&
    point !== 0x22 &&
    point !== 0x5c &&
    point !== 0x2028 &&
    point !== 0x2029 &&
    point !== 0xfeff
  )
    return String.fromCodePoint(point);
  const named = YAML_ESCAPES[point];
  if (named !== undefined) return `\\${named}`;
  const digits = point.toString(16).toUpperCase();
  if (point <= 0xff) return `\\x${digits.padStart(2, '0')}`;
  return point <= 0xffff ? `\\u${digits.padStart(4, '0')}` : `\\U${digits.padStart(8, '0')}`;
}

function goQuoted(char: Char): string {
  const { point } = char;
  if (point === 0x5c || point === 0x22) return `\\${String.fromCharCode(point)}`;
  if (point < 0) return hex(char.bytes[0] as number);
  const named = C_ESCAPES[point];
  if (named !== undefined) return `\\${named}`;
  if (point < 0x80 && isControl(point)) return hex(point);
  if (point === 0x20 || !NOT_PRINTABLE.test(String.fromCodePoint(point))) return String.fromCodePoint(point);
  return unicode(point);
}

/**
 * What `printf %q` puts a backslash before that no form of quotedForms has (they have `\ " $` and
 * backticks together, or `\ '`), those seldom after a backslash in ordinary output first: `\"` and
 * `\\` are in every JSON text, `\(` and `\.` in regular expressions. `#` and `~` are escaped only where
 * a shell would read them, and are no sign.
 */
const PRINTF_Q_ONLY = '!^&;|<>{},?*[]() ';

/**
 * A backslash and a character of the text that `printf %q` puts it before, with the letter or digit
 * on either side of it in the text (never escaped), where the text as `printf %q` prints it is none of
 * quotedForms: a line without it cannot hold the text printed so, and needs no reading without its
 * backslashes (see withoutBackslashes). The letters keep ordinary lines with `\!` or `\(` (a regular
 * expression) from being read so. Undefined if none is needed.
 */
export function printfQSign(text: string): string | undefined {
  const chars = [...PRINTF_Q_ONLY].filter((char) => text.includes(char));
  // `'` with one of `" $` or a backtick: `\'` and `\"` (say) in one form, which quotedForms has not.
  if (chars.length === 0 && text.includes("'") && /["$`]/.test(text)) chars.push("'");
  let best: string | undefined;
  for (const char of chars) {
    for (let at = text.indexOf(char); at !== -1; at = text.indexOf(char, at + 1)) {
      const before = text[at - 1] ?? '';
      const after = text[at + 1] ?? '';
      const sign = `${ALNUM.test(before) ? before : ''}\\${char}${ALNUM.test(after) ? after : ''}`;
      if (best === undefined || sign.length > best.length) best = sign;
      if (best.length === 4) return best;
    }
  }
  return best;
}

const ALNUM = /^[A-Za-z0-9]$/;

/** Four letters or digits in a row: a line of a value without them is punctuation (`{`, `},`). */
export const WORD = /[A-Za-z0-9]{4}/;

/** Whether a text is a JSON document (an object or an array). */
export function isJsonDocument(text: string): boolean {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{') && !trimmed.startsWith('[')) return false;
  try {
    JSON.parse(trimmed);
    return true;
  } catch {
    return false;
  }
}

/**
 * The parts of a structured value that a program reading it prints on their own: the strings of a
 * JSON document (a service account file's private_key), or the values of `key = value` and
 * `key: value` lines (an AWS credentials file, an .npmrc, a .env). Only parts of at least 16
 * characters that are not URLs (the public endpoints such files name).
 */
export function partsOf(value: MaskedValue): string[] {
  const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
  const parts = new Set<string>();
  const keep = (part: string) => {
    if (part.trim().length >= MIN_PART_LENGTH && part !== text && !/^\s*https?:\/\//i.test(part)) {
      parts.add(part);
    }
  };
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      const walk = (node: unknown): void => {
        if (typeof node === 'string') keep(node);
        else if (Array.isArray(node)) for (const item of node) walk(item);
        else if (node !== null && typeof node === 'object')
          for (const item of Object.values(node)) walk(item);
      };
      walk(JSON.parse(trimmed));
      return longestParts(parts);
    } catch {
      // Not JSON: read it as lines.
    }
  }
  for (const line of text.split(/\r?\n/)) {
    const equals = line.indexOf('=');
    const colon = line.indexOf(': ');
    const at = equals > 0 ? equals : colon;
    // The value as the file has it, without the spaces and quotes around it.
    if (at > 0)
      keep(
        line
          .slice(at + (at === equals ? 1 : 2))
          .trim()
          .replace(/^(["'])(.*)\1$/, '$2'),
      );
  }
  return longestParts(parts);
}

/**
 * At most MAX_PARTS parts of one value, the longest: each part adds a dozen forms that every output
 * line is searched for (a 200-line .env would make the line path ten times slower).
 */
function longestParts(parts: Set<string>): string[] {
  return [...parts].sort((a, b) => b.length - a.length).slice(0, MAX_PARTS);
}

/**
 * The texts that stand for one value in output, whole: with wrappedPiecesOf, what it is masked for.
 */
export function formsOf(value: MaskedValue): string[] {
  const steps = formsInSteps(value);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * formsOf, in steps: it yields after each kind of form of the whole value (its quotings, each
 * printer's escaping, base64, hex, percent encoding), where a caller may let the event loop run. A
 * value of 128 KB of random bytes took 0.5-1 s of the daemon's one thread at once.
 */
export function* formsInSteps(value: MaskedValue): Generator<void, string[]> {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  const forms: string[] = [];
  const add = (text: string) => {
    if (text.length >= MIN_MASKED_LENGTH) forms.push(text);
  };
  const utf8 = bytes.toString('utf8');
  // HTML and XML entities and doubled quotes only of a value that is text (UTF-8) as it is: the escapers
  // that print them take text, and a value of bytes (or its Latin-1 reading) reaches one only through a
  // lossy decoding of the agent's choice. Each such form of a value of 128 KB of random bytes (which has
  // every one of `& < > " '`) was 128-256 KB more of every masker built of it. Nor of a text with
  // U+FFFD: a part of such a value (see partsOf) is one, read as UTF-8.
  const markup = isUtf8(bytes) && !utf8.includes('\ufffd');
  const texts = new Set([utf8, bytes.toString('latin1')]);
  for (const text of texts) {
    add(text);
    add(text.replace(/[\r\n]+$/, ''));
    // Without the spaces and tabs around it too: `echo $TOKEN` unquoted, `.strip()`, `.trim()` and
    // `read` drop them, and a value pasted into its file with a trailing space was printed in clear.
    add(text.replace(ASCII_SPACE_AROUND, ''));
    const lines = text.split(/\r\n|\r|\n/);
    if (lines.length > 1) for (const line of lines) add(line);
    // `set -x` and shlex.quote keep a newline as it is: each line of the value, with its quotes quoted.
    if (lines.length > 1)
      for (const line of lines) if (line.includes("'")) for (const quoted of singleQuoted(line)) add(quoted);
    // An escaper of HTML, a YAML or CSV writer, keeps a newline as it is: each line of a value of at
    // most COMBINED_MAX bytes (an HTML report of a .env file) with `& < > " '` in entities, with its
    // quotes doubled. Not the lines of a JSON document (`"type": "service_account",` is in every other
    // one: its strings are parts, see partsOf), nor those without four letters or digits in a row.
    const markupText = markup && text === utf8;
    if (lines.length > 1 && markupText && bytes.length <= COMBINED_MAX && !isJsonDocument(text))
      for (const line of lines) {
        if (!WORD.test(line)) continue;
        if (/[&<>"']/.test(line)) for (const form of markupForms(line)) if (form !== line) add(form);
        for (const form of doubledQuotes(line)) add(form);
      }
    yield;
    for (const whole of new Set([text, text.replace(/[\r\n]+$/, ''), text.replace(ASCII_SPACE_AROUND, '')])) {
      for (const quoted of quotedForms(whole, markupText)) if (quoted !== whole) add(quoted);
      yield;
    }
  }
  const variants = variantsOf(bytes);
  for (const form of variants) {
    if (needsEscaping(form)) for (const escaped of yield* escapedForms(form, markup)) add(escaped);
  }
  for (const form of variants) {
    const base64 = form.toString('base64');
    add(base64);
    add(base64.replace(/=+$/, ''));
    for (const core of base64Cores(form)) if (core.length >= MIN_DERIVED_LENGTH) forms.push(core);
    // The URL-safe alphabet (`-` and `_` for `+` and `/`: a JWT, Python's urlsafe_b64encode, Node's
    // 'base64url'), alone or inside a longer text, only where it differs: one search fewer per value
    // without the padding (found inside the padded form, which only keeps its `=` in clear).
    if (/[+/]/.test(base64)) add(toUrlSafe(base64.replace(/=+$/, '')));
    for (const core of base64Cores(form))
      if (core.length >= MIN_DERIVED_LENGTH && /[+/]/.test(core)) forms.push(toUrlSafe(core));
    if (markup && form.length <= COMBINED_MAX) for (const core of encodedTwice(form)) forms.push(core);
    yield;
    // Hex of its bytes, either case (Python's .hex(), xxd -p, Buffer's 'hex', hexdump with a format):
    // whole bytes, so the same inside the hex of a longer text.
    const hexText = form.toString('hex');
    if (hexText.length >= MIN_DERIVED_LENGTH) forms.push(hexText, hexText.toUpperCase());
    yield;
    for (const safe of [URI_COMPONENT_SAFE, RFC3986_SAFE]) {
      const percent = percentEncode(form, safe);
      add(percent);
      add(percent.replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
      // Form encoding (`quote_plus`, `urlencode`, `curl --data-urlencode`): a space is a `+`.
      if (form.includes(0x20)) {
        add(percent.replaceAll('%20', '+'));
        add(percent.replaceAll('%20', '+').replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
      }
      yield;
    }
  }
  return forms;
}

/**
 * Base64 inside base64, for a value of at most COMBINED_MAX bytes: the cores (see base64Cores) of the
 * base64 of a JSON document that holds the value's base64 (a Kubernetes secret's
 * `.dockerconfigjson`, whose `auth` is the base64 of `user:TOKEN`, as `kubectl get secret -o
 * jsonpath` prints it), and of one that holds the value JSON-escaped (with `\"`, `\n` or `\u00e9`: a
 * config file's base64), where that differs from the value; of a value that is text (UTF-8).
 */
function encodedTwice(form: Buffer): string[] {
  const inner = new Set(base64Cores(form).filter((core) => core.length >= MIN_DERIVED_LENGTH));
  const plain = form.toString('utf8');
  const json = JSON.stringify(plain).slice(1, -1);
  for (const escaped of new Set([json, asciiJson(json)])) if (escaped !== plain) inner.add(escaped);
  const cores: string[] = [];
  for (const each of inner)
    for (const core of base64Cores(Buffer.from(each, 'utf8')))
      if (core.length >= MIN_DERIVED_LENGTH) cores.push(core);
  return cores;
}

function toUrlSafe(base64: string): string {
  return base64.replaceAll('+', '-').replaceAll('/', '_');
}

/**
 * Base64 of a value printed with other bytes around it (`user:TOKEN` for HTTP Basic auth, a JSON
 * document, `echo "$TOKEN" | base64`) differs from the value's own base64 at its ends: the characters
 * that also carry a neighbour's bits. What stays the same is the part between, which depends on where
 * the value starts in its group of 3 bytes: 3 cores.
 */
function base64Cores(value: Buffer): string[] {
  return coreSpans(value).map(({ encoded, start, end }) => encoded.slice(start, end));
}

/**
 * The encoders wrap long output (`base64` at 76 columns, `openssl base64` at 64): each line's share of
 * a value's core (see base64Cores), for a value at the start, of at least 8 characters. A line of
 * output is masked for these; they do not stand for the value whole: many values of a kind share the
 * first or last of them (every HS256 JWT its header and `{"sub":"`, every PKCS#1 RSA key its armour
 * and ASN.1 prefix), so a search of a file for the value looks for its cores in the lines joined.
 */
export function wrappedPiecesOf(value: MaskedValue): string[] {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  const pieces: string[] = [];
  for (const form of variantsOf(bytes)) {
    for (const { encoded, start, end } of coreSpans(form)) {
      for (const width of [76, 64]) {
        if (end <= width) continue;
        for (let line = 0; line < end; line += width) {
          const piece = encoded.slice(Math.max(line, start), Math.min(line + width, end));
          if (piece.length >= MIN_DERIVED_LENGTH) pieces.push(piece);
        }
      }
    }
  }
  return pieces;
}

/** For each of the 3 alignments, the value's base64 after that many other bytes, and where its core is. */
function coreSpans(value: Buffer): { encoded: string; start: number; end: number }[] {
  const spans: { encoded: string; start: number; end: number }[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const start = Math.ceil((offset * 8) / 6);
    const end = Math.floor(((offset + value.length) * 8) / 6);
    if (end > start)
      spans.push({ encoded: Buffer.concat([Buffer.alloc(offset), value]).toString('base64'), start, end });
  }
  return spans;
}

/**
 * The cores of a value's base64 (see base64Cores), without its wrapped pieces: what a line of wrapped
 * base64 of a longer text may start or end with, wherever the wrap falls.
 */
export function coresOf(value: MaskedValue): string[] {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  const cores = new Set<string>();
  for (const form of variantsOf(bytes)) {
    for (const { encoded, start, end } of coreSpans(form)) {
      if (end - start >= MIN_DERIVED_LENGTH) cores.add(encoded.slice(start, end));
    }
  }
  return [...cores];
}

function trimTrailingNewlines(bytes: Buffer): Buffer {
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  return bytes.subarray(0, end);
}

/** Spaces, tabs and line endings at a text's start or end (what `.strip()` and word splitting drop). */
const ASCII_SPACE_AROUND = /^[\t\n\v\f\r ]+|[\t\n\v\f\r ]+$/g;

/** Whether a byte is one of ASCII_SPACE_AROUND's. */
function isAsciiSpace(byte: number | undefined): boolean {
  return byte === 0x20 || (byte !== undefined && byte >= 0x09 && byte <= 0x0d);
}

/**
 * The value's bytes as the agent may print them: as they are, without trailing line endings, and
 * without the spaces, tabs and line endings around it (each once, when it differs; the last only when
 * it is no shorter than MIN_MASKED_LENGTH).
 */
function variantsOf(bytes: Buffer): Buffer[] {
  const variants = [bytes];
  const trimmed = trimTrailingNewlines(bytes);
  if (trimmed.length !== bytes.length && trimmed.length > 0) variants.push(trimmed);
  let start = 0;
  let end = bytes.length;
  while (start < end && isAsciiSpace(bytes[start])) start++;
  while (end > start && isAsciiSpace(bytes[end - 1])) end--;
  // Not one shorter than a masked text: its encodings would mask ordinary output.
  if (end - start >= MIN_MASKED_LENGTH && end - start !== trimmed.length)
    variants.push(bytes.subarray(start, end));
  return variants;
}

/** What encodeURIComponent leaves as it is. */
const URI_COMPONENT_SAFE = /[A-Za-z0-9\-_.!~*'()]/;
/** What RFC 3986 leaves (Python's `quote`, Go's `url.QueryEscape`, curl): `!*'()` are encoded too. */
const RFC3986_SAFE = /[A-Za-z0-9\-_.~]/;

/** Of each byte, whether `safe` leaves it as it is (one table for each of the two). */
const SAFE_BYTES = new Map<RegExp, Uint8Array>();
const HEX_UPPER = '0123456789ABCDEF';

/** Percent encoding over bytes: the safe ASCII stays, every other byte becomes %XX. */
function percentEncode(bytes: Buffer, safe: RegExp): string {
  let table = SAFE_BYTES.get(safe);
  if (table === undefined) {
    table = new Uint8Array(256);
    for (let byte = 0; byte < 256; byte++) table[byte] = safe.test(String.fromCharCode(byte)) ? 1 : 0;
    SAFE_BYTES.set(safe, table);
  }
  // Written into bytes, one string at the end: a string added to character by character was a
  // hundred thousand concatenations and regular-expression tests for a value of 128 KB.
  const out = Buffer.allocUnsafe(bytes.length * 3);
  let size = 0;
  for (const byte of bytes) {
    if (table[byte] === 1) out[size++] = byte;
    else {
      out[size++] = 0x25;
      out[size++] = HEX_UPPER.charCodeAt(byte >> 4);
      out[size++] = HEX_UPPER.charCodeAt(byte & 15);
    }
  }
  return out.toString('latin1', 0, size);
}
