/**
 * Where a session's log left off in Podman's copy of the container's output, found by content
 * (resume-overlap.ts): the place where most of the log's last lines end, the earliest of equals; and the
 * log's last lines per stream (resumeTail).
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ANCHOR_LINES, ResumeAnchor } from '../../src/runner/resume-overlap.js';
import { resumeTail } from '../../src/runner/session-log.js';
import { makeTempDir } from '../helpers/resources.js';

/** How many of the copy's first lines the log holds, by the log's last lines `tail`. */
function through(tail: string[], copy: string[]): number | undefined {
  const anchor = new ResumeAnchor(tail);
  for (const line of copy) anchor.line(line);
  const found = anchor.found();
  expect(found.lines).toBe(copy.length);
  return found.through;
}

describe('ResumeAnchor', () => {
  it("finds where the log's last lines end in the copy", () => {
    expect(through(['a', 'b', 'c', 'd'], ['x', 'a', 'b', 'c', 'd', 'e', 'f'])).toBe(5);
    // The copy begins inside the log's last lines (Podman emptied it there), still enough of them.
    expect(through(['a', 'b', 'c', 'd'], ['b', 'c', 'd', 'e'])).toBe(3);
    // Nothing after: the log holds it all.
    expect(through(['a', 'b', 'c'], ['a', 'b', 'c'])).toBe(3);
  });

  it('takes the place where most of the log ends, not a later or earlier one where only its last lines do', () => {
    // 'c', 'd' come again after the log left off, and before it: only one place has all of a–d.
    expect(through(['a', 'b', 'c', 'd'], ['c', 'd', 'x', 'a', 'b', 'c', 'd', 'e', 'c', 'd'])).toBe(7);
  });

  it('takes the earliest of equal places (a line repeated): nothing after the true one is lost', () => {
    expect(through(['t', 't', 't'], ['s', 't', 't', 't', 't', 't', 'u'])).toBe(4);
    // A line before the repeated ones tells the places apart.
    expect(through(['s', 't', 't', 't'], ['s', 't', 't', 't', 't', 't', 'u'])).toBe(4);
  });

  it('is not found when too few of the log last lines are in the copy, or none', () => {
    expect(through(['a', 'b', 'c', 'd'], ['x', 'c', 'd', 'y'])).toBeUndefined();
    expect(through(['a', 'b'], ['x', 'y'])).toBeUndefined();
    expect(through([], ['x', 'y'])).toBeUndefined();
    // A log of fewer lines than the least needed: all of them do.
    expect(through(['a', 'b'], ['a', 'b', 'x'])).toBe(2);
  });

  it('takes a line the copy gives in pieces as the line whole, however it is cut', () => {
    const anchor = new ResumeAnchor(['a', `${'L'.repeat(50)}M`, 'b']);
    anchor.line('a');
    anchor.piece('L'.repeat(20));
    anchor.piece('L'.repeat(30));
    anchor.line('M');
    anchor.line('b');
    anchor.line('c');
    expect(anchor.found()).toEqual({ lines: 4, through: 3 });
  });

  it(`compares the log's last ${ANCHOR_LINES} lines at most, and keeps no more of the copy`, () => {
    const tail = Array.from({ length: ANCHOR_LINES + 500 }, (_, i) => `line ${i}`);
    const anchor = new ResumeAnchor(tail);
    // The copy begins where the compared lines do: all of them end at its last.
    for (const line of tail.slice(500)) anchor.line(line);
    for (let i = 0; i < 100_000; i++) anchor.line(`after ${i % 7}`);
    expect(anchor.found()).toEqual({ lines: ANCHOR_LINES + 100_000, through: ANCHOR_LINES });
  });
});

describe('resumeTail', () => {
  const log = (records: string[]) => {
    const path = join(makeTempDir('agentd-unit-tail-'), 'session.log');
    writeFileSync(path, `${records.join('\n')}\n`);
    return path;
  };
  const at = '2026-12-05T10:00:30.000Z';

  it("gives the log's last whole lines per stream, whatever their time, a line kept in parts joined", () => {
    const path = log([
      `1 2026-12-05T08:00:00.000Z out long before`,
      `2 ${at} out head of a long line`,
      `3 ${at} err e1`,
      `4 ${at} out+ , its last part`,
      `- ${at} note [agentd: a note]`,
      `5 ${at} agentd [agentd: a notice]`,
      `6 2026-12-05T07:00:00.000Z out C`,
    ]);
    expect(resumeTail(path, 10)).toEqual({
      stdout: ['long before', 'head of a long line, its last part', 'C'],
      stderr: ['e1'],
    });
    expect(resumeTail(path, 2)).toEqual({
      stdout: ['head of a long line, its last part', 'C'],
      stderr: ['e1'],
    });
  });
});
