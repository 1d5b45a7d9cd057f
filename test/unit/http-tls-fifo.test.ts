/**
 * A FIFO where daemon.http.tls.cert or .key points is refused at once, naming the setting: the daemon
 * read both files with a blocking open in the event loop as it opened its HTTP API (and `doctor` too),
 * so a FIFO nobody wrote to held the starting daemon for ever, answering nothing and taking no SIGTERM.
 *
 * A regression would block this test worker in a synchronous open, where no vitest timeout can end it:
 * as in state-fifo.test.ts, each FIFO has a rescuer that opens it read-write every RESCUE_MS, which lets
 * a blocked open go on, so the old code fails on the time taken and what it said instead of hanging.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadTls } from '../../src/http/tls.js';
import { selfSignedCertificate } from '../helpers/tls.js';

const RESCUE_MS = 2000;
const PROMPT_MS = 1000;

const dirs: string[] = [];
const rescuers: ChildProcess[] = [];
afterEach(() => {
  for (const child of rescuers.splice(0)) {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function plantFifo(path: string): void {
  execFileSync('mkfifo', ['-m', '0600', path]);
  const script = `while :; do sleep ${RESCUE_MS / 1000}; [ -p "$1" ] || exit 0; exec 3<>"$1"; exec 3>&-; done`;
  rescuers.push(spawn('sh', ['-c', script, 'rescuer', path], { stdio: 'ignore', detached: true }));
}

describe('daemon.http.tls pointing at a FIFO', () => {
  it.each(['cert', 'key'] as const)(
    '%s: refused at once, naming the setting and the fix',
    { timeout: 20_000 },
    (which) => {
      const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-tls-fifo-'));
      dirs.push(dir);
      const good = selfSignedCertificate(dir, 'a');
      const fifo = join(dir, `${which}.pem`);
      plantFifo(fifo);
      const began = performance.now();
      const loaded = loadTls(
        which === 'cert' ? { cert: fifo, key: good.key } : { cert: good.cert, key: fifo },
      );
      expect(performance.now() - began).toBeLessThan(PROMPT_MS);
      expect(loaded).toEqual({
        message: `${fifo} (daemon.http.tls.${which}) is a FIFO, not a regular file`,
        fix: `Point daemon.http.tls.${which} at the PEM file itself`,
      });
    },
  );

  it('a certificate reached through a symbolic link (as certbot makes them) still loads', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-tls-fifo-'));
    dirs.push(dir);
    const good = selfSignedCertificate(dir, 'a');
    execFileSync('ln', ['-s', good.cert, join(dir, 'live.pem')]);
    const loaded = loadTls({ cert: join(dir, 'live.pem'), key: good.key });
    expect(Buffer.isBuffer((loaded as { cert?: unknown }).cert)).toBe(true);
  });
});
