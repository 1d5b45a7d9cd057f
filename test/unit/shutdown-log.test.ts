/**
 * `daemon.shutdown_requested` (src/daemon/port.ts's shutdownRequestLog, what main.ts gives the port as
 * onShutdown): each shutdown a client asks for is logged, up to a budget per mode; a client asking in a
 * loop over the socket or POST /v1/shutdown does not write a line per request.
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { shutdownRequestLog } from '../../src/daemon/port.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('shutdownRequestLog', () => {
  it('logs a loop of shutdown requests at info up to a budget, the rest at debug and counted once a minute; a forced one after a loop of graceful ones is still logged', () => {
    vi.useFakeTimers();
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const requested = shutdownRequestLog(log);
    const at = (level: number, event: string, mode?: string) =>
      lines.filter((l) => l.level === level && l.event === event && l.mode === mode).length;
    // Before, 1000 requests wrote 1000 info lines (measured on a real daemon: 2000 lines for 1000 over the
    // socket and 1000 over HTTP).
    for (let i = 0; i < 1000; i++) requested('graceful');
    expect(at(30, 'daemon.shutdown_requested', 'graceful')).toBe(100);
    expect(at(20, 'daemon.shutdown_requested', 'graceful')).toBe(900);
    // The one that cancels the sessions is not hidden by the loop: a budget of its own.
    requested('force');
    requested(undefined);
    expect(at(30, 'daemon.shutdown_requested', 'force')).toBe(1);
    expect(at(30, 'daemon.shutdown_requested')).toBe(1);
    expect(lines.filter((l) => l.event === 'daemon.shutdowns_unlogged')).toEqual([]);
    vi.advanceTimersByTime(60_000);
    expect(lines.filter((l) => l.event === 'daemon.shutdowns_unlogged')).toMatchObject([
      { level: 30, mode: 'graceful', count: 900 },
    ]);
    // The rate refills: a request after a quiet while is logged at info again.
    requested('graceful');
    expect(at(30, 'daemon.shutdown_requested', 'graceful')).toBe(101);
  });
});
