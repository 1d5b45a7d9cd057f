/**
 * Streams one connection may hold open (src/protocol/streams.ts): waits, follows, log reads and
 * subscriptions each keep a listener on the daemon until their session ends, so a connection has at
 * most MAX_STREAMS_PER_CONNECTION at once; beyond, a request gets a retryable `busy` error, and a
 * stream that ended gives its place back. Through dispatch, with a fake connection and daemon port.
 */
import { describe, expect, it } from 'vitest';
import type { DaemonPort } from '../../src/protocol/context.js';
import { dispatch } from '../../src/protocol/dispatch.js';
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
