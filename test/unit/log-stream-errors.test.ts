import { describe, expect, it } from 'vitest';
import { logStream, MAX_STREAMS } from '../../src/http/log-stream.js';
import type { DaemonPort } from '../../src/protocol/context.js';
import type { SessionRecord } from '../../src/sessions/records.js';

/** A daemon whose stored log fails to read (a disk error past what the reader absorbs). */
function failingLogDaemon(closed: { count: number }): DaemonPort {
  const record = { id: '0123456789abcdef', agent: 'demo' } as SessionRecord;
  // Only what logStream touches.
  return {
    readLog: () => ({
      record,
      reader: () => ({
        next() {
          throw new Error('EIO: i/o error, read');
        },
        close() {
          closed.count += 1;
        },
      }),
    }),
    record: () => record,
    follow: () => () => {},
  } as unknown as DaemonPort;
}

describe('a log stream whose stored log fails to read', () => {
  it('errors and gives back its reader and its place among the open streams', async () => {
    const closed = { count: 0 };
    const daemon = failingLogDaemon(closed);
    for (let i = 0; i < MAX_STREAMS + 1; i += 1) {
      const response = logStream(daemon, '0123456789abcdef', { after: 0, follow: true, format: 'ndjson' });
      expect(response).toBeInstanceOf(Response);
      await expect((response as Response).text()).rejects.toThrow(/EIO/);
    }
    expect(closed.count).toBe(MAX_STREAMS + 1);
  });
});
