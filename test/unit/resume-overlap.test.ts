/**
 * A follow resumed by time starts before the log's last line (resume-overlap.ts): the longest run of the
 * log's last lines the stream begins with is dropped, nothing else, and nothing is held for longer than
 * it takes to decide.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ResumeOverlap } from '../../src/runner/resume-overlap.js';
import { resumeTail } from '../../src/runner/session-log.js';
import { makeTempDir } from '../helpers/resources.js';

/** Feeds the stream line by line; returns what was handed on, and after which line each came. */
function feed(tail: (string | undefined)[], stream: string[], end = true) {
  const overlap = new ResumeOverlap<string>(tail);
  const out: string[] = [];
  const when: number[] = [];
  stream.forEach((line, i) => {
    for (const shown of overlap.line(line, line)) {
      out.push(shown);
      when.push(i);
    }
  });
  if (end) out.push(...overlap.end());
  return { out, when, dropped: overlap.dropped };
}

describe('ResumeOverlap', () => {
  it('drops the log lines the stream begins with and hands on the rest as soon as the run ends', () => {
    const r = feed(['a', 'b', 'c'], ['b', 'c', 'd', 'e']);
    expect(r.out).toEqual(['d', 'e']);
    expect(r.when).toEqual([2, 3]);
    expect(r.dropped).toBe(2);
    expect(feed(['a', 'b', 'c'], ['a', 'b', 'c', 'd']).out).toEqual(['d']);
  });

  it('hands on at once a stream that begins with nothing the log holds', () => {
    const r = feed(['a', 'b', 'c'], ['x', 'a', 'b', 'c'], false);
    expect(r.out).toEqual(['x', 'a', 'b', 'c']);
    expect(r.when).toEqual([0, 1, 2, 3]);
  });

  it('keeps a line the log holds but not at its end: only a run up to the last line is dropped', () => {
    // The stream begins with the log's `b`, then goes on with what the log does not hold.
    expect(feed(['a', 'b', 'c'], ['b', 'x']).out).toEqual(['b', 'x']);
    // A line the log held cut in parts is never taken as held.
    expect(feed(['a', undefined, 'c'], ['a', 'X', 'c', 'd']).out).toEqual(['a', 'X', 'c', 'd']);
  });

  it('with a log of one line repeated, drops the longest run and holds no longer than the log is long', () => {
    expect(feed(['.', '.', '.'], ['.', '.', '.', '.', 'z']).out).toEqual(['.', 'z']);
    const many = Array.from({ length: 100 }, () => '.');
    const r = feed(many, [...many, '.', 'z'], false);
    expect(r.out).toEqual(['.', 'z']);
    expect(r.when).toEqual([100, 101]);
  });

  it('at the end, drops held lines that are a run of the log cut short, and hands on the others', () => {
    // A follow Podman ended inside the overlap: the log holds what it gave.
    expect(feed(['a', 'b', 'c'], ['a', 'b']).out).toEqual([]);
    const overlap = new ResumeOverlap<string>(['a', 'b', 'c']);
    expect(overlap.line('b', 'b')).toEqual([]);
    expect(overlap.end()).toEqual([]);
    expect(overlap.holding).toBe(false);
    expect(overlap.line('c', 'c')).toEqual(['c']);
    // Too many runs to follow (blank lines): decided at the end, by the lines themselves.
    const blanks = Array.from({ length: 70 }, () => '');
    expect(feed([...blanks, 'p'], ['', '', '', 'q']).out).toEqual(['', '', '', 'q']);
    // A complete run, then new lines that are no run of the log: those are handed on.
    const tail = [...Array.from({ length: 10 }, () => 'p'), ...blanks];
    expect(feed(tail, [...blanks, 'NEW1', 'NEW2']).out).toEqual(['NEW1', 'NEW2']);
    // Too many runs to follow, then a line the log does not hold at all: decided at once, not held (the
    // blank lines before it are the log's last ones).
    const r = feed([...blanks, ...blanks], ['', '', 'NEW1', 'NEW2'], false);
    expect(r.out).toEqual(['NEW1', 'NEW2']);
    expect(r.when).toEqual([2, 3]);
  });

  it('passes everything through when the log held nothing', () => {
    expect(feed([], ['a', 'b'], false).out).toEqual(['a', 'b']);
  });
});

describe('resumeTail', () => {
  const log = (records: string[]) => {
    const path = join(makeTempDir('agentd-unit-tail-'), 'session.log');
    writeFileSync(path, `${records.join('\n')}\n`);
    return path;
  };
  const [old, earliest, at] = [
    '2026-12-05T10:00:00.000Z',
    '2026-12-05T10:00:28.000Z',
    '2026-12-05T10:00:30.000Z',
  ];

  it('gives the whole lines read from `since` on, per stream, a line kept in parts as one never compared', () => {
    const path = log([
      `1 ${old} out long before`,
      `2 ${old} out head of a long line`,
      `3 ${at} out+ its last part`,
      `4 ${at} err e1`,
      `- ${at} note [agentd: a note]`,
      `5 ${at} agentd [agentd: a notice]`,
      `6 ${at} out C`,
    ]);
    // The long line's last part was read after `since`: Podman gives the line whole, dated by it.
    expect(resumeTail(path, earliest)).toEqual({
      since: earliest,
      lines: { stdout: [undefined, 'C'], stderr: ['e1'] },
    });
  });

  it("begins at the log's oldest line when the log does not reach back to `earliest`", () => {
    const path = log([`7 ${at} out a`, `8 ${at} out b`]);
    expect(resumeTail(path, earliest)).toEqual({ since: at, lines: { stdout: ['a', 'b'], stderr: [] } });
  });
});
