import {
  coresOf,
  formsInSteps,
  formsOf,
  type MaskedValue,
  MIN_DERIVED_LENGTH,
  MIN_MASKED_LENGTH,
  partsOf,
  printfQSign,
  wrappedPiecesOf,
} from './mask-forms.js';
import {
  hasPercentEscape,
  LineReadings,
  type LineView,
  percentDecoded,
  withoutBackslashes,
  withoutEscapes,
} from './mask-views.js';

export type { MaskedValue } from './mask-forms.js';
export const MASK = '********';

/**
 * Builds a function that hides credential values in output lines. Output reaches it one line at a
 * time, decoded as UTF-8 (invalid bytes become U+FFFD, exactly as the output reader decodes them), so
 * each value is looked for in every form an agent is likely to print:
 *
 * - the value itself, and without its trailing CR/LF (`echo "$TOKEN"` of a value read with `\r\n`), and
 *   without the spaces and tabs around it (`echo $TOKEN` unquoted, `.strip()`), in every form below;
 * - each line of a multi-line value (a PEM key printed as it is), without its CR;
 * - its bytes read as Latin-1 (a non-UTF-8 value the agent converted to UTF-8);
 * - standard base64 of its bytes, with and without padding, and inside a longer base64 text (the value
 *   after other bytes, as `user:TOKEN` in HTTP Basic auth), each line of it wrapped at 76 or 64 columns,
 *   and in the URL-safe alphabet (a JWT); and base64 of a JSON document holding its base64 or its JSON
 *   escaping (a Kubernetes `.dockerconfigjson`);
 * - URL (percent) encoding of any of its characters (every encoder's choice of which to encode),
 *   either hex case, and with a space as `+` (form encoding);
 * - JSON string escaping (a multi-line value printed inside JSON stays on one line), also with `\/`
 *   with `\u00XX` for what is not ASCII (also in upper case: Jackson, Java's Properties.store), and with
 *   `\u0026` for `&` and `<`, `>` as Go's json.Marshal;
 * - hex of its bytes, either case, also inside the hex of a longer text;
 * - shell and source-code quoting of `'`, `"`, `\`, `$` and backticks (`set -x`, `declare -p`,
 *   Python's repr), and a backslash before any punctuation or space (`printf %q`);
 * - a value that is text with `& < > " '` in HTML or XML entities (each escaper's choice for the
 *   quotes), also its JSON escaping so, and with its quotes doubled (`''` in YAML and SQL, `""` in CSV),
 *   each line of a multi-line one too; with non-ASCII as XML character references (`&#228;`);
 * - control characters and non-ASCII escaped: bash's `$'...'` (octal in the C locale), coreutils' file
 *   names, Python's repr of a str or bytes, Node's inspect, Go's `%q`, PyYAML (see escapedForms);
 * - with terminal escape sequences (colours) anywhere inside it, also between `printf %q`'s backslashes;
 * - each part of a structured value on its own: the strings of a JSON credential file (a service
 *   account's private key), the values of its `key = value` or `key: value` lines (an AWS credentials
 *   file, an .npmrc), of at least 16 characters and not URLs.
 *
 * Every character of the line that is part of any of these forms is hidden, where forms overlap too.
 * Not masked: hex with separators or wrapped, reversed or otherwise transformed values, a value split across lines in any other
 * way, and any text shorter than 4 characters.
 *
 * `except`: forms not to look for (the output archive's search leaves out the lines any file of a
 * multi-line value's kind has, such as a PEM key's armour).
 */
export function createMasker(
  values: readonly MaskedValue[],
  options: { except?: ReadonlySet<string> } = {},
): Masker {
  return atOnce(maskerSteps(values, options));
}

/**
 * createMasker, with the event loop free between its steps (each value's forms, then each stage of
 * what is built of them all): ten values of 128 KB make 150,000 forms of 30 million characters, a
 * second of work that at once held up every other session and client of the daemon.
 */
export function createMaskerYielding(
  values: readonly MaskedValue[],
  options: { except?: ReadonlySet<string> } = {},
): Promise<Masker> {
  return inSteps(maskerSteps(values, options));
}

