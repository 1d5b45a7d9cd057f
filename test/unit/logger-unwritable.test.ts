/**
 * The daemon's log when stderr takes no writes: a log file on a full disk (ENOSPC), as with `agentd start
 * 2>>/var/log/agentd.log` on the state dir's filesystem. A logging call must never throw: the daemon logs
 * inside its machines' actions, and one that threw stopped the daemon machine (measured on a real daemon
 * whose stderr went to a full 1 MB tmpfs: the trigger under way never got its outcome, every later trigger
 * was rejected `not_accepting` while `status` said ready, and one was left `queued` on disk though its
 * client was told it was rejected). What cannot be written is held, bounded, and written whole and in
 * order once stderr takes writes again, followed by one line saying how many were lost.
 */
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor } from 'xstate';
import {
  createLogger,
  LOG_HELD_MAX_BYTES,
  LOG_RETRY_MS,
  type LogFormat,
  LogSink,
  logUnwrittenReason,
} from '../../src/adapters/logger.js';
import { EXIT, exitCodeForStatus } from '../../src/cli/exit-codes.js';
import { createDaemonPort } from '../../src/daemon/port.js';
import { AGENTS, Fakes, settle } from '../helpers/machine-fakes.js';

/** What fd 2 does with a write: take it, take only part of it, or fail with ENOSPC. */
const stderr = {
  mode: 'ok' as 'ok' | 'full' | 'half' | 'busy',
  out: [] as string[],
  attempts: 0,
  busyFor: 0,
};

function enospc(): Error {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
}

vi.mock('node:fs', async (original) => {
  const real = await original<typeof import('node:fs')>();
  const writeSync = ((fd: number, data: unknown, ...rest: unknown[]) => {
    if (fd !== 2) return (real.writeSync as (...args: unknown[]) => number)(fd, data, ...rest);
    stderr.attempts++;
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(String(data));
    if (stderr.mode === 'full') throw enospc();
    if (stderr.mode === 'busy' && stderr.busyFor-- > 0)
      throw Object.assign(new Error('EAGAIN: resource temporarily unavailable, write'), { code: 'EAGAIN' });
    if (stderr.mode === 'half') {
      // Room for part of it: the filesystem takes what fits, the next write finds none.
      stderr.mode = 'full';
      const part = Math.max(1, Math.floor(bytes.length / 2));
      stderr.out.push(bytes.subarray(0, part).toString());
      return part;
    }
    stderr.out.push(bytes.toString());
    return bytes.length;
  }) as typeof real.writeSync;
  return { ...real, default: { ...real, writeSync }, writeSync };
});

