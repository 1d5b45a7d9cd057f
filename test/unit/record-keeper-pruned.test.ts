/**
 * A sealed record that retention removed (records_max_count here) while the state dir still lists its
 * session (daemon.history keeps more) stays removed at the next start. Measured on a real daemon with
 * records_max_count 10 and history 10 over a state dir that had kept more sessions (some waited to be
 * sealed on a full disk): the start sealed the pruned records again, and on a full disk warned
 * session.record_unsealed for each and tried them again every 30 s, filling the disk further.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionFiles } from '../../src/adapters/session-files.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import { SessionJournal } from '../../src/daemon/journal.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import { requestOf } from '../../src/daemon/recovery.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';

const dirs: string[] = [];
const closing: (() => void)[] = [];
afterEach(() => {
  for (const close of closing.splice(0)) close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A journal over stateDir whose retention keeps one sealed record, with the lines it logs. */
function daemonIn(stateDir: string) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const files = new SessionFiles(stateDir);
  const keeper = new RecordKeeper(
    { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30, maxCount: 1 },
    files,
    log,
  );
  closing.push(() => keeper.close());
  const journal = new SessionJournal(
    new SessionStore(stateDir, sessionRecordSchema),
    files,
    keeper,
    log,
    200,
  );
  return { keeper, journal, lines };
}

async function ran(daemon: ReturnType<typeof daemonIn>, id: string): Promise<void> {
  const request = requestOf({
    version: 1,
    id,
    agent: 'demo',
    repo: 'git://127.0.0.1/r.git',
    acceptedAt: new Date().toISOString(),
    phase: 'queued',
    phases: [],
  });
  daemon.journal.accept(request, 1 << 20);
  daemon.journal.phase(id, 'running');
  await daemon.journal.finish(request, { outcome: 'succeeded', phase: 'running', exitCode: 0 });
  await daemon.keeper.settled();
}

describe('a sealed record that retention removed', () => {
  it('is not sealed again at the next start while the state dir still lists its session', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-pruned-'));
    dirs.push(stateDir);
    const first = daemonIn(stateDir);
    first.journal.load(() => {});
    await first.journal.recover();
    await ran(first, '00000000000000a1');
    await ran(first, '00000000000000a2');
    const older = first.keeper.dirOf('demo', '00000000000000a1');
    const newer = first.keeper.dirOf('demo', '00000000000000a2');
    // Retention keeps one: the older one's record is gone (moved aside, removed in the background).
    expect(first.lines.some((l) => l.event === 'records.pruned')).toBe(true);
    expect(existsSync(older)).toBe(false);
    expect(existsSync(newer)).toBe(true);
    // The state dir still lists both sessions (history keeps 200).
    expect(first.journal.record('00000000000000a1')).toMatchObject({ outcome: 'succeeded' });
    first.keeper.close();

    const second = daemonIn(stateDir);
    second.journal.load(() => {});
    await second.journal.recover();
    await second.keeper.settled();
    expect(existsSync(older), 'the pruned record was made again').toBe(false);
    expect(second.lines.filter((l) => l.event === 'session.record_sealed')).toEqual([]);
    expect(second.lines.filter((l) => l.event === 'records.pruned')).toEqual([]);
    expect(existsSync(newer)).toBe(true);
  });
});