/**
 * The forms of values, made in steps as createMaskerYielding makes them: the costly part of a masker
 * (each value's encodings, quotings and pieces, sorted), which depends on the values alone. Every
 * masker of the same values derives from it (maskerOf, searchOf): a session's output masker and its
 * output archive's search make them once between them.
 */
export function maskFormsYielding(values: readonly MaskedValue[]): Promise<MaskForms> {
  return inSteps(formsSteps(values));
}

/** The masker createMaskerYielding(values, options) builds, from the values' forms (maskFormsYielding). */
export function maskerOf(forms: MaskForms, options: { except?: ReadonlySet<string> } = {}): Promise<Masker> {
  return inSteps(assembleSteps(forms, options));
}

/**
 * What the output archive's search takes of the masker createMasker(values, { except }) builds, from
 * the values' forms: its identifying forms, its readings and its reach (the search needs no masking of
 * lines, so not the index a masker builds of its forms).
 */
export function searchOf(
  forms: MaskForms,
  except: ReadonlySet<string>,
): Pick<Masker, 'identifying' | 'readings' | 'reach'> {
  const { identifying, readings, reach } = atOnce(partsOfMasker(forms, except));
  return { identifying, readings, reach };
}

/** searchOf, with the event loop free between its steps (see partsOfMasker). */
export async function searchOfYielding(
  forms: MaskForms,
  except: ReadonlySet<string>,
): Promise<Pick<Masker, 'identifying' | 'readings' | 'reach'>> {
  const { identifying, readings, reach } = await inSteps(partsOfMasker(forms, except));
  return { identifying, readings, reach };
}

/** The forms of some values (see maskFormsYielding); read only, shared by the maskers built of them. */
export interface MaskForms {
  /** Every form of at least MIN_MASKED_LENGTH characters, once, longest first. */
  readonly sorted: readonly string[];
  /** Of each of `sorted`, what it is: WHOLE, SPACE, BACKSLASH, LINES, or-ed. */
  readonly kinds: Uint8Array;
  /** Where a line of wrapped base64 may start or end with a value's core (see wrappedBase64). */
  readonly wrapped: WrappedBase64;
  /** The signs of values printed by `printf %q` (see printfQSign). */
  readonly signs: readonly string[];
  /** The values came to YIELD_BYTES or more: a stepped build lets the event loop run between its stages. */
  readonly large: boolean;
}

/** A form that stands for a value whole (not a width-cut piece of its wrapped base64). */
const WHOLE = 1;
/** A form with a space (form encoding makes it a `+`). */
const SPACE = 2;
/** A form with a backslash (an escaped one: looked for only in a text with a backslash). */
const BACKSLASH = 4;
/** A form of more than one line (a line of output never holds it whole). */
const LINES = 8;

