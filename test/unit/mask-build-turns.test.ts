/**
 * A long credential's forms are made with the event loop free inside the value too (each kind of form
 * of it, its parts), and the output archive's search of them is read and encoded in steps: one value
 * of 128 KB of random bytes held the daemon's one thread for 0.5-1 s at once, and the search of ten
 * such values for 2 s (250 million characters of forms made into buffers), while no other session's
 * output was read and the socket did not answer. Counted in turns of the event loop, not in time.
 */
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { NeedleSet } from '../../src/adapters/output-archive.js';
import { formsOfSession, outputSearch } from '../../src/runner/actors.js';
import { createMasker, createMaskerYielding, maskFormsYielding, searchOf } from '../../src/runner/mask.js';
import { formsInSteps, formsOf } from '../../src/runner/mask-forms.js';
import { SecretValue } from '../../src/secret-value.js';

/** How many times the event loop ran (setImmediate) while `work` was under way, and its result. */
async function turnsOf<T>(work: () => Promise<T>): Promise<{ turns: number; result: T }> {
  let turns = 0;
  let done = false;
  const tick = () => {
    turns++;
    if (!done) setImmediate(tick);
  };
  setImmediate(tick);
  const result = await work();
  done = true;
  return { turns, result };
}

/** Bytes that are random but the same on every run (a seeded generator). */
function seeded(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

describe("a long value's forms", () => {
  it('are made in steps inside the value: a step for each kind of form, and its parts in steps', async () => {
    // 40 KB of random bytes: every kind of form (escaped, quoted, both decodings, base64, hex, percent) and its parts.
    const value = seeded(40_000, 7);
    const { turns, result } = await turnsOf(() => maskFormsYielding([value]));
    // The build made all of a value's forms in one turn (5 turns in all: after the value, and one for
    // each stage after it); now each kind of form of it is a step (20 and more), and its parts' forms
    // take steps of STEP_BYTES (8 KiB) too.
    expect(turns).toBeGreaterThanOrEqual(20);
    // The same forms as made at once.
    const at = createMasker([value]);
    const stepped = await createMaskerYielding([value]);
    expect(stepped.forms).toEqual(at.forms);
    expect(result.sorted).toEqual(at.forms);
  });

  it('are what formsOf makes, in steps or at once', () => {
    for (const value of [
      seeded(40_000, 3),
      Buffer.from(`-----BEGIN KEY-----\n${randomBytes(3000).toString('base64')}\n-----END KEY-----\n`),
      'tok"en$with`quotes\\and spaces\r\n',
      Buffer.from([0xff, 0x00, 0x41, 0x42, 0x43, 0x44, 0x0a, 0x25, 0x20, 0x27]),
    ]) {
      const steps = formsInSteps(value);
      let step = steps.next();
      let count = 0;
      while (!step.done) {
        count++;
        step = steps.next();
      }
      expect(step.value).toEqual(formsOf(value));
      expect(count).toBeGreaterThan(0);
    }
  });
});

describe("the output archive's search of long values", () => {
  it('reads and encodes their forms in steps, and finds what searchOf finds', async () => {
    const values = [new SecretValue(seeded(128 * 1024, 11)), new SecretValue(seeded(128 * 1024, 12))];
    const forms = await formsOfSession(values);
    // The forms are made: what is left is reading them (searchOf) and encoding each identifying one.
    const { turns, result } = await turnsOf(() => outputSearch(values));
    // searchOf and the encoding of 50 million characters of forms were one turn (no step at all).
    expect(turns).toBeGreaterThanOrEqual(5);
    const lines = new Set<string>();
    for (const value of values) {
      for (const line of value
        .bytes()
        .toString('utf8')
        .split(/\r\n|\r|\n/))
        if (!/[A-Za-z0-9]{4}/.test(line)) lines.add(line);
    }
    const at = searchOf(forms, lines);
    expect(result.masking.identifying).toEqual(at.identifying);
    expect(result.masking.reach).toBe(at.reach);
    expect(Buffer.from(result.masking.readings.triggers).equals(Buffer.from(at.readings.triggers))).toBe(
      true,
    );
  });
});

describe('NeedleSet.inSteps', () => {
  it('reads many needles in steps, and keeps, pairs and finds what the constructor does', async () => {
    // 48 MB of needles (ten values of 128 KB of random bytes have 250 MB): duplicates and short ones too.
    const long = Array.from({ length: 1500 }, (_, i) => seeded(32 * 1024, 100 + (i % 1000)));
    const needles = [...long, Buffer.from('a'), Buffer.from('ab'), Buffer.from('ab'), seeded(10, 5)];
    const { turns, result } = await turnsOf(() => NeedleSet.inSteps(needles));
    // Hashing them to find the equal ones was one turn; now one each 16 MB.
    expect(turns).toBeGreaterThanOrEqual(2);
    const at = new NeedleSet(needles);
    expect([result.longest, result.shortest]).toEqual([at.longest, at.shortest]);
    expect(Buffer.from(result.starts).equals(Buffer.from(at.starts))).toBe(true);
    expect(Buffer.from(result.pairs).equals(Buffer.from(at.pairs))).toBe(true);
    for (const haystack of [
      Buffer.concat([Buffer.from('xx'), seeded(32 * 1024, 100), Buffer.from('yy')]),
      seeded(32 * 1024, 2000).subarray(1, 30_000),
      Buffer.from('zzab'),
      Buffer.from('nothing'),
    ])
      expect(result.foundIn(haystack)).toBe(at.foundIn(haystack));
  });
});

describe("a long value's escaped forms", () => {
  it('are kept as their characters, not as a tree of a string per character printed', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const value = seeded(128 * 1024, 21);
    gc();
    const before = process.memoryUsage().heapUsed;
    const forms = formsOf(value);
    gc();
    const kept = process.memoryUsage().heapUsed - before;
    // Two bytes a character at most (strings with U+FFFD are two-byte): the forms themselves. Each of
    // the nine printers' forms was a tree of 128,000 strings and more (about 90 MB in all, against 25).
    const characters = forms.reduce((sum, form) => sum + form.length, 0);
    expect(kept).toBeLessThan(1.5 * 2 * characters);
  });
});
