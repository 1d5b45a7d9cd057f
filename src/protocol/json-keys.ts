/**
 * Keys a JSON text repeats within one object, and its nesting depth. JSON.parse keeps the last value of a
 * repeated key without a word, so `{"type":"trigger","agent":"a","agent":"b"}` triggered b while a client,
 * a proxy or a log reader that takes the first value saw a trigger of a; and it takes any depth, at a cost:
 * a 16 MiB line of `[[[[...` held the daemon's event loop for 7 to 11 s and its RSS at some 900 MB. The
 * socket and the HTTP API refuse both, cheaply: `shapeOf` runs before JSON.parse (a search for the next
 * quote or bracket, strings skipped with indexOf), `keyCount` after it, and only a request whose counts
 * differ (one that repeats a key, and is refused) pays for `repeatedKeys`, which finds where. None of
 * them recurses.
 */

/**
 * How deep a request may nest objects and arrays: no request of the socket or the HTTP API nests more
 * than 3 (a trigger's `inputs`: object, array, object); far more than that is no request at all.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * How many keys a request may hold, every object's together: no request holds more than some 150 (a
 * trigger's fields and 64 inputs of two). JSON.parse took 1.2 s for an object of a million keys.
 */
export const MAX_JSON_KEYS = 4096;

/**
 * How many objects and arrays a request may hold in all: no request holds more than some 70 (a trigger,
 * its `inputs` and 64 of them). A 16 MiB line of `[{},{},...]` (5.6 million empty objects, none deep and
 * no key) held the daemon's event loop for 12 to 26 s and took its RSS to 1.1 GB, as `[[[[...` did.
 */
export const MAX_JSON_CONTAINERS = 4096;

/** What a problem says of a key given twice, whatever door it came through. */
export const REPEATED_KEY_RULE =
  'given more than once in one object; give each field once (JSON readers differ on which of its values counts)';

/** What a problem says of a request nested too deep. */
export const TOO_DEEP_RULE = `nests objects and arrays more than ${MAX_JSON_DEPTH} deep, and no request nests more than 3; send only the fields the request takes`;

/** What a problem says of a request with too many keys. */
export const TOO_MANY_KEYS_RULE = `holds more than ${MAX_JSON_KEYS} fields in all, and no request holds more than some 150; send only the fields the request takes`;

/** What a problem says of a request with too many objects and arrays. */
export const TOO_MANY_CONTAINERS_RULE = `holds more than ${MAX_JSON_CONTAINERS} objects and arrays in all, and no request holds more than some 70; send only the fields the request takes`;

/** What a problem says of a request `shapeOf` refused. */
export function shapeRule(
  shape: { tooDeep: true } | { tooManyKeys: true } | { tooManyContainers: true },
): string {
  if ('tooDeep' in shape) return TOO_DEEP_RULE;
  return 'tooManyKeys' in shape ? TOO_MANY_KEYS_RULE : TOO_MANY_CONTAINERS_RULE;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COLON = 0x3a;

/** Whitespace runs are skipped with this (a line of spaces cost the character loop 10 times JSON.parse). */
const NOT_SPACE = /[^ \t\n\r]/g;

/**
 * The top-level `id` and `v` of a text refused for its shape, read before the bound was passed (each
 * given once, written without escapes): what a socket reply repeats, so that a client can match it.
 */
export type ShapeHead = { id?: unknown; v?: unknown };

/**
 * Before JSON.parse: whether `text` nests deeper than `maxDepth`, holds more than `maxKeys` keys (strings
 * followed by a colon, every object's together) or more than `maxContainers` objects and arrays, and
 * otherwise how many keys it holds. Any text, JSON or not: it never throws, and stops at the first bound
 * passed.
 */
export function shapeOf(
  text: string,
  maxDepth = MAX_JSON_DEPTH,
  maxKeys = MAX_JSON_KEYS,
  maxContainers = MAX_JSON_CONTAINERS,
):
  | { tooDeep: true; head: ShapeHead }
  | { tooManyKeys: true; head: ShapeHead }
  | { tooManyContainers: true; head: ShapeHead }
  | { keys: number } {
  let depth = 0;
  let keys = 0;
  let containers = 0;
  /** Where the values of the top-level id and v begin: -1 not seen, -2 given twice. */
  let idAt = -1;
  let vAt = -1;
  const length = text.length;
  const strings = new StringEnds(text);
  const notSpace = new RegExp(NOT_SPACE);
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = strings.end(i);
      let next = end + 1;
      while (next < length && isSpace(text.charCodeAt(next))) next++;
      if (text.charCodeAt(next) === COLON) {
        if (++keys > maxKeys) return { tooManyKeys: true, head: headAt(text, idAt, vAt) };
        if (depth === 1 && end - i === 3 && text.startsWith('id', i + 1)) idAt = idAt === -1 ? next + 1 : -2;
        if (depth === 1 && end - i === 2 && text.charCodeAt(i + 1) === 0x76) vAt = vAt === -1 ? next + 1 : -2;
        i = next;
      } else i = end;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > maxDepth) return { tooDeep: true, head: headAt(text, idAt, vAt) };
      if (++containers > maxContainers) return { tooManyContainers: true, head: headAt(text, idAt, vAt) };
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--;
    else if (c === 0x20 && text.charCodeAt(i + 1) === 0x20) {
      notSpace.lastIndex = i;
      i = notSpace.test(text) ? notSpace.lastIndex - 2 : length;
    }
  }
  return { keys };
}

