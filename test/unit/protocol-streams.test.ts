/**
 * Streams one connection may hold open (src/protocol/streams.ts): waits, follows, log reads and
 * subscriptions each keep a listener on the daemon until their session ends, so a connection has at
 * most MAX_STREAMS_PER_CONNECTION at once; beyond, a request gets a retryable `busy` error, and a
 * stream that ended gives its place back. Through dispatch, with a fake connection and daemon port.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DaemonPort } from '../../src/protocol/context.js';
import { dispatch } from '../../src/protocol/dispatch.js';
import { HEARTBEAT_MS } from '../../src/protocol/limits.js';
import { MAX_STREAMS_PER_CONNECTION } from '../../src/protocol/streams.js';
import type { BusEvent } from '../../src/sessions/session-bus.js';
import { fakeConnection } from '../helpers/fake-connection.js';

const SESSION = '0123456789abcdef';

function fakes() {
  const { connection, sent } = fakeConnection({ sendRaw: () => {} });
  const listeners = new Set<(event: BusEvent) => void>();
  const record = { id: SESSION, agent: 'demo' } as Record<string, unknown>;
  const daemon = {
    record: () => record,
    follow: (_id: string, listener: (event: BusEvent) => void) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    log: { error: () => {}, warn: () => {} },
  } as unknown as DaemonPort;
  const end = () => {
    record.outcome = 'succeeded';
    for (const listener of [...listeners]) listener({ type: 'outcome', record } as unknown as BusEvent);
    delete record.outcome;
  };
  return { connection, daemon, sent, listeners, end };
}

const wait = (n: number) => JSON.stringify({ v: 2, id: `w${n}`, type: 'wait', sessionId: SESSION });

describe('streams per connection', () => {
  it('are bounded: the one past the limit gets busy, and an ended one gives its place back', () => {
    const { connection, daemon, sent, listeners, end } = fakes();
    for (let n = 0; n < MAX_STREAMS_PER_CONNECTION; n++) dispatch(wait(n), connection, daemon);
    expect(sent).toEqual([]);
    expect(listeners.size).toBe(MAX_STREAMS_PER_CONNECTION);

    dispatch(wait(999), connection, daemon);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ id: 'w999', type: 'error', code: 'busy', retryable: true });
    expect(String(sent[0]?.message)).toContain(`${MAX_STREAMS_PER_CONNECTION} waits, follows`);
    expect(listeners.size).toBe(MAX_STREAMS_PER_CONNECTION);

    // The session ends: every wait gets its outcome, and the connection may wait again.
    end();
    expect(sent.filter((m) => m.type === 'outcome')).toHaveLength(MAX_STREAMS_PER_CONNECTION);
    expect(listeners.size).toBe(0);
    sent.length = 0;
    for (let n = 0; n < MAX_STREAMS_PER_CONNECTION; n++) dispatch(wait(n), connection, daemon);
    expect(sent).toEqual([]);
  });

  it('count per connection: another connection has its own', () => {
    const one = fakes();
    for (let n = 0; n <= MAX_STREAMS_PER_CONNECTION; n++) dispatch(wait(n), one.connection, one.daemon);
    const two = fakes();
    dispatch(wait(0), two.connection, one.daemon);
    expect(two.sent).toEqual([]);
    expect(two.connection.owed).toBe(1);
  });
});

describe('reloads not yet answered', () => {
  it('count with the streams: a connection pipelining reloads gets busy past the limit, not a queue without end', async () => {
    const { connection, sent } = fakeConnection();
    let reloads = 0;
    const answers: (() => void)[] = [];
    const daemon = {
      // Each reload waits for the ones before it (src/daemon/reload.ts): held here until released.
      reload: () => {
        reloads++;
        return new Promise<object>((resolve) => answers.push(() => resolve({ changed: [] })));
      },
      // A running daemon: a failed one answers `failed` without reloading (64a60de).
      state: () => 'ready',
      log: { error: () => {}, warn: () => {} },
    } as unknown as DaemonPort;
    const reload = (n: number) => JSON.stringify({ v: 2, id: `r${n}`, type: 'reload' });
    for (let n = 0; n < MAX_STREAMS_PER_CONNECTION + 10; n++) dispatch(reload(n), connection, daemon);
    expect(reloads).toBe(MAX_STREAMS_PER_CONNECTION);
    expect(sent).toHaveLength(10);
    expect(sent.every((m) => m.type === 'error' && m.code === 'busy')).toBe(true);
    // Answered, they make room again.
    for (const answer of answers.splice(0)) answer();
    await new Promise((resolve) => setImmediate(resolve));
    expect(connection.owed).toBe(0);
    dispatch(reload(999), connection, daemon);
    expect(reloads).toBe(MAX_STREAMS_PER_CONNECTION + 1);
  });
});

describe('heartbeats', () => {
  const SECOND = 1000;

  function heartbeatFakes(overrides: Partial<Record<string, unknown>> = {}) {
    const base = fakes();
    const events: Record<string, unknown>[] = [];
    const log = {
      record: () => ({ id: SESSION, agent: 'demo' }),
      reader: () => ({ next: () => undefined, close: () => {} }),
    };
    Object.assign(base.daemon, {
      heartbeatMs: SECOND,
      readLog: () => log,
      newSessionId: () => SESSION,
      send: (event: Record<string, unknown>) => {
        events.push(event);
        return [{ type: 'trigger.accepted', sessionId: SESSION, queued: false, position: 0 }];
      },
      ...overrides,
    });
    const beats = () => base.sent.filter((m) => m.type === 'heartbeat');
    return { ...base, events, beats };
  }

  afterEach(() => {
    vi.useRealTimers();
  });

  it('a wait that asks gets one every heartbeatMs, with its id, until its outcome', () => {
    vi.useFakeTimers();
    const { connection, daemon, sent, beats, end } = heartbeatFakes();
    dispatch(
      JSON.stringify({ v: 2, id: 'w', type: 'wait', sessionId: SESSION, heartbeat: true }),
      connection,
      daemon,
    );
    vi.advanceTimersByTime(3.5 * SECOND);
    expect(beats()).toEqual([
      { v: 2, id: 'w', type: 'heartbeat' },
      { v: 2, id: 'w', type: 'heartbeat' },
      { v: 2, id: 'w', type: 'heartbeat' },
    ]);
    end();
    expect(sent.at(-1)).toMatchObject({ id: 'w', type: 'outcome' });
    vi.advanceTimersByTime(5 * SECOND);
    expect(beats()).toHaveLength(3);
  });

  it("default to HEARTBEAT_MS, in the request's version", async () => {
    vi.useFakeTimers();
    const { connection, daemon, beats } = heartbeatFakes({ heartbeatMs: undefined });
    dispatch(
      JSON.stringify({ v: 1, type: 'logs', sessionId: SESSION, follow: true, heartbeat: true }),
      connection,
      daemon,
    );
    await vi.advanceTimersByTimeAsync(HEARTBEAT_MS - 1);
    expect(beats()).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(beats()).toEqual([{ v: 1, type: 'heartbeat' }]);
  });

  it('none for a request that did not ask (older clients), nor for a read of the log alone', () => {
    vi.useFakeTimers();
    const { connection, daemon, beats } = heartbeatFakes();
    dispatch(JSON.stringify({ v: 2, type: 'wait', sessionId: SESSION }), connection, daemon);
    dispatch(JSON.stringify({ v: 2, type: 'logs', sessionId: SESSION, follow: true }), connection, daemon);
    dispatch(JSON.stringify({ v: 2, type: 'trigger', agent: 'demo', follow: true }), connection, daemon);
    dispatch(JSON.stringify({ v: 2, type: 'logs', sessionId: SESSION, heartbeat: true }), connection, daemon);
    vi.advanceTimersByTime(10 * SECOND);
    expect(beats()).toEqual([]);
  });

  it('a follow of the logs and a followed trigger get them; the trigger does not hand the field on', async () => {
    vi.useFakeTimers();
    const { connection, daemon, beats, events } = heartbeatFakes();
    dispatch(
      JSON.stringify({ v: 2, id: 'l', type: 'logs', sessionId: SESSION, follow: true, heartbeat: true }),
      connection,
      daemon,
    );
    dispatch(
      JSON.stringify({ v: 2, id: 't', type: 'trigger', agent: 'demo', follow: true, heartbeat: true }),
      connection,
      daemon,
    );
    await vi.advanceTimersByTimeAsync(SECOND);
    expect(
      beats()
        .map((m) => m.id)
        .sort(),
    ).toEqual(['l', 't']);
    expect(events).toEqual([{ type: 'trigger', sessionId: SESSION, agent: 'demo' }]);
  });

  it('are not sent while the client lags (it has replies to read), nor after the connection closed', () => {
    vi.useFakeTimers();
    let lagging = true;
    let closed = false;
    const { connection, sent } = fakeConnection({
      get lagging() {
        return lagging;
      },
      get closed() {
        return closed;
      },
    });
    const { daemon } = heartbeatFakes();
    dispatch(JSON.stringify({ v: 2, type: 'wait', sessionId: SESSION, heartbeat: true }), connection, daemon);
    vi.advanceTimersByTime(3 * SECOND);
    expect(sent).toEqual([]);
    lagging = false;
    vi.advanceTimersByTime(SECOND);
    expect(sent).toHaveLength(1);
    closed = true;
    vi.advanceTimersByTime(3 * SECOND);
    expect(sent).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
