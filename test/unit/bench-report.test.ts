/**
 * The bench's session decomposition (bench/lib/report.mjs): the CLI's part is reported as measured whole
 * (the "CLI process alone" row), and the whole-minus-socket difference per round with its spread, not only
 * as the difference of two session medians, which carries both sessions' spread.
 */
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module of the bench, without types.
import { decompositionMarkdown, judge } from '../../bench/lib/report.mjs';
// @ts-expect-error: a plain ES module of the bench, without types.
import { summarize } from '../../bench/lib/stats.mjs';

const row = (id: string, a: number[], b: number[]) =>
  judge({ id, name: id, a: { label: 'a', ...summarize(a) }, b: { label: 'b', ...summarize(b) } });

describe('bench session decomposition', () => {
  it('reports the CLI alone and the per-round difference beside the difference of medians', () => {
    const bare = [470, 480, 460];
    const rows = [
      row('session', [600, 500, 550], bare),
      row('session-daemon', [420, 480, 440], bare),
      row('session-cli', [60, 55, 58], [28, 27, 30]),
    ];
    const text: string = decompositionMarkdown(rows, summarize([70, 75, 80]), summarize([28, 27, 30]));
    // Medians: 550 - 440 = 110; per round: 180, 20, 110 → median 110, 20–180.
    expect(text).toContain('so the CLI process adds 110 ms');
    expect(text).toContain('took 58 ms (55 ms–60 ms), 30 ms over `node -e 0`');
    expect(text).toContain('per round, whole `trigger` minus the socket trigger was 110 ms (20 ms–180 ms)');
  });

  it('says nothing of the CLI alone when the run has no such row', () => {
    const bare = [470, 480, 460];
    const rows = [row('session', [600, 500, 550], bare), row('session-daemon', [420, 480, 440], bare)];
    expect(decompositionMarkdown(rows, summarize([70]), undefined)).not.toContain('CLI process alone');
  });
});
