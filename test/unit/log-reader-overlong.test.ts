/**
 * A session log with bytes longer than any record and no newline (blocks of zeros a crash left in it,
 * or a planted file): the reader skips them to the next newline, and the numbered lines after them go
 * on with a gap where the skipped ones were. The old reader waited for their end, copying what had come
 * so far at every 64 KiB block: quadratic, so a sparse 1 GiB log held a real daemon's event loop for
 * more than ten minutes (`agentd status` unanswered) on one `agentd logs`, and 8 MiB of zeros came out
 * as one line of output.
 */
import { appendFileSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogReader } from '../../src/runner/session-log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const T = '2026-12-06T12:00:00.000Z';

function logWith(...parts: (string | number)[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-log-overlong-'));
  dirs.push(dir);
  const path = join(dir, '00000000000000a1.log');
  writeFileSync(path, '');
  for (const part of parts) {
    if (typeof part === 'string') appendFileSync(path, part);
    // Zeros, as a sparse extension (no disk taken).
    else truncateSync(path, statSync(path).size + part);
  }
  return path;
}

function entries(path: string) {
  const reader = new LogReader(path);
  const all: unknown[] = [];
  for (let next = reader.next(); next !== undefined; next = reader.next()) all.push(...next);
  reader.close();
  return all;
}

describe('a session log with bytes longer than any record', () => {
  it('skips them to the next newline; the lines after go on, a gap where they were', () => {
    const path = logWith(`1 ${T} out hi\n`, 8 * 1024 * 1024, `\n3 ${T} out after\n`);
    expect(entries(path)).toEqual([
      { seq: 1, time: T, stream: 'stdout', text: 'hi' },
      { fromSeq: 2, toSeq: 2, count: 1, reason: 'not in the log' },
      { seq: 3, time: T, stream: 'stdout', text: 'after' },
    ]);
  });

  it('reads 32 MiB of them in linear time, holding no more than a record', () => {
    const path = logWith(`1 ${T} out hi\n`, 32 * 1024 * 1024);
    const started = performance.now();
    expect(entries(path)).toEqual([{ seq: 1, time: T, stream: 'stdout', text: 'hi' }]);
    // The old reader copied 8 GiB doing this (seconds); one pass over 32 MiB takes milliseconds.
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('keeps a record as long as agentd writes, whole', () => {
    const long = 'x'.repeat(64 * 1024);
    const path = logWith(`1 ${T} out ${long}\n2 ${T} err done\n`);
    expect(entries(path)).toEqual([
      { seq: 1, time: T, stream: 'stdout', text: long },
      { seq: 2, time: T, stream: 'stderr', text: 'done' },
    ]);
  });
});
