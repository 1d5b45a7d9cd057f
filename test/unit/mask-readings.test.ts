/**
 * The readings of a line's bytes that the output archive's search looks for values in (LineReadings,
 * src/runner/mask-views.ts), against the views masking reads a line of output in.
 */
import { describe, expect, it } from 'vitest';
import {
  hasPercentEscape,
  LineReadings,
  percentDecoded,
  READ_BACKSLASHES,
  READ_ESCAPES,
  READ_PERCENT,
  READ_PLUS,
  withoutBackslashes,
  withoutEscapes,
} from '../../src/runner/mask-views.js';

/** Any two bytes in a row (a needle has them). */
const ANY = new Uint8Array(65536).fill(1);

/**
 * Each reading `readings` searches of the line (as Scan asks: the triggers of its bytes), as text; with
 * needles that have `pairs` and reach `margin` bytes.
 */
function readingsOf(readings: LineReadings, line: string, margin = 1e9, pairs = ANY): Map<number, string[]> {
  // Bytes around the line: a reading is of bytes[start, end) only.
  const bytes = Buffer.from(`\x1b%\\${line}\\%\x1b`);
  const start = 3;
  const end = bytes.length - 3;
  let kinds = 0;
  for (let at = start; at < end; at++) {
    kinds |= readings.triggers[
      ((bytes[at] as number) << 8) | (at + 1 < end ? (bytes[at + 1] as number) : 0)
    ] as number;
  }
  const found = new Map<number, string[]>();
  for (const kind of [READ_ESCAPES, READ_PERCENT | READ_PLUS, READ_BACKSLASHES]) {
    if ((kinds & kind) === 0) continue;
    readings.some(bytes, start, end, kinds & kind, {
      pairs,
      margin,
      found: (reading, from, to) => {
        found.set(kind, [...(found.get(kind) ?? []), reading.toString('utf8', from, to)]);
        return false;
      },
    });
  }
  return found;
}

describe('LineReadings', () => {
  it('reads a line’s bytes as masking reads its text: without escape sequences, with percent escapes decoded (UTF-8 or not, + as a space), without printf %q’s backslashes', () => {
    const signs = ['t\\!V', 'a\\ b', 'x\\(y'];
    const readings = new LineReadings({ plus: true, signs });
    const atoms = [
      ...[
        '\x1b',
        '[',
        ']',
        '0',
        ';',
        'm',
        'K',
        '\x07',
        '\\',
        '%',
        'A',
        'f',
        '9',
        '+',
        '!',
        ' ',
        '(',
        '/',
        '?',
        'é',
      ],
      ...[
        '%C3',
        '%A9',
        '%E2%82%AC',
        '%F0%9F%98%80',
        '%ED%A0%80',
        '%C0%AF',
        '%FF',
        '%2B',
        '%20',
        '%25',
        '%41',
      ],
      ...[
        '\x1b[01;31m',
        '\x1b[K',
        '\x1b[?25l',
        '\x1b]8;;http://x\x07',
        '\x1b]0;t\x1b\\',
        '\x1b]0;x',
        '\x1bM',
        '\x1b(B',
        '\x1b#8',
        '\x1b%G',
      ],
      ...['\\!', '\\\\', '\\ ', '\\(', '\\"'],
    ];
    let seed = 1;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let n = 0; n < 20_000; n++) {
      // Between bytes no change takes in: every change has one on either side (a needle over it has
      // two in a row).
      const line = `a${Array.from({ length: 1 + next(12) }, () => atoms[next(atoms.length)]).join('')}\t`;
      const want = new Map<number, string[]>();
      const escapes = withoutEscapes(line);
      if (escapes) want.set(READ_ESCAPES, [escapes.text]);
      const percent = hasPercentEscape(line) ? percentDecoded(line, false) : undefined;
      if (percent) {
        const plus = line.includes('+') ? percentDecoded(line, true) : undefined;
        want.set(READ_PERCENT | READ_PLUS, [percent.text, ...(plus ? [plus.text] : [])]);
      }
      // Where a backslash goes before a character of a sign (as the pattern pairs them: `\\(` is `\\`, `(`).
      const backslashed = [...line.matchAll(/\\([ -/:-@[-`{-~])/g)].some((match) =>
        '! ('.includes(match[1] ?? ''),
      );
      if (backslashed) want.set(READ_BACKSLASHES, [(withoutBackslashes(line) as { text: string }).text]);
      expect(readingsOf(readings, line), JSON.stringify(line)).toEqual(want);
    }
  });

  it('reads a line with escape sequences and a sign’s backslash also without both, as masking does', () => {
    const readings = new LineReadings({ plus: false, signs: ['e\\!M'] });
    const line = 'X=Secr3tValue\x1b[35m\\!\x1b[0mMoreSecret y\\!z';
    const found: string[] = [];
    const bytes = Buffer.from(line);
    readings.some(bytes, 0, bytes.length, READ_ESCAPES | READ_BACKSLASHES, {
      pairs: ANY,
      margin: 1e9,
      found: (reading, from, to) => {
        found.push(reading.toString('utf8', from, to));
        return false;
      },
    });
    const escapes = withoutEscapes(line) as { text: string };
    expect(found).toContain((withoutBackslashes(escapes.text) as { text: string }).text);
    expect(found).toContain('X=Secr3tValue!MoreSecret y!z');
  });

  it('passes a reading on from the margin before its first change to the margin after its last', () => {
    const readings = new LineReadings({ plus: false, signs: [] });
    expect(readingsOf(readings, 'aaaa%41bbbb%42cccc', 2).get(READ_PERCENT | READ_PLUS)).toEqual([
      'aaAbbbbBcc',
    ]);
    expect(readingsOf(readings, 'aaaa\x1b[1mbbbb', 3).get(READ_ESCAPES)).toEqual(['aaabbb']);
    // No sign given: backslashes are not read away; `%4` and an ESC before no sequence change nothing.
    expect(readingsOf(readings, 'a\\!b %4 \x1b\x1b[')).toEqual(new Map());
  });

  it('searches a reading only where a needle has two bytes in a row about a change (what is found elsewhere is in the line)', () => {
    const readings = new LineReadings({ plus: true, signs: ['t\\!V'] });
    const needlesWith = (...texts: string[]) => {
      const pairs = new Uint8Array(65536);
      for (const text of texts)
        for (let at = 1; at < text.length; at++)
          pairs[(text.charCodeAt(at - 1) << 8) | text.charCodeAt(at)] = 1;
      return pairs;
    };
    const line = 'ab\x1b[1mcd x%2Fy p+q%41 t\\!V';
    const search = (...texts: string[]) => [...readingsOf(readings, line, 1e9, needlesWith(...texts)).keys()];
    // The pairs the changes make: `bc` (the escape removed), `x/` `/y` `qA` `A ` (decoded), `p ` ` q`
    // (`+` as a space), `t!` (the backslash removed). Needles with none: no reading is searched.
    expect(search('abzz', 'zzcd', 'xy', '!V', 'Fy')).toEqual([]);
    expect(search('zbcz')).toEqual([READ_ESCAPES]);
    expect(search('zx/z')).toEqual([READ_PERCENT | READ_PLUS]);
    expect(search('zqAz')).toEqual([READ_PERCENT | READ_PLUS]);
    expect(search('zp z')).toEqual([READ_PERCENT | READ_PLUS]);
    expect(search('zt!z')).toEqual([READ_BACKSLASHES]);
  });
});