function headAt(text: string, idAt: number, vAt: number): ShapeHead {
  const id = valueAt(text, idAt);
  const v = valueAt(text, vAt);
  return { ...(id === undefined ? {} : { id }), ...(v === undefined ? {} : { v }) };
}

/** A number, or a string, that begins at `at` (after whitespace); undefined for anything else. */
function valueAt(text: string, at: number): unknown {
  if (at < 0) return undefined;
  let start = at;
  while (start < text.length && isSpace(text.charCodeAt(start))) start++;
  let end: number;
  if (text.charCodeAt(start) === QUOTE) end = new StringEnds(text).end(start) + 1;
  else {
    const number = /-?[0-9][0-9.eE+-]*/y;
    number.lastIndex = start;
    if (!number.test(text)) return undefined;
    end = number.lastIndex;
  }
  try {
    return JSON.parse(text.slice(start, end));
  } catch {
    return undefined;
  }
}

/**
 * `text` read as a request is, on the socket and over HTTP: refused before JSON.parse for its shape
 * (shapeOf: the rule, and the head read before the bound), refused by JSON.parse (its error), or its
 * value with the paths of the keys it repeats (empty when none; the scan runs only when JSON.parse
 * dropped some, at most `maxRepeated` of them). `bounded` false: no bound on its shape.
 */
export function readJson(
  text: string,
  maxRepeated = Number.POSITIVE_INFINITY,
  bounded = true,
): { refused: string; head: ShapeHead } | { notJson: Error } | { value: unknown; repeated: string[][] } {
  // Unbounded (the operator's own file, `agentd send`): only the keys counted.
  const shape = bounded
    ? shapeOf(text)
    : shapeOf(text, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  if (!('keys' in shape)) return { refused: shapeRule(shape), head: shape.head };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { notJson: error as Error };
  }
  return { value, repeated: keyCount(value) === shape.keys ? [] : repeatedKeys(text, maxRepeated) };
}

/**
 * Whether a problem's path is outside every repeated key's: a repeated key gets its one problem, not also
 * one of the value JSON.parse happened to keep (`{"type":"hello","type":1e400}` was told both).
 */
export function outsideRepeated(
  repeated: readonly { path: string }[],
): (problem: { path: string }) => boolean {
  return ({ path }) => !repeated.some((r) => path === r.path || path.startsWith(`${r.path}.`));
}

/**
 * After JSON.parse: the keys of every object in `value`. It equals `shapeOf`'s count unless the text
 * repeated a key (JSON.parse kept one of them, and the values it dropped are not counted either).
 */
