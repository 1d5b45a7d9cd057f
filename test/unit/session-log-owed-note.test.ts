/**
 * A closed session log that still owes its gap note (no room when the session ended; tried again every
 * 2 s): a seal that copies the log right after room comes back writes the note first (writeOwedGapNote),
 * so the sealed session.log says what is missing instead of ending where the disk filled.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MAX_OWING_NOTES,
  renderSessionLog,
  SessionLog,
  writeOwedGapNote,
} from '../../src/runner/session-log.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

describe('a gap note a closed log owes', () => {
  it('is written on demand once there is room, and throws while there is none', async () => {
    const path = join(makeTempDir('agentd-unit-owed-note-'), 'session.log');
    // Something that is not a file stands where the log goes: nothing can be written for now.
    mkdirSync(path);
    const log = new SessionLog(path, 1024);
    log.append('lost one');
    log.append('lost two');
    await log.close();
    expect(log.missing).toEqual({ lines: 2, bytes: 18 });
    expect(() => writeOwedGapNote(path)).toThrow(/session log/);

    rmSync(path, { recursive: true });
    writeOwedGapNote(path);
    expect(log.missing).toBeUndefined();
    expect(renderSessionLog(path)).toMatch(
      /^\[agentd: 2 line\(s\) skipped \(seq 1-2\): \[agentd: 2 line\(s\), 18 bytes of output are missing here: the log could not be written \(EISDIR\)/,
    );
    // Owed once: a second call writes nothing more.
    const once = renderSessionLog(path);
    writeOwedGapNote(path);
    expect(renderSessionLog(path)).toBe(once);
  });

  it('is given up, timer and all, for the oldest once more logs than the bound owe one', async () => {
    const dir = makeTempDir('agentd-unit-owed-many-');
    const logs: SessionLog[] = [];
    for (let i = 0; i <= MAX_OWING_NOTES; i += 1) {
      const path = join(dir, `session-${i}.log`);
      mkdirSync(path);
      const log = new SessionLog(path, 1024);
      log.append('lost');
      await log.close();
      logs.push(log);
    }
    // The oldest no longer tries (no timer held for the daemon's life); every other one still does.
    expect(logs[0]?.retrying).toBe(false);
    expect(logs.filter((log) => log.retrying)).toHaveLength(MAX_OWING_NOTES);
    for (const log of logs.slice(1)) {
      rmSync(log.path, { recursive: true });
      writeOwedGapNote(log.path);
    }
    expect(logs.filter((log) => log.retrying)).toHaveLength(0);
  });

  it('is nothing for a log that owes none', () => {
    expect(() => writeOwedGapNote(join(makeTempDir('agentd-unit-owed-none-'), 'session.log'))).not.toThrow();
  });
});
