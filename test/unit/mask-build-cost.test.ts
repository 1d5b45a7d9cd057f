/**
 * What a session with long credentials costs the daemon's event loop to set up: the NeedleSet's
 * dedupe and its table of pairs, percent encoding of a value's forms, and how often the output's
 * search of blocks is built. Each faster algorithm is checked to give what the one before it gave.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NeedleSet } from '../../src/adapters/output-archive.js';
import { createMasker, createMaskerYielding, MASK } from '../../src/runner/mask.js';
import { formsOf } from '../../src/runner/mask-forms.js';
import type { OutputLine } from '../../src/runner/session-log.js';
import { SessionOutput } from '../../src/runner/session-output.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

const built = vi.hoisted(() => ({ needleSets: 0 }));

vi.mock('../../src/adapters/output-archive.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/adapters/output-archive.js')>();
  class CountedNeedleSet extends original.NeedleSet {
    constructor(needles: readonly Buffer[]) {
      super(needles);
      built.needleSets++;
    }
  }
  return { ...original, NeedleSet: CountedNeedleSet };
});

afterEach(() => cleanupAll());

/** NeedleSet's constructor as it was (needles keyed by their hex, the pairs made at once). */
class ReferenceNeedles {
  readonly starts = new Uint8Array(65536);
  readonly pairs = new Uint8Array(65536);
  readonly kept: Buffer[];
  readonly longest: number;
  readonly shortest: number;

  constructor(needles: readonly Buffer[]) {
    const unique = [
      ...new Map(needles.filter((n) => n.length >= 2).map((n) => [n.toString('hex'), n])).values(),
    ];
    unique.sort((a, b) => a.length - b.length);
    const kept =
      unique.length > 512
        ? unique
        : unique.reduce<Buffer[]>((kept, needle) => {
            if (!kept.some((shorter) => needle.includes(shorter))) kept.push(needle);
            return kept;
          }, []);
    let longest = 0;
    for (const needle of kept) {
      this.starts[((needle[0] as number) << 8) | (needle[1] as number)] = 1;
      for (let at = 1; at < needle.length; at++) {
        this.pairs[((needle[at - 1] as number) << 8) | (needle[at] as number)] = 1;
      }
      longest = Math.max(longest, needle.length);
    }
    this.longest = longest;
    this.shortest = kept[0]?.length ?? 0;
    this.kept = kept;
  }

  foundIn(bytes: Buffer): boolean {
    return this.kept.some((needle) => bytes.includes(needle));
  }
}

/** A seeded stream of small numbers: the same needles on every run. */
function numbers(seed: number): (below: number) => number {
  let state = seed;
  return (below) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % below;
  };
}

/** Needles over a small alphabet: duplicates, one byte long, and needles inside others are common. */
function needlesOf(count: number, seed: number): Buffer[] {
  const next = numbers(seed);
  const needles: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    if (needles.length > 0 && next(4) === 0) {
      needles.push(Buffer.from(needles[next(needles.length)] as Buffer));
      continue;
    }
    const length = 1 + next(next(5) === 0 ? 300 : 12);
    needles.push(Buffer.from(Array.from({ length }, () => 0x61 + next(3))));
  }
  return needles;
}

describe('NeedleSet', () => {
  it('keeps, finds and pairs exactly what its hex-keyed construction did', () => {
    for (const [count, seed] of [
      [0, 1],
      [1, 2],
      [40, 3],
      [300, 4],
      [511, 5],
      [2000, 6],
    ] as const) {
      const needles = needlesOf(count, seed);
      const set = new NeedleSet(needles);
      const reference = new ReferenceNeedles(needles);
      expect([set.longest, set.shortest]).toEqual([reference.longest, reference.shortest]);
      expect(Buffer.from(set.starts).equals(Buffer.from(reference.starts))).toBe(true);
      expect(Buffer.from(set.pairs).equals(Buffer.from(reference.pairs))).toBe(true);
      const next = numbers(seed + 100);
      for (let i = 0; i < 200; i++) {
        const haystack = Buffer.from(Array.from({ length: next(40) }, () => 0x61 + next(4)));
        expect(set.foundIn(haystack)).toBe(reference.foundIn(haystack));
      }
      const only = set.only((needle) => needle[0] === 0x61);
      const onlyReference = new ReferenceNeedles(reference.kept.filter((needle) => needle[0] === 0x61));
      expect([only.longest, only.shortest]).toEqual([onlyReference.longest, onlyReference.shortest]);
      expect(Buffer.from(only.pairs).equals(Buffer.from(onlyReference.pairs))).toBe(true);
    }
  });

  it("keeps a long value's forms as its hex-keyed construction did", () => {
    const value = randomBytes(6000).toString('base64');
    const forms = createMasker([value, value.slice(0, 3000)]).forms.map((form) => Buffer.from(form));
    // Each form twice: every second one is a duplicate.
    const needles = [...forms, ...forms];
    const set = new NeedleSet(needles);
    const reference = new ReferenceNeedles(needles);
    expect([set.longest, set.shortest]).toEqual([reference.longest, reference.shortest]);
    expect(Buffer.from(set.pairs).equals(Buffer.from(reference.pairs))).toBe(true);
    for (const text of [value, value.slice(100, 200), `x${value.slice(0, 76)}y`, 'nothing here'])
      expect(set.foundIn(Buffer.from(text))).toBe(reference.foundIn(Buffer.from(text)));
  });
});

