import { setImmediate } from 'node:timers';
import { describe, expect, it } from 'vitest';
import type { Connection } from '../../src/adapters/socket-server.js';
import { Follower } from '../../src/protocol/follower.js';
import type { OutputLine } from '../../src/runner/session-log.js';

/** A connection that lags once more than 64 KiB were written to it and never drains. */
function fakeConnection() {
  const written: string[] = [];
  let bytes = 0;
  const connection: Connection = {
    id: 1,
    send: (message) => {
      written.push(JSON.stringify(message));
    },
    sendRaw: (data) => {
      bytes += data.length;
      written.push(Buffer.from(data).toString());
    },
    get lagging() {
      return bytes > 64 * 1024;
    },
    onDrain: () => () => {},
    owe: () => () => {},
    owed: 0,
    close: () => {},
    onClose: () => () => {},
    closed: false,
  };
  return { connection, written, bytes: () => bytes };
}

describe('Follower', () => {
  it('lines handed over one by one go out once they add up, so a lagging client skips the rest', async () => {
    const { connection, bytes } = fakeConnection();
    const follower = new Follower(connection, { v: 2 }, 'session');
    const text = 'x'.repeat(10_000);
    for (let seq = 1; seq <= 1000; seq++) {
      const line: OutputLine = { seq, time: '2026-12-02T00:00:00.000Z', stream: 'stdout', text };
      follower.lines([line]);
    }
    await new Promise((resolve) => setImmediate(resolve));
    // Written as they added up: about the lag threshold and one line, not all 10 MB in one write.
    expect(bytes()).toBeLessThan(64 * 1024 + 2 * 10_100);
    expect(follower.lastSeq).toBe(1000);
  });

  it('a batch over 256 KiB is cut: one marker for the oldest lines, then the newest that fit, in order', () => {
    const { connection, written, bytes } = fakeConnection();
    const follower = new Follower(connection, { v: 2 }, 'session');
    const lines = batch(1000, 'y'.repeat(1000));
    follower.lines(lines);
    const replies = written
      .flatMap((data) => data.split('\n').filter(Boolean))
      .map((text) => JSON.parse(text));
    const [marker, ...rest] = replies;
    const firstSent = rest[0].seq as number;
    expect(marker.skipped).toMatchObject({ fromSeq: 1, toSeq: firstSent - 1, count: firstSent - 1 });
    expect(rest.map((reply) => reply.seq)).toEqual(range(firstSent, 1000));
    // The newest quarter megabyte of a batch of a megabyte, and not much less.
    expect(bytes()).toBeLessThanOrEqual(256 * 1024 + 1024);
    expect(bytes()).toBeGreaterThan(250 * 1024);
    expect(follower.lastSeq).toBe(1000);
  });

  it('the newest line goes whole even if it alone is over the bound (64 KiB of control characters)', () => {
    const { connection, written } = fakeConnection();
    const follower = new Follower(connection, { v: 2 }, 'session');
    follower.lines(batch(3, '\u0001'.repeat(64 * 1024)));
    const replies = written
      .flatMap((data) => data.split('\n').filter(Boolean))
      .map((text) => JSON.parse(text));
    expect(replies.map((reply) => reply.skipped?.count ?? reply.seq)).toEqual([2, 3]);
    expect(replies[1].line).toBe('\u0001'.repeat(64 * 1024));
  });

  it('a batch under the bound goes whole, without a marker, to every follower', () => {
    const a = fakeConnection();
    const b = fakeConnection();
    const lines = batch(100, 'y'.repeat(1000));
    new Follower(a.connection, { v: 2 }, 'session').lines(lines);
    new Follower(b.connection, { v: 2 }, 'session').lines(lines);
    for (const { written } of [a, b]) {
      const replies = written
        .flatMap((data) => data.split('\n').filter(Boolean))
        .map((text) => JSON.parse(text));
      expect(replies.map((reply) => reply.seq)).toEqual(range(1, 100));
    }
  });
});

function batch(count: number, text: string): OutputLine[] {
  return range(1, count).map((seq) => ({ seq, time: '2026-12-02T00:00:00.000Z', stream: 'stdout', text }));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
