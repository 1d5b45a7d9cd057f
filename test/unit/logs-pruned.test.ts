/**
 * A `logs` request whose session history lets go of (retention) while its log is replayed to a slow
 * client: the handler finds no log after the replay, and must still send a last reply (the CLI waits
 * for one without a timeout). Through dispatch, with a fake connection and daemon port.
 */
import { setImmediate } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { DaemonPort } from '../../src/protocol/context.js';
import { dispatch } from '../../src/protocol/dispatch.js';
import { sealedLogHint } from '../../src/protocol/sealed-log.js';
import type { LogSource, OutputLine } from '../../src/runner/session-log.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import { fakeConnection } from '../helpers/fake-connection.js';

const SESSION = '0123456789abcdef';

function line(seq: number): OutputLine {
  return { seq, time: '2026-12-02T00:00:00.000Z', stream: 'stdout', text: `line ${seq}` };
}

/** A client that lags after the first block until `drain()`, and a port whose log is gone after one read. */
function fakes(record: Record<string, unknown>) {
  const drainListeners = new Set<() => void>();
  let lagging = false;
  const { connection, sent } = fakeConnection({
    sendRaw: (data) => {
      for (const text of Buffer.from(data).toString().split('\n').filter(Boolean))
        sent.push(JSON.parse(text));
      lagging = true;
    },
    get lagging() {
      return lagging;
    },
    onDrain: (listener) => {
      drainListeners.add(listener);
      return () => drainListeners.delete(listener);
    },
  });
  let reads = 0;
  const reader = (): LogSource => {
    const blocks = [[line(1)], [line(2)]];
    return { next: () => blocks.shift(), close: () => {} };
  };
  const daemon = {
    // Pruned from the index once the replay has begun: the second read finds nothing.
    readLog: () => (reads++ === 0 ? { record: record as unknown as SessionRecord, reader } : undefined),
    record: () => undefined,
    follow: () => () => {},
    log: { error: () => {}, warn: () => {} },
  } as unknown as DaemonPort;
  const drain = async () => {
    for (let n = 0; n < 5; n++) {
      lagging = false;
      for (const listener of [...drainListeners]) listener();
      await setImmediate();
    }
  };
  return { connection, daemon, sent, drain, reads: () => reads };
}

const request = (follow: boolean) =>
  JSON.stringify({ v: 2, id: 'l1', type: 'logs', sessionId: SESSION, ...(follow ? { follow } : {}) });

describe('logs of a session pruned while its log is replayed', () => {
  for (const follow of [false, true]) {
    it(`ends with the finished session's outcome${follow ? ' (following)' : ''}`, async () => {
      const { connection, daemon, sent, drain, reads } = fakes({
        id: SESSION,
        agent: 'demo',
        outcome: 'succeeded',
      });
      dispatch(request(follow), connection, daemon);
      await setImmediate();
      expect(sent.map((m) => m.seq)).toEqual([1]);
      await drain();
      expect(reads()).toBe(2);
      expect(sent.map((m) => m.seq ?? m.type)).toEqual([1, 2, 'outcome']);
      expect(sent.at(-1)).toMatchObject({
        id: 'l1',
        type: 'outcome',
        sessionId: SESSION,
        outcome: 'succeeded',
        record: { id: SESSION, outcome: 'succeeded' },
      });
      expect(connection.owed).toBe(0);
    });
  }

  it('following a session that had not ended and is no longer kept: an unknown_session error', async () => {
    const { connection, daemon, sent, drain } = fakes({ id: SESSION, agent: 'demo' });
    dispatch(request(true), connection, daemon);
    await drain();
    expect(sent.at(-1)).toMatchObject({ id: 'l1', type: 'error', code: 'unknown_session' });
    expect(connection.owed).toBe(0);
  });

  it('of a session beyond history: where its log is, in its sealed record, not "no session"', async () => {
    const { connection, sent } = fakes({ id: SESSION, agent: 'demo' });
    const dir = '/var/lib/agentd/records/demo/0123456789abcdef';
    const daemon = {
      readLog: () => undefined,
      record: () => ({ id: SESSION, agent: 'demo', outcome: 'failed', recordDir: dir }),
      log: { error: () => {}, warn: () => {} },
    } as unknown as DaemonPort;
    dispatch(request(false), connection, daemon);
    await setImmediate();
    expect(sent.at(-1)).toMatchObject({ id: 'l1', type: 'error', code: 'unknown_session' });
    const message = String(sent.at(-1)?.message);
    expect(message).toContain(`${dir}/session.log`);
    expect(message).toContain(`agentd export ${SESSION}`);
    expect(message).not.toContain('no session');
    expect(message).toBe(
      `session ${SESSION} is beyond daemon.history, so its log is no longer kept here: ${sealedLogHint(SESSION, dir, true)}`,
    );
  });

  it('names the sealed log in the words the HTTP log stream uses too: one function', () => {
    const dir = '/var/lib/agentd/records/demo/0123456789abcdef';
    expect(sealedLogHint(SESSION, dir)).toBe(
      `its log is in its sealed record, ${dir}/session.log (\`agentd export ${SESSION}\` packs the record)`,
    );
    // The socket's error carries no outcome: it names `agentd show` as well.
    expect(sealedLogHint(SESSION, dir, true)).toBe(
      `its log is in its sealed record, ${dir}/session.log (\`agentd export ${SESSION}\` packs the record, \`agentd show ${SESSION}\` shows its outcome)`,
    );
  });
});