describe('percent encoding of a value', () => {
  /** encodeURIComponent's and RFC 3986's encodings, as the forms had them, of every byte. */
  function reference(bytes: Buffer, safe: RegExp): string {
    let out = '';
    for (const byte of bytes) {
      const char = String.fromCharCode(byte);
      out += safe.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
    return out;
  }

  it('gives the forms it gave, for every byte', () => {
    const every = Buffer.from(Array.from({ length: 256 }, (_, byte) => byte));
    const forms = formsOf(every);
    for (const safe of [/[A-Za-z0-9\-_.!~*'()]/, /[A-Za-z0-9\-_.~]/]) {
      const encoded = reference(every, safe);
      expect(forms).toContain(encoded);
      expect(forms).toContain(encoded.replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
      expect(forms).toContain(encoded.replaceAll('%20', '+'));
    }
  });
});

describe("SessionOutput's search of blocks", () => {
  it('is built once for a masker, not again when the setup step names its marker', async () => {
    // A long value: thousands of forms (its wrapped base64), searched in one pass (a NeedleSet).
    const value = randomBytes(20_000).toString('base64');
    const lines: OutputLine[] = [];
    const mask = createMasker([value]);
    const before = built.needleSets;
    const out = new SessionOutput(
      {
        logFile: join(makeTempDir('agentd-unit-maskcost-'), 'log'),
        logMaxBytes: 1_000_000,
        onLine: (l) => lines.push(l),
      },
      mask,
    );
    out.setMarker('AGENTD-MARKER-0123');
    out.setMarker('AGENTD-MARKER-4567');
    expect(built.needleSets - before).toBe(1);
    // A block with a form in it is handed back to be masked line by line; one without is taken.
    const piece = mask.forms.find((form) => form.length === 76) as string;
    expect(out.writeBlock(Buffer.from(`token ${piece} end\n`), 1, 'stdout')).toBe(false);
    expect(out.writeBlock(Buffer.from('nothing to hide\n'), 1, 'stdout')).toBe(true);
    out.write(`token ${value} end`, false);
    await out.close();
    expect(lines.map((line) => line.text)).toEqual(['nothing to hide', `token ${MASK} end`]);
  });
});

describe('createMaskerYielding', () => {
  const values = [
    randomBytes(3000).toString('base64'),
    'user = alice\npassword = correct-horse-battery-staple\n',
    Buffer.from([0xff, 0x00, 0x41, 0x42, 0x43, 0x44, 0x0a, 0x25, 0x20, 0x27]),
    'tok"en$with`quotes\\and spaces',
  ];

  it('builds the masker createMasker builds', async () => {
    for (const options of [{}, { except: new Set(['user = alice']) }]) {
      const at = createMasker(values, options);
      const stepped = await createMaskerYielding(values, options);
      expect(stepped.forms).toEqual(at.forms);
      expect(stepped.identifying).toEqual(at.identifying);
      expect(stepped.reach).toBe(at.reach);
      expect(Buffer.from(stepped.readings.triggers).equals(Buffer.from(at.readings.triggers))).toBe(true);
      const value = values[0] as string;
      for (const line of [
        `a ${value} b`,
        `x ${Buffer.from(value).toString('hex')} y`,
        encodeURIComponent(`tok"en$with\`quotes\\and spaces`),
        `\x1b[31m${value.slice(0, 5)}\x1b[0m${value.slice(5)}`,
        'nothing',
      ]) {
        expect(stepped(line)).toBe(at(line));
        expect(stepped.needsLines(Buffer.from(line))).toBe(at.needsLines(Buffer.from(line)));
      }
    }
  });

  it('lets the event loop run between long values, and not for short ones', async () => {
    let ticks = 0;
    let done = false;
    const tick = () => {
      ticks++;
      if (!done) setImmediate(tick);
    };
    setImmediate(tick);
    await createMaskerYielding(Array.from({ length: 10 }, () => randomBytes(40_000).toString('base64')));
    done = true;
    // At least once for each value (and the stages after them).
    expect(ticks).toBeGreaterThanOrEqual(10);
    // Short ones are built at once: no turn of the event loop between asking and having them.
    ticks = 0;
    done = false;
    setImmediate(tick);
    await createMaskerYielding(values);
    done = true;
    expect(ticks).toBe(0);
  });
});

describe("a long value's escaped forms", () => {
  it('print each ASCII character once per printer, not once per place it is in (a 128 KB PEM key)', () => {
    const base64 = randomBytes(96_000).toString('base64');
    const key = `-----BEGIN PRIVATE KEY-----\n${(base64.match(/.{1,64}/g) ?? []).join('\n')}\n-----END PRIVATE KEY-----\n`;
    const printed = vi.spyOn(String, 'fromCodePoint');
    try {
      formsOf(key);
      // The printers of its escaped forms made each of its 131,000 characters on their own (4 million
      // characters made one by one, half a second of the daemon's thread); coreutils' two quotings and
      // the other forms still make about 4 a character.
      expect(printed.mock.calls.length).toBeLessThan(5 * key.length);
    } finally {
      printed.mockRestore();
    }
  });
});
