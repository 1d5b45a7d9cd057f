/**
 * A usage error repeats the value it refuses, cut when long: an argument can be 128 KiB (a file pasted
 * with "$(cat f)"), and `agentd show "$(cat f)"` printed all of it back, twice with --json; and naming
 * the option values in the message (nameValues) tried its regex at every position of that long line:
 * measured with the built CLI, 9 s of CPU for a 100 KB session id, 17 s with --json.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { quoted } from '../../src/cli/validators.js';
import { runEntryInProcess as run } from '../helpers/cli-in-process.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const HUGE = 'a'.repeat(100_000);

describe('a usage error for a long value', () => {
  it.each([
    ['show', HUGE],
    ['wait', '0123456789abcdef', '--timeout', HUGE],
    ['history', '--since', HUGE],
    ['history', '--limit', HUGE],
    ['trigger', 'demo', '--key', HUGE],
    ['logs', '0123456789abcdef', '--after', HUGE],
  ])('%s: one short message with the length, exit 2', async (...argv) => {
    for (const args of [argv, [...argv, '--json']]) {
      const result = await run(args);
      expect(result.code).toBe(EXIT.usage);
      expect(result.stderr).toContain(`${'a'.repeat(64)}…" (100000 characters)`);
      expect(result.stderr.length + result.stdout.length).toBeLessThan(2000);
    }
  });

  it("a long unknown option (in clipanion's own message) is answered at once", async () => {
    const started = performance.now();
    const result = await run(['agents', `--${HUGE}`, '--json']);
    expect(result.code).toBe(EXIT.usage);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('a short value is repeated whole', () => {
    expect(quoted('1e309s')).toBe('"1e309s"');
    expect(quoted('x'.repeat(64))).toBe(`"${'x'.repeat(64)}"`);
    expect(quoted('x'.repeat(65))).toBe(`"${'x'.repeat(64)}…" (65 characters)`);
  });
});
