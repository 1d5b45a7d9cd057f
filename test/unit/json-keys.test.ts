/**
 * The scanner behind the refusal of a request that repeats a key, nests too deep or holds too many keys
 * (src/protocol/json-keys.ts), on the socket and the HTTP API alike: paths, escapes, strings that look
 * like structure, hostile shapes without a stack overflow, and a seeded comparison with a plain parser.
 */
import { describe, expect, it } from 'vitest';
import {
  keyCount,
  MAX_JSON_CONTAINERS,
  MAX_JSON_DEPTH,
  MAX_JSON_KEYS,
  repeatedKeys,
  shapeOf,
  shapeRule,
  TOO_MANY_CONTAINERS_RULE,
} from '../../src/protocol/json-keys.js';

/** What the daemon concludes of a JSON text: the keys it repeats, by the counts and then the scanner. */
function repeats(text: string): string[][] {
  const shape = shapeOf(text, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  if (!('keys' in shape)) throw new Error('unbounded');
  return keyCount(JSON.parse(text)) === shape.keys ? [] : repeatedKeys(text);
}

describe('repeated keys', () => {
  it('names the path of a key given twice, at the top, nested in an object and in an array', () => {
    expect(repeats('{"type":"trigger","agent":"a","agent":"b"}')).toEqual([['agent']]);
    expect(repeats('{"v":2,"event":{"type":"cancel","type":"shutdown"}}')).toEqual([['event', 'type']]);
    expect(repeats('{"env":{"FOO":"1","BAR":"2","FOO":"3"}}')).toEqual([['env', 'FOO']]);
    expect(repeats('{"inputs":[{"name":"a","data":""},{"name":"b","data":"","name":"c"}]}')).toEqual([
      ['inputs', '1', 'name'],
    ]);
    expect(repeats('[{"a":1},{"a":1}]')).toEqual([]);
    expect(repeats('{"a":{"a":{"a":1}},"b":[{"a":1,"b":2}]}')).toEqual([]);
  });

  it('compares keys as JSON.parse reads them: escapes, whitespace, a key thrice told once', () => {
    expect(repeats('{"\\u0061gent":1,"agent":2}')).toEqual([['agent']]);
    expect(repeats('{"a\\"b":1,"a\\u0022b":2}')).toEqual([['a"b']]);
    expect(repeats('{ "a" : 1 ,\n\t"a"\r\n:\n2 }')).toEqual([['a']]);
    expect(repeats('{"a":1,"a":2,"a":3,"b":{"a":1},"b":0}')).toEqual([['a'], ['b']]);
    expect(repeats('{"__proto__":1,"__proto__":2}')).toEqual([['__proto__']]);
    expect(repeats('{"":1,"":2}')).toEqual([['']]);
    // Keys that differ only in case or in an escape that spells another character are distinct.
    expect(repeats('{"Agent":1,"agent":2,"a\\\\":3,"a\\/":4}')).toEqual([]);
  });

  it('is not misled by strings that hold quotes, backslashes, brackets, colons and commas', () => {
    const text = JSON.stringify({
      a: '"agent":1,"agent":2',
      b: 'x\\',
      'c\\': '{[}]',
      d: '\\"',
      e: [':', ',', '{"a":1,"a":2}'],
      f: {},
      g: [],
      h: [{}, [[]], '"'],
    });
    expect(repeats(text)).toEqual([]);
    expect(repeats(`${text.slice(0, -1)},"d":0}`)).toEqual([['d']]);
  });

  it('stops at max paths, and paths of arrays count from 0', () => {
    const text = `{${Array.from({ length: 10 }, (_, i) => `"k${i}":0,"k${i}":1`).join(',')}}`;
    expect(repeatedKeys(text, 3)).toEqual([['k0'], ['k1'], ['k2']]);
    expect(repeatedKeys('[[0,{"x":1}],[1,2,{"y":{"z":0,"z":0}}]]')).toEqual([['1', '2', 'y', 'z']]);
  });

  it('agrees with a plain recursive parser on seeded random JSON with and without repeated keys', () => {
    let seed = 20261207;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const KEYS = ['a', 'b', 'agent', 'a"', 'a\\', '\u00e9', '\ud83d\ude00', '{', ':', ''];
    const value = (depth: number): string => {
      const kind = depth > 3 ? 0 : Math.floor(random() * 4);
      if (kind === 0) return pick(['1', '-2.5e3', 'true', 'null', '"x"', '"\\"}"', '"\\\\"', '" , "']);
      if (kind === 1)
        return `[${Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1)).join(pick([',', ' , ']))}]`;
      const keys = Array.from({ length: Math.floor(random() * 5) }, () => pick(KEYS));
      // Written plain, or with \u escapes, so that equal keys are not always equal text.
      const written = (key: string) =>
        random() < 0.3
          ? `"${[...key].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`
          : JSON.stringify(key);
      return `{${keys.map((k) => `${written(k)}${pick([':', ' : '])}${value(depth + 1)}`).join(',')}}`;
    };
    let withRepeats = 0;
    for (let round = 0; round < 2000; round++) {
      const text = value(0);
      const expected = referenceRepeats(text);
      expect(repeats(text), text).toEqual(expected);
      if (expected.length > 0) withRepeats++;
    }
    expect(withRepeats).toBeGreaterThan(200);
  });
});

describe('bounds before JSON.parse', () => {
  it('counts the keys of a text, and of its parse, the same when none repeats', () => {
    const text = JSON.stringify({ v: 2, type: 'trigger', inputs: [{ name: 'a', data: '' }], x: { y: [1] } });
    expect(shapeOf(text)).toEqual({ keys: 7 });
    expect(keyCount(JSON.parse(text))).toBe(7);
    // The value a repeated key lost is not counted either: 1 key parsed, 3 in the text.
    expect(keyCount(JSON.parse('{"a":{"b":1},"a":1}'))).toBe(1);
  });

  it('refuses a text nested deeper than the bound, or with more keys, at the first one past it', () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(shapeOf(deep(MAX_JSON_DEPTH))).toEqual({ keys: 0 });
    expect(shapeOf(deep(MAX_JSON_DEPTH + 1))).toEqual({ tooDeep: true, head: {} });
    expect(shapeOf(`${'{"a":'.repeat(MAX_JSON_DEPTH + 1)}1${'}'.repeat(MAX_JSON_DEPTH + 1)}`)).toEqual({
      tooDeep: true,
      head: {},
    });
    // The top-level id and v read before the bound, for the reply to repeat; not one given twice, nor a
    // nested one.
    const nest = `${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`;
    expect(shapeOf(`{ "id" : "r\\"1", "v":2, "x":{"id":"n","v":1,"y":${nest}}}`)).toEqual({
      tooDeep: true,
      head: { id: 'r"1', v: 2 },
    });
    expect(shapeOf(`{"id":"a","id":"b","v":[1],"x":${nest}}`)).toEqual({ tooDeep: true, head: {} });
    expect(shapeOf(`{"v":-1.5e3,"id":7,"x":${nest}}`)).toEqual({ tooDeep: true, head: { v: -1500, id: 7 } });
    expect(shapeOf(`{"v":tru,"id":"x${nest}`)).toEqual({ keys: 2 });
    // Brackets in strings do not count.
    expect(shapeOf(JSON.stringify({ a: '['.repeat(1000) }))).toEqual({ keys: 1 });
    const keys = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":0`).join(',')}}`;
    expect(shapeOf(keys(MAX_JSON_KEYS))).toEqual({ keys: MAX_JSON_KEYS });
    expect(shapeOf(keys(MAX_JSON_KEYS + 1))).toEqual({ tooManyKeys: true, head: {} });
    // A string value followed by a colon inside another string is no key.
    expect(shapeOf('["a:", "b" ,"c"]')).toEqual({ keys: 0 });
  });

  it('refuses a text of more objects and arrays than the bound, however flat and keyless', () => {
    // A 16 MiB line of `[{},{},...]` (5.6 million objects, depth 2, no key) held the event loop for 12 s
    // and the daemon's RSS at 1.1 GB.
    const flat = (n: number, item: string) => `{"id":"r1","x":[${Array(n).fill(item).join(',')}]}`;
    expect(shapeOf(flat(MAX_JSON_CONTAINERS - 2, '{}'))).toEqual({ keys: 2 });
    expect(shapeOf(flat(MAX_JSON_CONTAINERS - 1, '{}'))).toEqual({
      tooManyContainers: true,
      head: { id: 'r1' },
    });
    expect(shapeOf(flat(MAX_JSON_CONTAINERS - 1, '[]'))).toEqual({
      tooManyContainers: true,
      head: { id: 'r1' },
    });
    expect(shapeRule({ tooManyContainers: true })).toBe(TOO_MANY_CONTAINERS_RULE);
    // Scalars and brackets in strings do not count.
    expect(shapeOf(flat(100_000, '0'))).toEqual({ keys: 2 });
    expect(shapeOf(flat(100_000, '"{}"'))).toEqual({ keys: 2 });
  });

  it('takes any text without throwing: unterminated strings, stray escapes, unbalanced brackets', () => {
    for (const text of [
      '"',
      '"abc',
      '"\\',
      '{"a',
      '{"a":"\\"',
      ']]]',
      '}{',
      '',
      '\\"',
      `"${'\\'.repeat(101)}`,
    ]) {
      expect(() => shapeOf(text), text).not.toThrow();
    }
  });

  it('scans a million levels of nesting without a stack overflow', () => {
    const n = 1_000_000;
    const arrays = `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(shapeOf(arrays)).toEqual({ tooDeep: true, head: {} });
    expect(shapeOf(arrays, Number.POSITIVE_INFINITY, MAX_JSON_KEYS, Number.POSITIVE_INFINITY)).toEqual({
      keys: 0,
    });
    const objects = `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    expect(repeatedKeys(objects)).toEqual([]);
    expect(repeatedKeys(`${'{"a":'.repeat(n)}{"b":1,"b":2}${'}'.repeat(n)}`)[0]).toHaveLength(n + 1);
  });
});

/** The keys a JSON text repeats, by a plain recursive-descent parser: the reference for the scanner. */
function referenceRepeats(text: string): string[][] {
  const found: string[][] = [];
  let i = 0;
  const space = () => {
    while (/\s/.test(text[i] ?? '')) i++;
  };
  const string = (): string => {
    const start = i;
    i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string[]): void => {
    space();
    const c = text[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      const told = new Set<string>();
      space();
      while (text[i] !== '}') {
        space();
        const key = string();
        if (seen.has(key) && !told.has(key)) {
          told.add(key);
          found.push([...path, key]);
        }
        seen.add(key);
        space();
        i++; // the colon
        value([...path, key]);
        space();
        if (text[i] === ',') i++;
      }
      i++;
    } else if (c === '[') {
      i++;
      let index = 0;
      space();
      while (text[i] !== ']') {
        value([...path, String(index++)]);
        space();
        if (text[i] === ',') i++;
      }
      i++;
    } else if (c === '"') string();
    else while (i < text.length && !/[,\]}\s]/.test(text[i] as string)) i++;
  };
  value([]);
  return found;
}
