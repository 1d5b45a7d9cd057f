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
    onClose: () => {},
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
});
