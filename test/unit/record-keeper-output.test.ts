/**
 * What the sealed record keeps of a session's output archive (src/daemon/record-keeper.ts): only one
 * the runner searched for the session's credential values and found clean. No Podman.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { markNothingToSearch } from '../../src/adapters/output-archive.js';
import { SessionFiles } from '../../src/adapters/session-files.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';
import { finishedRecord } from '../helpers/session-record.js';

afterEach(() => cleanupAll());

function setup() {
  const stateDir = makeTempDir('agentd-unit-keeper-');
  const files = new SessionFiles(stateDir);
  const keeper = new RecordKeeper(
    { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
    files,
    pino({ level: 'silent' }),
  );
  /** A finished session whose container left an archive of one file in its work dir. */
  const session = (n: number) => {
    const id = `0000000000000${String(n).padStart(3, '0')}`;
    const paths = files.paths(id);
    mkdirSync(paths.copy, { recursive: true });
    const tree = makeTempDir('agentd-unit-keeper-out-');
    writeFileSync(join(tree, 'result.txt'), 'done\n');
    execFileSync('tar', ['-cf', paths.archive, '-C', tree, '.']);
    const record = finishedRecord(id, 'succeeded');
    return { record, paths };
  };
  return { stateDir, keeper, session };
}

describe('the sealed record and the output archive', () => {
  it('keeps an archive the runner searched and found clean', async () => {
    const { stateDir, keeper, session } = setup();
    const { record, paths } = session(1);
    markNothingToSearch(paths.archive, paths.searched);
    const output = await keeper.seal(record, join(stateDir, 'none.log'));
    expect(output).toMatchObject({ files: 1 });
    expect(output?.missing).toBeUndefined();
  });

  it('withholds one no daemon searched (it stopped between the container’s end and the search), saying so', async () => {
    const { stateDir, keeper, session } = setup();
    const { record } = session(2);
    const output = await keeper.seal(record, join(stateDir, 'none.log'));
    expect(output).toMatchObject({
      files: 0,
      missing:
        'withheld: the output archive was not searched for credential values (a daemon stopped before it could be, or the search failed)',
    });
  });

  it('withholds one that changed after it was searched', async () => {
    const { stateDir, keeper, session } = setup();
    const { record, paths } = session(3);
    markNothingToSearch(paths.archive, paths.searched);
    writeFileSync(paths.archive, 'something else entirely');
    const output = await keeper.seal(record, join(stateDir, 'none.log'));
    expect(output).toMatchObject({ files: 0 });
    expect(output?.missing).toMatch(/^withheld: the output archive was not searched/);
  });
});

describe('an output the state dir had no room to archive', () => {
  function logged() {
    const stateDir = makeTempDir('agentd-unit-keeper-');
    const files = new SessionFiles(stateDir);
    const lines: Record<string, unknown>[] = [];
    const keeper = new RecordKeeper(
      { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
      files,
      pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) }),
    );
    /** A finished session whose setup step left this note instead of an archive. */
    const sealed = async (n: number, note: string) => {
      const id = `0000000000000${String(n).padStart(3, '0')}`;
      const paths = files.paths(id);
      mkdirSync(paths.copy, { recursive: true });
      writeFileSync(paths.withheld, note);
      return keeper.seal(finishedRecord(id, 'succeeded'), join(stateDir, 'none.log'));
    };
    return { lines, sealed };
  }

  it('is said in the log once its record is sealed (a warning naming the session and why), not only in the record', async () => {
    const { lines, sealed } = logged();
    const full =
      "the state dir was full when the session ended: its output could not be archived (free space on the state dir's filesystem: No space left on device, 6840 KiB free beyond the 128 KiB agentd keeps for its other writes)";
    const output = await sealed(1, full);
    expect(output?.missing).toBe(full);
    const unkept = lines.filter((l) => l.event === 'session.output_unkept');
    expect(unkept).toEqual([
      expect.objectContaining({ level: 40, session: '0000000000000001', reason: full }),
    ]);
    expect(unkept[0]?.msg).toBe(
      `the output of session 0000000000000001 is not kept: ${full}; free space there (the records take up to daemon.records_max_size, whatever the filesystem holds: see agentd doctor)`,
    );
    await sealed(2, 'its output could not be archived in the state dir (Read-only file system)');
    expect(lines.filter((l) => l.event === 'session.output_unkept')).toHaveLength(2);
  });

  it('says nothing of an output withheld for another reason', async () => {
    const { lines, sealed } = logged();
    await sealed(3, 'withheld: the output held a credential value');
    expect(lines.filter((l) => l.event === 'session.output_unkept')).toEqual([]);
  });
});

describe('retention in one go', () => {
  it('logs how many records it removed and at most 100 of their ids, not a line of every one', async () => {
    const { stateDir, keeper, session } = setup();
    for (let n = 0; n < 105; n++) {
      const { record, paths } = session(n);
      markNothingToSearch(paths.archive, paths.searched);
      await keeper.seal(record, join(stateDir, 'none.log'));
    }
    // records_max_count lowered to 1 before a start: its recovery prunes 104 records at once.
    const lines: { event?: string; count?: number; removed?: string[] }[] = [];
    const restarted = new RecordKeeper(
      { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30, maxCount: 1 },
      new SessionFiles(stateDir),
      pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) }),
    );
    restarted.strays(() => true);
    await restarted.recover([], new Set(), () => join(stateDir, 'none.log'));
    const pruned = lines.filter((l) => l.event === 'records.pruned');
    expect(pruned).toHaveLength(1);
    expect(pruned[0]?.count).toBe(104);
    expect(pruned[0]?.removed).toHaveLength(100);
  });
});
