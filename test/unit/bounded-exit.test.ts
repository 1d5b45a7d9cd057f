/**
 * After the daemon has stopped, the process ends within EXIT_HELD_MS with the daemon's exit code, saying
 * what held it (a podman call whose child kept its pipes made it log "agentd stopped" and run on until
 * SIGKILL); one whose event loop empties is not held by the timer.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/adapters/logger.js';
import { EXIT_HELD_MS, exitWithin } from '../../src/cli/bounded-exit.js';

afterEach(() => {
  vi.useRealTimers();
});

function fakeLog() {
  const lines: { fields: Record<string, unknown>; message: string }[] = [];
  const log = {
    error: (fields: Record<string, unknown>, message: string) => lines.push({ fields, message }),
  } as unknown as Logger;
  return { log, lines };
}

describe('exitWithin', () => {
  it('ends the process with the code after EXIT_HELD_MS, naming what is still open', () => {
    vi.useFakeTimers();
    const { log, lines } = fakeLog();
    const exits: number[] = [];
    exitWithin(0, log, {
      exit: (code) => exits.push(code),
      resources: () => ['PipeWrap', 'PipeWrap', 'ProcessWrap', 'Timeout'],
    });
    vi.advanceTimersByTime(EXIT_HELD_MS - 1);
    expect(exits).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(exits).toEqual([0]);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.fields).toMatchObject({
      event: 'daemon.exit_held',
      code: 0,
      resources: { PipeWrap: 2, ProcessWrap: 1, Timeout: 1 },
    });
    expect(lines[0]?.message).toContain('2 PipeWrap, 1 ProcessWrap');
  });

  it('keeps the exit code of a start that failed', () => {
    vi.useFakeTimers();
    const exits: number[] = [];
    exitWithin(1, fakeLog().log, { ms: 50, exit: (code) => exits.push(code), resources: () => [] });
    vi.advanceTimersByTime(50);
    expect(exits).toEqual([1]);
  });

  it('does not keep an otherwise idle process alive (its timer is unref)', () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    try {
      exitWithin(0, fakeLog().log, { exit: () => expect.fail('exited'), resources: () => [] });
      const timer = spy.mock.results[0]?.value as NodeJS.Timeout;
      expect(timer.hasRef()).toBe(false);
      clearTimeout(timer);
    } finally {
      spy.mockRestore();
    }
  });
});
