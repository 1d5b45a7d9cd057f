/**
 * Temp files a crash left in the state dir itself (an atomic write of schedules.json, written at every
 * firing, or of seccomp.json, cut short by a SIGKILL) are removed at start, like those in sessions/: the
 * old code removed only the reserve's, so each crash added one for good.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionStore } from '../../src/adapters/session-store.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("temp files in the state dir's own directory", () => {
  it('are removed at start, by the thousand; its files are kept', () => {
    const state = mkdtempSync(join(tmpdir(), 'agentd-unit-state-temps-'));
    dirs.push(state);
    for (let n = 0; n < 2000; n++) {
      writeFileSync(
        join(state, `schedules.json.${1000 + n}.${n.toString(16).padStart(8, '0')}.tmp`),
        '{"vers',
      );
    }
    writeFileSync(join(state, 'seccomp.json.4242.0badc0de.tmp'), '{');
    // An older version's temp name, without the random part.
    writeFileSync(join(state, 'schedules.json.77.tmp'), '');
    writeFileSync(join(state, 'schedules.json'), '{"version":1,"agents":{}}\n');
    writeFileSync(join(state, 'seccomp.json'), '{}\n');
    new SessionStore(state, sessionRecordSchema);
    expect(readdirSync(state).sort()).toEqual(['.reserve', 'schedules.json', 'seccomp.json', 'sessions']);
  });
});
