/**
 * session.json written while a session runs, on a records dir with no room: not warned of (the seal
 * writes it whole, and logs session.record_unsealed if it cannot), so a full records dir gives one
 * warning per session, not two. Any other failure is still warned of once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SessionFiles } from '../../src/adapters/session-files.js';
import { StateDirError } from '../../src/adapters/state-files.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import type { AgentdError } from '../../src/errors.js';
import type { SessionRecord } from '../../src/sessions/records.js';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function keeperWith(error: AgentdError) {
  const stateDir = mkdtempSync(join(tmpdir(), 'agentd-record-write-'));
  dirs.push(stateDir);
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const keeper = new RecordKeeper(
    { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
    new SessionFiles(stateDir),
    log,
  );
  vi.spyOn(keeper.records, 'write').mockImplementation((_agent, _id, _json, onError) => onError?.(error));
  const record = { id: '00000000000000a1', agent: 'demo' } as SessionRecord;
  return { keeper, lines, record };
}

const errno = (code: string) => Object.assign(new Error(`${code}: write`), { code });

describe("a running session's session.json on a records dir", () => {
  it('with no room is not warned of', () => {
    const { keeper, lines, record } = keeperWith(
      new StateDirError('write session.json', '/r/x', errno('ENOSPC')),
    );
    keeper.write(record);
    keeper.write(record);
    expect(lines.filter((l) => l.event === 'session.record_unwritten')).toEqual([]);
    keeper.close();
  });

  it('that refuses it otherwise is warned of once', () => {
    const { keeper, lines, record } = keeperWith(
      new StateDirError('write session.json', '/r/x', errno('EACCES')),
    );
    keeper.write(record);
    keeper.write(record);
    expect(lines.filter((l) => l.event === 'session.record_unwritten')).toHaveLength(1);
    keeper.close();
  });
});