export function keyCount(value: unknown): number {
  let count = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const item = pending.pop();
    if (typeof item !== 'object' || item === null) continue;
    const values = Array.isArray(item) ? item : Object.values(item);
    if (!Array.isArray(item)) count += values.length;
    for (const v of values) if (typeof v === 'object' && v !== null) pending.push(v);
  }
  return count;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * The paths of the keys `text` repeats (`["agent"]`, `["event", "type"]`, `["inputs", "0", "name"]`), each
 * once, in the order of their second appearance, at most `max` of them; empty when every object's keys
 * are distinct. Keys are compared as JSON.parse reads them: `"\u0061gent"` repeats `"agent"`.
 * `text` must be JSON that JSON.parse accepts (what this does with other text is unspecified).
 */
export function repeatedKeys(text: string, max = Number.POSITIVE_INFINITY): string[][] {
  const found: string[][] = [];
  /** Where the scan is, one entry per open object (its latest key, a string) or array (its index). */
  const at: (string | number)[] = [];
  /** The keys of each open object so far: none yet, the only one, or a set (made at its second key). */
  const keys: (Set<string> | string | undefined)[] = [];
  /** Per open object, the keys already reported (rare: only made when one repeats). */
  const reported: (Set<string> | undefined)[] = [];
  let expectKey = false;
  const length = text.length;
  const strings = new StringEnds(text);
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = strings.end(i);
      if (expectKey) {
        expectKey = false;
        const top = keys.length - 1;
        const raw = text.slice(i + 1, end);
        const key: string = raw.includes('\\') ? JSON.parse(text.slice(i, end + 1)) : raw;
        const seen = keys[top];
        let repeated = false;
        if (seen === undefined) keys[top] = key;
        else if (typeof seen === 'string') {
          if (seen === key) repeated = true;
          else keys[top] = new Set([seen, key]);
        } else if (seen.has(key)) repeated = true;
        else seen.add(key);
        at[at.length - 1] = key;
        if (repeated) {
          const told = reported[top] ?? new Set<string>();
          reported[top] = told;
          if (!told.has(key)) {
            told.add(key);
            found.push(at.map(String));
            if (found.length >= max) return found;
          }
        }
      }
      i = end;
    } else if (c === OPEN_OBJECT) {
      at.push('');
      keys.push(undefined);
      reported.push(undefined);
      expectKey = true;
    } else if (c === OPEN_ARRAY) {
      at.push(0);
    } else if (c === CLOSE_OBJECT) {
      at.pop();
      keys.pop();
      reported.pop();
      expectKey = false;
    } else if (c === CLOSE_ARRAY) {
      at.pop();
    } else if (c === COMMA) {
      const top = at.length - 1;
      const where = at[top];
      if (typeof where === 'number') at[top] = where + 1;
      else expectKey = true;
    }
  }
  return found;
}

/**
 * Where the strings of one text end. Linear over the text however its strings are made: the next quote
 * and the next backslash are searched for with indexOf and remembered until passed (one search to the end
 * of the text per string would make a line of many short strings quadratic), and escapes close together
 * are read character by character, 64 at a time (an indexOf per escape cost 3 times JSON.parse on a string of `\"`).
 */
class StringEnds {
  private backslash = -1;
  constructor(private readonly text: string) {}

  /** The index of the quote that ends the string whose opening quote is at `start` (the text's length if none does). */
  end(start: number): number {
    const { text } = this;
    const length = text.length;
    let quote = -1;
    let i = start + 1;
    // A short string (a key, most values) ends within a few characters: read one by one, no search.
    for (const stop = Math.min(i + 16, length); i < stop; ) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) return i;
      i += c === BACKSLASH ? 2 : 1;
    }
    for (;;) {
      if (quote < i) {
        quote = text.indexOf('"', i);
        if (quote === -1) return length;
      }
      if (this.backslash < i) {
        this.backslash = text.indexOf('\\', i);
        if (this.backslash === -1) this.backslash = length;
      }
      if (quote < this.backslash) return quote;
      // An escape before the quote: past it, up to 64 characters are read one by one before searching again.
      i = this.backslash + 2;
      const stop = Math.min(i + 64, length);
      while (i < stop) {
        const c = text.charCodeAt(i);
        if (c === QUOTE) return i;
        i += c === BACKSLASH ? 2 : 1;
      }
    }
  }
}
