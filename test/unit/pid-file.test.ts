/** The pid file (src/adapters/pid-file.ts): one daemon per instance, a dead one's file taken over. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { claimPidFile } from '../../src/adapters/pid-file.js';
import { AgentdError } from '../../src/errors.js';
import { makeTempDir } from '../helpers/resources.js';

/** A pid that no process has: one that has just exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

describe('pid file', () => {
  it('is taken over from a daemon that was killed and not reaped yet (a zombie)', async () => {
    // `sleep 10` becomes the parent of the shell's background child and never reaps it. The child
    // outlives the shell's exec: one that ended before it was reaped by the shell (no zombie; CI under load).
    const parent = spawn('sh', ['-c', 'sleep 0.5 & echo $!; exec sleep 10'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      const zombie = await new Promise<number>((resolve) =>
        parent.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))),
      );
      for (let i = 0; i < 500 && !readFileSync(`/proc/${zombie}/stat`, 'utf8').includes(') Z '); i++)
        await new Promise((resolve) => setTimeout(resolve, 10));
      expect(readFileSync(`/proc/${zombie}/stat`, 'utf8')).toContain(') Z ');
      const path = join(makeTempDir('agentd-unit-pid-'), 'agentd.pid');
      writeFileSync(path, `${zombie}\n`);
      const claim = claimPidFile(path);
      expect(claim.stalePid).toBe(zombie);
      expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
      claim.release();
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('is claimed with this process id and removed on release', () => {
    const path = join(makeTempDir('agentd-unit-pid-'), 'agentd.pid');
    const claim = claimPidFile(path);
    expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
    expect(claim.stalePid).toBeUndefined();
    claim.release();
    expect(existsSync(path)).toBe(false);
  });

  it('refuses a second daemon while the first lives, naming its pid and the fix', () => {
    const path = join(makeTempDir('agentd-unit-pid-'), 'agentd.pid');
    // The test runner's parent is alive and is not this process.
    writeFileSync(path, `${process.ppid}\n`);
    let error: unknown;
    try {
      claimPidFile(path);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AgentdError);
    expect((error as AgentdError).code).toBe('DAEMON_RUNNING');
    expect((error as Error).message).toContain(`pid ${process.ppid}`);
    expect(readFileSync(path, 'utf8')).toBe(`${process.ppid}\n`);
  });

  it("takes over a dead daemon's file and says whose it was; garbage counts as stale", () => {
    const dir = makeTempDir('agentd-unit-pid-');
    const stale = deadPid();
    writeFileSync(join(dir, 'a.pid'), `${stale}\n`);
    expect(claimPidFile(join(dir, 'a.pid')).stalePid).toBe(stale);
    writeFileSync(join(dir, 'b.pid'), 'not a pid');
    expect(claimPidFile(join(dir, 'b.pid')).stalePid).toBe(-1);
    expect(readFileSync(join(dir, 'b.pid'), 'utf8')).toBe(`${process.pid}\n`);
  });

  it('leaves a file another process has since claimed when released', () => {
    const path = join(makeTempDir('agentd-unit-pid-'), 'agentd.pid');
    const claim = claimPidFile(path);
    writeFileSync(path, `${process.ppid}\n`);
    claim.release();
    expect(readFileSync(path, 'utf8')).toBe(`${process.ppid}\n`);
  });
});