beforeEach(() => {
  stderr.mode = 'ok';
  stderr.out = [];
  stderr.attempts = 0;
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

async function logger(format: LogFormat) {
  // Before the fix the JSON lines went through pino.destination on fd 2: that one writes to /dev/full,
  // which fails every write with ENOSPC as a full filesystem does.
  const real = pino.destination.bind(pino);
  vi.spyOn(pino, 'destination').mockImplementation(() => real({ dest: '/dev/full', sync: true }));
  return createLogger(format, 'info');
}

describe.each(['json', 'pretty'] as const)('the daemon log (%s) on a full disk', (format) => {
  it('never throws, tries no write per line, and writes what it held whole once there is room', async () => {
    const log = await logger(format);
    log.info({ event: 'before' }, 'line before');
    stderr.mode = 'full';
    const total = 10_000;
    for (let i = 0; i < total; i++)
      expect(() => log.info({ event: 'probe', n: i, pad: 'x'.repeat(200) }, `probe ${i}`)).not.toThrow();
    // One failed write, then nothing until the retry: no write per line while it is full.
    expect(stderr.attempts).toBeLessThanOrEqual(2);
    vi.advanceTimersByTime(LOG_RETRY_MS * 3);
    expect(stderr.attempts).toBeLessThanOrEqual(5);

    stderr.mode = 'ok';
    vi.advanceTimersByTime(LOG_RETRY_MS);
    const text = stderr.out.join('');
    const lines = text.split('\n').filter((l) => l !== '');
    expect(lines[0]).toContain('line before');
    const probes = lines.filter((l) => /probe \d+/.test(l));
    // What was held came out whole and in order, from the first line on.
    const numbers = probes.map((l) => Number(/probe (\d+)/.exec(l)?.[1]));
    expect(numbers).toEqual(numbers.map((_, i) => i));
    expect(numbers.length).toBeGreaterThan(0);
    expect(numbers.length).toBeLessThan(total);
    if (format === 'json') for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
    // The rest are said lost, in one line after them.
    const note = lines[lines.length - 1] as string;
    // (A pretty record takes several lines: those are counted.)
    if (format === 'json') expect(note).toContain(`${total - numbers.length} log line(s)`);
    else expect(Number(/(\d+) log line\(s\)/.exec(note)?.[1])).toBeGreaterThanOrEqual(total - numbers.length);
    expect(note).toMatch(
      /were not written: stderr took no writes \(ENOSPC\) from \S+ to \S+: the filesystem/,
    );
    if (format === 'json')
      expect(JSON.parse(note)).toMatchObject({
        level: 40,
        event: 'daemon.log_lost',
        lines: total - numbers.length,
        code: 'ENOSPC',
      });
    // And it goes on as usual.
    log.info({ event: 'after' }, 'line after');
    expect(stderr.out.join('')).toMatch(/line after/);
  });
});

describe('LogSink', () => {
  it('holds at most LOG_HELD_MAX_BYTES while the destination takes nothing', () => {
    const sink = new LogSink(2, () => 'lost\n');
    stderr.mode = 'full';
    for (let i = 0; i < 50_000; i++) sink.write(`${'y'.repeat(99)}\n`);
    expect(sink.pending).toBeLessThanOrEqual(LOG_HELD_MAX_BYTES);
    expect(sink.pending).toBeGreaterThan(LOG_HELD_MAX_BYTES - 100);
  });

  it('goes on with a line a write cut short, so no line is left cut', () => {
    const sink = new LogSink(2, (lost) => `lost ${lost.lines}\n`);
    sink.write('first line\n');
    stderr.mode = 'half';
    sink.write('second line\n');
    sink.write('third line\n');
    expect(stderr.out.join('')).toBe('first line\nsecond');
    stderr.mode = 'ok';
    vi.advanceTimersByTime(LOG_RETRY_MS);
    // Nothing was dropped: no note.
    expect(stderr.out.join('')).toBe('first line\nsecond line\nthird line\n');
  });

  it('writes what it holds at flush (the exit) when the destination takes it', () => {
    const sink = new LogSink(2, () => 'lost\n');
    stderr.mode = 'full';
    sink.write('held\n');
    stderr.mode = 'ok';
    sink.flush();
    expect(stderr.out.join('')).toBe('held\n');
  });

  it('waits at the exit for a pipe that takes nothing for a moment (EAGAIN), not for ever', () => {
    const sink = new LogSink(2, () => 'lost\n');
    stderr.mode = 'busy';
    stderr.busyFor = 3;
    sink.write('the last line\n');
    expect(stderr.out).toEqual([]);
    sink.flush();
    expect(stderr.out.join('')).toBe('the last line\n');
    stderr.busyFor = Number.POSITIVE_INFINITY;
    sink.write('never taken\n');
    sink.flush();
    expect(sink.pending).toBe('never taken\n'.length);
  });
});

/**
 * `agentd status` while the log cannot be written: before, the daemon counted what it dropped in a
 * `daemon.log_lost` line nobody could read, and `status` said ready and exited 0, so an operator whose log
 * went silent had no way to tell. It says so now, as a degraded reason (exit 10), while it lasts.
 */
describe('the status of a daemon whose log cannot be written', () => {
  async function portWith(log: Awaited<ReturnType<typeof createLogger>>) {
    const fakes = new Fakes();
    const actor = createActor(fakes.daemon(), { input: { agents: AGENTS, maxSessions: 2 } });
    actor.start();
    await settle();
    expect(actor.getSnapshot().value).toBe('ready');
    return createDaemonPort({
      actor,
      journal: {
        used: () => false,
        record: () => undefined,
        recent: () => [],
        waitingToSeal: () => ({ count: 0, oldest: undefined }),
      } as never,
      reload: async () => {
        throw new Error('no reload here');
      },
      version: '0.0.0-test',
      instanceId: 'test',
      socket: '/tmp/none.sock',
      // A child, as the daemon's modules log through: it answers for the root's stderr.
      log: log.child({ module: 'port' }),
    });
  }

  it.each(['json', 'pretty'] as const)(
    'says why and exits 10 while it lasts, and clears once stderr takes writes (%s)',
    async (format) => {
      vi.useRealTimers();
      const log = await logger(format);
      const port = await portWith(log);
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
      log.info({ event: 'before' }, 'line before');
      expect(port.status().degraded).toBeUndefined();

      stderr.mode = 'full';
      log.info({ event: 'first' }, 'first line that fails');
      // A write that failed a moment ago (a pipe busy for an instant) is not said yet.
      expect(port.status().degraded).toBeUndefined();
      vi.advanceTimersByTime(LOG_RETRY_MS);
      for (let i = 0; i < 10_000; i++) log.info({ event: 'probe', n: i, pad: 'x'.repeat(200) }, `probe ${i}`);
      const status = port.status();
      expect(status.state).toBe('ready');
      expect(status.degraded).toMatch(
        /^the daemon's log could not be written since \S+Z: [1-9]\d* line\(s\) lost, \d+ bytes held to write once it can \(ENOSPC\); free space on the filesystem stderr is written to$/,
      );
      expect(exitCodeForStatus(status)).toBe(EXIT.degraded);

      stderr.mode = 'ok';
      vi.advanceTimersByTime(LOG_RETRY_MS);
      expect(port.status().degraded).toBeUndefined();
      expect(exitCodeForStatus(port.status())).not.toBe(EXIT.degraded);
    },
  );

  it('names the error and where stderr goes for a closed pipe', () => {
    const since = new Date();
    expect(logUnwrittenReason({ code: 'EPIPE', since, lostLines: 0, heldBytes: 2 })).toBe(
      `the daemon's log could not be written since ${since.toISOString()}: no line lost yet, 2 bytes held to write once it can (EPIPE); fix where stderr goes`,
    );
  });
});
