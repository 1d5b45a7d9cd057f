/**
 * A gap the session log ends with: the state dir filled while the session ran and it ended before a
 * line after the gap was written. The note is the log's last record; `agentd logs` and the sealed
 * session.log (renderSessionLog) still say what is missing.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readSessionLog, renderSessionLog } from '../../src/runner/session-log.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

const T = '2026-01-01T00:00:00.000Z';
const NOTE =
  '[agentd: 11 line(s), 442 bytes of output are missing here: the state dir was full (ENOSPC) from 2026-01-01T00:00:01.000Z to 2026-01-01T00:00:30.000Z; followers received them live]';

function logWith(records: string[]): string {
  const path = join(makeTempDir('agentd-unit-trailing-gap-'), 'session.log');
  writeFileSync(path, records.map((r) => `${r}\n`).join(''));
  return path;
}

describe('a gap note at the end of the session log', () => {
  const records = [`1 ${T} out one`, `2 ${T} out two`, `- ${T} note ${NOTE}`];

  it('is read as the lines after the last one, with the note as the reason', () => {
    const entries = readSessionLog(logWith(records));
    expect(entries).toHaveLength(3);
    expect(entries.at(-1)).toEqual({ fromSeq: 3, toSeq: 13, count: 11, reason: NOTE });
  });

  it('ends the rendered log (the sealed session.log)', () => {
    expect(renderSessionLog(logWith(records))).toBe(
      `one\ntwo\n[agentd: 11 line(s) skipped (seq 3-13): ${NOTE}]\n`,
    );
  });

  it('is left out for a reader after the lines it names, and cut for one among them', () => {
    const path = logWith(records);
    expect(readSessionLog(path, 13)).toEqual([]);
    expect(readSessionLog(path, 5)).toEqual([{ fromSeq: 6, toSeq: 13, count: 8, reason: NOTE }]);
  });

  it('in the middle of the log is still read once, where the lines resume', () => {
    const entries = readSessionLog(logWith([...records, `14 ${T} out after`]));
    expect(entries.filter((e) => 'count' in e)).toEqual([{ fromSeq: 3, toSeq: 13, count: 11, reason: NOTE }]);
  });
});
