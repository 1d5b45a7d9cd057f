/**
 * Two daemons started at once on a state dir whose pid file a killed daemon left: exactly one of them
 * claims it (src/adapters/pid-file.ts). The second daemon's claim is run at the moment the first has
 * read the stale pid and not yet removed the file, the interleaving in which both used to run (measured
 * with three processes started at the same instant: two of them ran in 4 of 30 rounds).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { claimPidFile, type PidFileClaim, TAKEOVER_LOCK_MAX_MS } from '../../src/adapters/pid-file.js';
import { makeTempDir } from '../helpers/resources.js';

/** Runs once, when the pid file is next read (by the takeover's judgement), after the read. */
const onRead: { path?: string; run?: () => void } = {};

vi.mock('../../src/adapters/state-files.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/adapters/state-files.js')>();
  return {
    ...actual,
    readNoFollow: (...args: Parameters<typeof actual.readNoFollow>) => {
      const content = actual.readNoFollow(...args);
      if (args[0] === onRead.path && onRead.run) {
        const run = onRead.run;
        onRead.run = undefined;
        run();
      }
      return content;
    },
  };
});

/** A pid that no process has: one that has just exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

describe('pid file taken over by two daemons at once', () => {
  it('is claimed by one of them only; the other is refused and removes nothing', () => {
    const dir = makeTempDir('agentd-unit-pid-race-');
    const path = join(dir, 'agentd.pid');
    writeFileSync(path, `${deadPid()}\n`);
    const claims: PidFileClaim[] = [];
    const refused: string[] = [];
    const claim = () => {
      try {
        claims.push(claimPidFile(path));
      } catch (error) {
        refused.push((error as Error & { code?: string }).code ?? String(error));
      }
    };
    // The other daemon claims while this one has judged the file stale and not yet removed it.
    onRead.path = path;
    onRead.run = claim;
    claim();
    onRead.run = undefined;
    expect(claims).toHaveLength(1);
    expect(refused).toEqual(['DAEMON_RUNNING']);
    expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
    // The lock is gone with the takeover.
    expect(existsSync(`${path}.lock`)).toBe(false);
    for (const held of claims) held.release();
    expect(existsSync(path)).toBe(false);
  });

  it('takes a lock a killed daemon left over, and refuses one a live daemon holds', () => {
    const dir = makeTempDir('agentd-unit-pid-race-');
    const path = join(dir, 'agentd.pid');
    writeFileSync(path, `${deadPid()}\n`);
    writeFileSync(`${path}.lock`, `${deadPid()}\n`);
    const claim = claimPidFile(path);
    expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
    expect(existsSync(`${path}.lock`)).toBe(false);
    claim.release();

    writeFileSync(path, `${deadPid()}\n`);
    // The test runner's parent is alive and is not this process.
    writeFileSync(`${path}.lock`, `${process.ppid}\n`);
    expect(() => claimPidFile(path)).toThrow(/another agentd \(pid \d+\) is starting for this state dir/);
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe(`${process.ppid}\n`);

    // A live pid in a lock made minutes ago: a killed start's, its pid reused since.
    const old = new Date(Date.now() - 2 * TAKEOVER_LOCK_MAX_MS);
    utimesSync(`${path}.lock`, old, old);
    const late = claimPidFile(path);
    expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
    expect(existsSync(`${path}.lock`)).toBe(false);
    late.release();
  });
});