function atOnce<T>(steps: Generator<void, T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

async function inSteps<T>(steps: Generator<void, T>): Promise<T> {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Builds a Masker (see createMasker), yielding where a caller may let the event loop run. */
function* maskerSteps(
  values: readonly MaskedValue[],
  options: { except?: ReadonlySet<string> },
): Generator<void, Masker> {
  const forms = yield* formsSteps(values);
  return yield* assembleSteps(forms, options);
}

/** Makes the forms of values (see MaskForms), yielding after each YIELD_BYTES of values and after the sort. */
function* formsSteps(values: readonly MaskedValue[]): Generator<void, MaskForms> {
  const needles = new Set<string>();
  /** The forms that stand for a value whole: all but the width-cut pieces of its wrapped base64. */
  const whole = new Set<string>();
  const cores = new Set<string>();
  const signs = new Set<string>();
  const sign = (value: MaskedValue) => {
    const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
    // A line of a multi-line value may be printed on its own, with a sign of its own.
    for (const line of new Set([text, ...text.split(/\r\n|\r|\n/)])) {
      const found = printfQSign(line);
      if (found !== undefined) signs.add(found);
    }
  };
  const add = function* (value: MaskedValue): Generator<void> {
    // A long value's forms are made in steps of their own (each kind of form of it: 0.5-1 s at once
    // for 128 KB of random bytes); a short one's at once.
    const forms = large && value.length >= STEP_BYTES ? yield* formsInSteps(value) : formsOf(value);
    for (const form of forms) {
      needles.add(form);
      whole.add(form);
    }
    for (const piece of wrappedPiecesOf(value)) needles.add(piece);
    for (const core of coresOf(value)) cores.add(core);
    sign(value);
  };
  // Short values (nearly all) are built at once: values of less than YIELD_BYTES in all in one step.
  // Values of more are built in steps of STEP_BYTES of values and of their parts, and a long value's
  // forms in steps of their own (formsInSteps).
  const large = values.reduce((total, value) => total + value.length, 0) >= YIELD_BYTES;
  let pending = 0;
  const made = function* (bytes: number): Generator<void> {
    pending += bytes;
    if (large && pending >= STEP_BYTES) {
      pending = 0;
      yield;
    }
  };
  for (const value of values) {
    yield* add(value);
    yield* made(value.length);
    // A value of 128 KB of random bytes has 32 parts of a thousand characters: 0.1 s of CPU at once.
    for (const part of partsOf(value)) {
      yield* add(part);
      yield* made(part.length);
    }
  }
  const wrapped = wrappedBase64([...cores]);
  // Sorted before any `except` leaves some out: the sort is stable, so what is left is in the order a
  // sort of it alone makes.
  const sorted = [...needles]
    .filter((n) => n.length >= MIN_MASKED_LENGTH)
    .sort((a, b) => b.length - a.length);
  // What each form is, read once here for every masker of them (a long value's forms are millions of
  // characters: each of these was a scan of all of them, for each masker).
  if (large) yield;
  const kinds = new Uint8Array(sorted.length);
  const work = stepsOfWork(large);
  for (let i = 0; i < sorted.length; i++) {
    const form = sorted[i] as string;
    kinds[i] =
      (whole.has(form) ? WHOLE : 0) |
      (form.includes(' ') ? SPACE : 0) |
      (form.includes('\\') ? BACKSLASH : 0) |
      (/[\r\n]/.test(form) ? LINES : 0);
    if (work(form.length)) yield;
  }
  // What is built of them (a masker, the archive's search) is a step of its own.
  if (large) yield;
  return { sorted, kinds, wrapped, signs: [...signs], large };
}

/**
 * What a masker and the output archive's search share of forms with `except` left out, yielding after
 * each STEP_CHARS of forms read when the forms are large (ten values of 128 KB of random bytes: 125
 * million characters, a second and more at once).
 */
function* partsOfMasker(forms: MaskForms, except: ReadonlySet<string> | undefined) {
  const { sorted, kinds, signs, large } = forms;
  const work = stepsOfWork(large);
  const ordered: string[] = [];
  const identifying: string[] = [];
  const spaced: string[] = [];
  const plain: string[] = [];
  const escaped: string[] = [];
  /** The longest one-line form (they are longest first). */
  let longest = 0;
  for (let i = 0; i < sorted.length; i++) {
    const n = sorted[i] as string;
    if (except?.has(n)) continue;
    const kind = kinds[i] as number;
    ordered.push(n);
    if ((kind & BACKSLASH) === 0) plain.push(n);
    else escaped.push(n);
    if ((kind & SPACE) !== 0) spaced.push(n);
    if ((kind & WHOLE) !== 0) {
      identifying.push(n);
      if ((kind & SPACE) !== 0) identifying.push(n.replaceAll(' ', '+'));
    }
    if (longest === 0 && (kind & LINES) === 0) longest = n.length;
    if (work(n.length)) yield;
  }
  // Nothing to find: no reading is made (a masker of no forms masks nothing).
  if (ordered.length === 0)
    return {
      ordered,
      identifying,
      spaced,
      plain,
      escaped,
      readings: new LineReadings({ plus: false, signs: [] }),
      reach: 0,
    };
  // `printf %q`'s backslashes are read away only in a line with a sign of a value printed so: a
  // backslash before `"` or `\` (JSON) is in too many lines to cost each of them another view.
  // Form encoding's `+` for a space is read in a line only when a form has a space.
  const readings = new LineReadings({ plus: spaced.length > 0, signs });
  return { ordered, identifying, spaced, plain, escaped, readings, reach: reachOf(longest) };
}

/** Builds a Masker of forms (see createMasker), yielding where a caller may let the event loop run. */
function* assembleSteps(
  forms: MaskForms,
  options: { except?: ReadonlySet<string> },
): Generator<void, Masker> {
  const { large, wrapped } = forms;
  if (large) yield;
  // Spans are pushed one by one: a 64 KiB line may hold a hundred thousand (no spread of that many).
  // The escaped forms (JSON, repr, `$'...'`) are looked for only in a text with a backslash: one search
  // of the line instead of one for each of them.
  const { ordered, identifying, spaced, plain, escaped, readings, reach } = yield* partsOfMasker(
    forms,
    options.except,
  );
  // Form encoding's `+` for a space: what a form with a space looks like with each space a `+` (with
  // percent escapes too, a block has one anyway). Only these send a block with a `+` line by line.
  const plused: Buffer[] = [];
  const work = stepsOfWork(large);
  for (const n of spaced) {
    plused.push(Buffer.from(n.replaceAll(' ', '+')));
    if (work(n.length)) yield;
  }
  const backslashed = forms.signs;
  const backslashedBytes = backslashed.map((s) => Buffer.from(s));
  // Thousands of forms (a long value's wrapped base64) are looked for in one pass of the line, where a
  // search each cost every line of output 200 µs with a 100 KB value.
  if (large) yield;
  const indexed = plain.length > INDEXED_FROM ? new FormIndex(plain, escaped) : undefined;
  // What the caller builds of the masker (a search of its forms) is a step of its own.
  if (large) yield;
  const findAll = (needles: string[], text: string, spans: Span[], view?: LineView): void => {
    for (const needle of needles) {
      // Every occurrence, overlapping ones too (a value of `aaaa` in `aaaaaa`).
      for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) {
        const end = at + needle.length;
        spans.push(view ? view.source(at, end) : [at, end]);
      }
    }
  };
  const find = (text: string, spans: Span[], view?: LineView): void => {
    const backslash = escaped.length > 0 && text.includes('\\');
    if (indexed) {
      indexed.findAll(text, backslash, (at, end) => spans.push(view ? view.source(at, end) : [at, end]));
      return;
    }
    findAll(plain, text, spans, view);
    if (backslash) findAll(escaped, text, spans, view);
  };
  const spansOf = (line: string): Span[] => {
    const spans: Span[] = [];
    find(line, spans);
    for (const span of wrapped.spans(line)) spans.push(span);
    const escapes = withoutEscapes(line);
    const views = [
      escapes,
      hasPercentEscape(line) ? percentDecoded(line, false) : undefined,
      plused.length > 0 && line.includes('+') ? percentDecoded(line, true) : undefined,
      backslashed.some((s) => line.includes(s)) ? withoutBackslashes(line) : undefined,
      // Both: a highlighter (bat, delta) colours `printf %q`'s `\!` apart from the letters around it.
      escapes && backslashed.some((s) => escapes.text.includes(s))
        ? within(escapes, withoutBackslashes)
        : undefined,
    ];
    for (const view of views) if (view) find(view.text, spans, view);
    return spans;
  };
  const mask = (line: string) => {
    const spans = spansOf(line);
    return spans.length > 0 ? maskSpans(line, spans) : line;
  };
  // What sends a block line by line wherever it is: searched for with the forms where the caller can
  // (lineHints), else by needsLines.
  const lineHints = [...plused, ...backslashedBytes, ...wrapped.hints];
  if (ordered.length === 0)
    return Object.assign((line: string) => line, {
      forms: [],
      identifying: [],
      needsLines: () => false,
      lineHints: [],
      readings,
      spans: () => [],
      reach,
    });
  return Object.assign(mask, {
    forms: ordered,
    identifying,
    readings,
    spans: spansOf,
    reach,
    needsLines: (bytes: Buffer, hintsSearched = false) =>
      bytes.includes(0x1b) ||
      hasPercentEscape(bytes) ||
      (!hintsSearched && lineHints.some((hint) => bytes.includes(hint))),
    lineHints,
  });
}

export type Span = [start: number, end: number];

/**
 * Characters (or bytes) of values whose forms createMaskerYielding makes before it lets the event loop
 * run: about 10 ms of work (a value of 128 KB took some 50 ms).
 */
const YIELD_BYTES = 32 * 1024;

/**
 * Of values that came to YIELD_BYTES or more, the characters (or bytes) of values and their parts
 * whose forms are made in one step, and the length from which a value's forms are made in steps of
 * their own (see formsInSteps): some tens of milliseconds of work for random bytes, the costliest.
 */
const STEP_BYTES = 8 * 1024;

/**
 * Characters of forms read (sorted out, re-encoded) between two steps of a large build: some tens of
 * milliseconds of work.
 */
const STEP_CHARS = 4 * 1024 * 1024;

/**
 * Counts the characters of work done in a loop: true (yield) after each STEP_CHARS of them when the
 * build is large, never otherwise.
 */
function stepsOfWork(large: boolean): (chars: number) => boolean {
  let done = 0;
  return (chars) => {
    if (!large) return false;
    done += chars;
    if (done < STEP_CHARS) return false;
    done = 0;
    return true;
  };
}

/** Forms past this many are looked for through a FormIndex (fewer: one native search each is faster). */
const INDEXED_FROM = 64;

/**
 * Forms (each at least MIN_MASKED_LENGTH characters) found in a text in one pass: each position's
 * first 4 characters, as a key rolled on from the position before, are looked up in a table, and only
 * where one of the forms starts so are they compared. Every occurrence, overlapping ones too, as a search of each would find. The escaped
 * forms (with a backslash) are in the same index, found only when asked for (a text with a
 * backslash): one pass of a line for all of them, where a native search each cost every view of a
 * line with a backslash one pass of it per escaped form (19 for a PEM key, its JSON file and a token).
 *
 * The forms of one key are compared as a sorted list with the length each shares with the one before
 * it: what a text matched of one form says, without comparing, how far it matches the next, so a
 * position costs at most one comparison of the longest form's characters. Many forms share a long
 * start (a PEM key's armour and its JSON, shell and repr escapings): a line of that start repeated
 * made a comparison of each of them at every place it starts.
 */
class FormIndex {
  /** A bit of each key some form starts with: 128 KiB, which a CPU's cache holds (a byte each did not). */
  private readonly table = new Int32Array((1 << 20) >>> 5);
  private readonly byKey = new Map<number, KeyForms>();

  constructor(plain: readonly string[], escaped: readonly string[]) {
    const lists = new Map<number, { form: string; escaped: boolean }[]>();
    for (const [forms, isEscaped] of [
      [plain, false],
      [escaped, true],
    ] as const) {
      for (const form of forms) {
        const key = FormIndex.key(form, 0);
        this.table[key >>> 5] = (this.table[key >>> 5] as number) | (1 << (key & 31));
        const list = lists.get(key) ?? [];
        list.push({ form, escaped: isEscaped });
        lists.set(key, list);
      }
    }
    for (const [key, list] of lists) {
      // In code-unit order, as the comparisons below read characters.
      list.sort((x, y) => (x.form < y.form ? -1 : x.form > y.form ? 1 : 0));
      const shared = new Int32Array(list.length);
      for (let i = 1; i < list.length; i++) {
        const [x, y] = [(list[i - 1] as { form: string }).form, (list[i] as { form: string }).form];
        let n = 0;
        while (n < x.length && n < y.length && x.charCodeAt(n) === y.charCodeAt(n)) n++;
        shared[i] = n;
      }
      this.byKey.set(key, {
        forms: list.map((entry) => entry.form),
        escaped: Uint8Array.from(list, (entry) => (entry.escaped ? 1 : 0)),
        shared,
      });
    }
  }

  /**
   * A key of 4 characters: 5 bits of each (its low ones, where ASCII letters, digits and punctuation
   * differ most), so that a text's keys roll on by one shift a character.
   */
  private static roll(key: number, code: number): number {
    return ((key << 5) | (code & 0x1f)) & 0xfffff;
  }

  private static key(text: string, at: number): number {
    let key = 0;
    for (let i = 0; i < MIN_MASKED_LENGTH; i++) key = FormIndex.roll(key, text.charCodeAt(at + i));
    return key;
  }

  findAll(text: string, escaped: boolean, found: (start: number, end: number) => void): void {
    if (text.length < MIN_MASKED_LENGTH) return;
    // The key of the 4 characters before `at + 3`, rolled on by one character a position.
    let key = 0;
    for (let i = 0; i < MIN_MASKED_LENGTH - 1; i++) key = FormIndex.roll(key, text.charCodeAt(i));
    for (let at = 0; at + MIN_MASKED_LENGTH <= text.length; at++) {
      key = FormIndex.roll(key, text.charCodeAt(at + MIN_MASKED_LENGTH - 1));
      if (((this.table[key >>> 5] as number) & (1 << (key & 31))) === 0) continue;
      const list = this.byKey.get(key);
      if (list !== undefined) FormIndex.match(list, text, at, escaped, found);
    }
  }

  /**
   * The forms of a list found at text[at]. `matched` is how many characters of the form before the
   * text has: the next form shares `shared` with it, so if that is more, it has what the text does
   * not where the one before stopped matching; if less, it (and every form after it, which sorts
   * after the text there) differs from the text where it leaves the one before.
   */
  private static match(
    list: KeyForms,
    text: string,
    at: number,
    escaped: boolean,
    found: (start: number, end: number) => void,
  ): void {
    const { forms, shared } = list;
    const room = text.length - at;
    let matched = 0;
    for (let i = 0; i < forms.length; i++) {
      if (i > 0) {
        const common = shared[i] as number;
        if (common < matched) return;
        if (common > matched) continue;
      }
      const form = forms[i] as string;
      const most = Math.min(form.length, room);
      while (matched < most && text.charCodeAt(at + matched) === form.charCodeAt(matched)) matched++;
      if (matched === form.length && (escaped || list.escaped[i] === 0)) found(at, at + form.length);
    }
  }
}

/** The forms of one key of a FormIndex, sorted, with what each shares with the one before it. */
interface KeyForms {
  readonly forms: readonly string[];
  /** Of each form, 1 if it has a backslash (looked for only in a text with one). */
  readonly escaped: Uint8Array;
  readonly shared: Int32Array;
}

/** A view of a view's text, as a view of the line. */
function within(outer: LineView, read: (text: string) => LineView | undefined): LineView | undefined {
  const inner = read(outer.text);
  if (!inner) return undefined;
  return {
    text: inner.text,
    source(start, end) {
      const [from, to] = inner.source(start, end);
      return outer.source(from, to);
    },
  };
}

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
function reachOf(longest: number): number {
  return Math.max(longest, Math.min(REACH_MAX, REACH_PER_CHAR * longest + REACH_ESCAPES));
}

/** A line of base64 as encoders wrap it (`base64` at 76 columns, `openssl base64` at 64). */
const WRAPPED_BASE64_LINE = /^[A-Za-z0-9+/]+={0,2}$/;
const WRAPPED_LINE_MAX = 76;

/**
 * A value inside a longer text whose base64 is wrapped (`base64 .env`): wherever the wrap falls, a
 * line ends with the start of one of the value's cores, or starts with the rest of it. Only the ends
 * of a core: a middle line of a core longer than a line (a value of more than about 57 bytes in the
 * middle of a file) is not found. `hints` are what a block of lines that may hold such a line holds (the
 * first or last 8 characters of a core), so that blocks without one need not be split into lines.
 */
type WrappedBase64 = ReturnType<typeof wrappedBase64>;

function wrappedBase64(cores: string[]) {
  // Every 8 characters of a core that a line's length (76) from its start or its end holds: a line's
  // last 8 say which start of a core it may end with, its first 8 which rest of one it may start with.
  // Two look-ups a line, where looking for each core's ends in it cost a search each (a file of
  // wrapped base64 has a line of that shape every 77 bytes).
  const starts = new Map<string, { core: string; at: number }[]>();
  const rests = new Map<string, { core: string; at: number }[]>();
  const add = (windows: typeof starts, core: string, at: number) => {
    const window = core.slice(at, at + MIN_DERIVED_LENGTH);
    const list = windows.get(window) ?? [];
    list.push({ core, at });
    windows.set(window, list);
  };
  for (const core of cores) {
    const last = core.length - MIN_DERIVED_LENGTH;
    for (let at = 0; at <= Math.min(last, WRAPPED_LINE_MAX - MIN_DERIVED_LENGTH); at++) add(starts, core, at);
    for (let at = Math.max(0, core.length - WRAPPED_LINE_MAX); at <= last; at++) add(rests, core, at);
  }
  const hints = cores.flatMap((core) => [
    Buffer.from(core.slice(0, MIN_DERIVED_LENGTH)),
    Buffer.from(core.slice(-MIN_DERIVED_LENGTH)),
  ]);
  return {
    hints,
    spans(line: string): Span[] {
      const length = line.length;
      if (cores.length === 0 || length < MIN_DERIVED_LENGTH || length > WRAPPED_LINE_MAX) return [];
      if (!WRAPPED_BASE64_LINE.test(line)) return [];
      // The longest start of a core the line ends with, and the longest rest of one it starts with.
      let start = 0;
      for (const { core, at } of starts.get(line.slice(-MIN_DERIVED_LENGTH)) ?? []) {
        const k = at + MIN_DERIVED_LENGTH;
        if (k > start && k <= length && line.endsWith(core.slice(0, k))) start = k;
      }
      let rest = 0;
      for (const { core, at } of rests.get(line.slice(0, MIN_DERIVED_LENGTH)) ?? []) {
        const k = core.length - at;
        if (k > rest && k <= length && line.startsWith(core.slice(at))) rest = k;
      }
      const spans: Span[] = [];
      if (start > 0) spans.push([length - start, length]);
      if (rest > 0) spans.push([0, rest]);
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
 * escape sequence, a percent escape, a `+`, a backslash before what `printf %q` escapes in a value
 * (the views a value may hide in without any of its forms), or a line of wrapped base64 of one.
 */
export type Masker = ((line: string) => string) & {
  readonly forms: readonly string[];
  /** `hintsSearched`: the caller looked for `lineHints` in the bytes already (with the forms). */
  readonly needsLines: (bytes: Buffer, hintsSearched?: boolean) => boolean;
  /**
   * Bytes that send a block line by line wherever they are in it (a form with `+` for its spaces, a
   * value's `printf %q` signs, the ends of its base64 cores): what needsLines looks for besides the
   * escapes, for a caller that looks for them in the same search as the forms.
   */
  readonly lineHints: readonly Buffer[];
  /** Where in the line masking hides something (the mask is maskSpans of these). */
  readonly spans: (line: string) => Span[];
  /**
   * For a search of bytes that are not masked line by line (the output archive): the forms that stand
   * for a value whole, that is `forms` without the width-cut pieces of a value's wrapped base64 (see
   * wrappedPiecesOf: values of a kind share the first or last of them, every HS256 JWT the first),
   * and each of them with a space also with `+` for it (form encoding, which masking reads in a view).
   */
  readonly identifying: readonly string[];
  /**
   * The views of a line (escape sequences, percent escapes, `printf %q`'s backslashes) over its bytes,
   * for the same search: what masking finds in a view is found in one of these by `identifying`.
   */
  readonly readings: LineReadings;
  /** The most characters of a line one hidden value may stretch over (see REACH_PER_CHAR). */
  readonly reach: number;
};
