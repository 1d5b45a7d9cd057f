/** How the short podman calls run a process: what it printed, its end, its bounds, its deadline and a cancel. */
import { describe, expect, it } from 'vitest';
import { processEndCause, runProcess } from '../../src/adapters/podman-process.js';

const base = { timeoutMs: 5000, maxStdoutBytes: 1000, maxStderrBytes: 1000, forceKillAfterMs: 500 };

describe('runProcess', () => {
  it('gives what it printed without the final newline, and its exit code', async () => {
    const end = await runProcess('/bin/sh', ['-c', 'echo out; echo err >&2; exit 3'], base);
    expect(end).toMatchObject({ stdout: 'out', stderr: 'err', exitCode: 3, failed: true, timedOut: false });
    expect(processEndCause(end).message).toBe('the process exited with code 3');
  });

  it('writes its input, bytes as they are, and reads no stdin without one', async () => {
    const input = new Uint8Array([0, 255, 10, 1]);
    const end = await runProcess('/bin/sh', ['-c', 'od -An -tu1'], { ...base, input });
    expect(end.stdout.trim().split(/\s+/)).toEqual(['0', '255', '10', '1']);
    expect((await runProcess('/bin/sh', ['-c', 'cat; echo done'], base)).stdout).toBe('done');
  });

  it('kills a process that prints more than its bound, and keeps what fits', async () => {
    const end = await runProcess('/usr/bin/yes', [], base);
    expect(end).toMatchObject({ isMaxBuffer: true, failed: true, signal: 'SIGTERM' });
    expect(end.stdout.length).toBeLessThanOrEqual(1000);
  });

  it('ends a process that outlives its deadline, SIGKILL when it ignores SIGTERM', async () => {
    const end = await runProcess('/bin/sh', ['-c', "trap '' TERM; while :; do sleep 1; done"], {
      ...base,
      timeoutMs: 200,
    });
    expect(end).toMatchObject({ timedOut: true, failed: true, signal: 'SIGKILL' });
    expect(processEndCause(end).message).toBe('the process ended by SIGKILL, past its deadline');
  });

  it('ends a cancelled process', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    const end = await runProcess('/bin/sleep', ['30'], { ...base, signal: abort.signal });
    expect(end).toMatchObject({ isCanceled: true, failed: true, signal: 'SIGTERM' });
  });

  it('says why a process could not start, without throwing', async () => {
    const end = await runProcess('/nonexistent/podman', [], base);
    expect(end).toMatchObject({ code: 'ENOENT', failed: true });
    expect(end.exitCode).toBeUndefined();
    expect((await runProcess('/bin/true', ['a\0b'], base)).code).toBe('ERR_INVALID_ARG_VALUE');
  });
});
