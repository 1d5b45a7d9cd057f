/** Outcome kinds: what a command's exit code means, and which kinds count as failed. */
import { describe, expect, it } from 'vitest';
import { commandExited } from '../../src/sessions/run-outcome.js';

describe('a command that exited', () => {
  it.each([
    [0, 'succeeded', 'success', undefined],
    [1, 'failed', 'failure', 'command exited with code 1'],
    [2, 'failed', 'usage_error', 'command exited with code 2: a usage error'],
    [3, 'succeeded', 'blocked', 'command reported it is blocked (exit 3)'],
    [4, 'succeeded', 'nothing_ready', 'command reported nothing ready to work on (exit 4)'],
    [5, 'failed', 'work_failed', 'command exited with code 5: its work failed'],
    [6, 'failed', 'infrastructure_failure', 'command exited with code 6: an infrastructure failure'],
    [42, 'failed', 'failure', 'command exited with code 42'],
    [126, 'failed', 'not_executable', 'command cannot be executed'],
    [127, 'failed', 'not_found', 'command not found: reviewer'],
    [143, 'failed', 'killed', 'command killed by SIGTERM (exit 143)'],
  ] as const)('exit %d is %s, kind %s', (code, outcome, kind, message) => {
    const fate = commandExited(code, 'reviewer');
    expect(fate).toMatchObject({ outcome, kind, exitCode: code, phase: 'running' });
    if (message === undefined) expect(fate.message).toBeUndefined();
    else expect(fate.message).toContain(message);
  });

  it('says a 126 or 127 is the command’s own when the setup step started it', () => {
    expect(commandExited(127, 'sh', undefined, {}, true)).toMatchObject({
      outcome: 'failed',
      kind: 'not_found',
      message:
        'command sh was started and exited with code 127: its interpreter or something it ran was not found',
    });
    expect(commandExited(126, 'sh', undefined, {}, true)).toMatchObject({
      outcome: 'failed',
      kind: 'not_executable',
      message:
        'command sh was started and exited with code 126: its interpreter or something it ran could not be executed',
    });
  });

  it('takes the agent’s own meanings over the convention', () => {
    const own = { 3: 'failure', 10: 'work_failed', 0: 'nothing_ready' } as const;
    expect(commandExited(3, 'x', undefined, own)).toMatchObject({ outcome: 'failed', kind: 'failure' });
    expect(commandExited(10, 'x', undefined, own)).toMatchObject({ outcome: 'failed', kind: 'work_failed' });
    expect(commandExited(0, 'x', undefined, own)).toMatchObject({
      outcome: 'succeeded',
      kind: 'nothing_ready',
    });
  });

  it('is a failure when the memory limit killed something, whatever the code', () => {
    expect(commandExited(4, 'x', 'out of memory (limit 2g)')).toMatchObject({
      outcome: 'failed',
      kind: 'nothing_ready',
      message: 'out of memory (limit 2g): command reported nothing ready to work on (exit 4)',
    });
  });

  it('says why it failed when the memory limit killed a child and the command exited 0', () => {
    // Measured: a session whose command's child was OOM-killed and which then exited 0 showed `failed,
    // exit code 0` with no message at all.
    expect(commandExited(0, 'x', 'out of memory (limit 64m)')).toEqual({
      outcome: 'failed',
      kind: 'success',
      exitCode: 0,
      phase: 'running',
      message: 'out of memory (limit 64m): command exited with code 0 after the OOM killer struck',
    });
  });
});
