/**
 * A stream that ended on a connection that stays open (a followed trigger answered or turned away, a
 * wait's outcome, a followed log to its outcome, a log read that waited for its client) leaves nothing
 * behind on the connection: its close listener goes with it. They stayed until the connection closed,
 * each holding its request, so one long-lived connection sending followed triggers (their request text
 * and inputs up to 16 MiB a line) grew the daemon without bound, even when every one was turned away.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { type Connection, SocketServer } from '../../src/adapters/socket-server.js';
import { MAX_LINE_BYTES } from '../../src/constants.js';
import type { ClientEvent, DaemonEmitted } from '../../src/machines/daemon.machine.js';
import type { DaemonPort } from '../../src/protocol/context.js';
import { busyReply, dispatch } from '../../src/protocol/dispatch.js';
import { Follower } from '../../src/protocol/follower.js';
import type { LogSource, OutputLine } from '../../src/runner/session-log.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import type { BusEvent } from '../../src/sessions/session-bus.js';
import { fakeConnection } from '../helpers/fake-connection.js';
import { makeTempDir } from '../helpers/resources.js';

/** A daemon port with one agent, `demo`: sessions are accepted and run until `end(id)`. */
function fakeDaemon() {
  const followers = new Map<string, Set<(event: BusEvent) => void>>();
  const records = new Map<string, SessionRecord>();
  let next = 0;
  const record = (id: string) =>
    ({ version: 1, id, agent: 'demo', phase: 'running' }) as unknown as SessionRecord;
  const daemon = {
    state: () => 'ready',
    newSessionId: () => (next++).toString(16).padStart(16, '0'),
    makesNoSession: (_id: string, fields: { agent: string }) => fields.agent !== 'demo',
    send: (event: ClientEvent): DaemonEmitted[] => {
      if (event.type !== 'trigger') return [];
      const sessionId = event.sessionId as string;
      if (event.agent !== 'demo') {
        return [{ type: 'trigger.rejected', sessionId, code: 'unknown_agent', reason: 'unknown agent' }];
      }
      records.set(sessionId, record(sessionId));
      return [{ type: 'trigger.accepted', sessionId, queued: false, position: 0 }];
    },
    record: (id: string) => records.get(id),
    readLog: (id: string) => {
      const found = records.get(id);
      return found === undefined ? undefined : { record: found, reader: () => entries([]) };
    },
    follow: (id: string, listener: (event: BusEvent) => void) => {
      const set = followers.get(id) ?? new Set();
      followers.set(id, set);
      set.add(listener);
      return () => set.delete(listener);
    },
    stage: async () => {},
    unstage: () => {},
    log: { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} },
  } as unknown as DaemonPort;
  const end = (id: string) => {
    const ended = { ...record(id), phase: 'finished', outcome: 'succeeded' } as unknown as SessionRecord;
    records.set(id, ended);
    for (const listener of [...(followers.get(id) ?? [])])
      listener({ type: 'outcome', sessionId: id, record: ended });
  };
  return { daemon, end };
}

/** A log source that gives these blocks of lines, one at a time. */
function entries(blocks: OutputLine[][]): LogSource {
  const rest = [...blocks];
  return { next: () => rest.shift(), close: () => {} };
}

function line(seq: number): OutputLine {
  return { seq, time: '2026-12-06T00:00:00.000Z', stream: 'stdout', text: `line ${seq}` };
}

/** A fake connection that keeps its close and drain listeners, and lags while `lag` says so. */
function counted() {
  const closeListeners = new Set<() => void>();
  const drainListeners = new Set<() => void>();
  const state = { lag: false };
  const fake = fakeConnection({
    onClose: (listener: () => void) => {
      closeListeners.add(listener);
      return () => closeListeners.delete(listener);
    },
    onDrain: (listener: () => void) => {
      drainListeners.add(listener);
      return () => drainListeners.delete(listener);
    },
    get lagging() {
      return state.lag;
    },
  } as Partial<Connection>);
  const drain = () => {
    state.lag = false;
    for (const listener of [...drainListeners]) listener();
  };
  return { ...fake, closeListeners, state, drain };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('a stream that ended on a connection that stays open', () => {
  it('leaves no close listener: followed triggers, waits and followed logs, accepted or turned away', async () => {
    const { daemon, end } = fakeDaemon();
    const { connection, sent, closeListeners } = counted();
    const ask = (request: Record<string, unknown>) =>
      dispatch(JSON.stringify({ v: 2, ...request }), connection, daemon);

    // Turned away: the stream ends with the rejection.
    for (let i = 0; i < 10; i++) ask({ id: `r${i}`, type: 'trigger', agent: 'nope', follow: true });
    expect(sent.filter((m) => m.type === 'rejected')).toHaveLength(10);
    expect(closeListeners.size).toBe(0);

    // Accepted, waited for and followed, then ended.
    ask({ id: 't', type: 'trigger', agent: 'demo', follow: true });
    const sessionId = sent.find((m) => m.type === 'accepted')?.sessionId as string;
    ask({ id: 'w', type: 'wait', sessionId });
    ask({ id: 'l', type: 'logs', sessionId, follow: true });
    await flush();
    expect(closeListeners.size).toBeGreaterThan(0);
    end(sessionId);
    await flush();
    expect(sent.filter((m) => m.type === 'outcome').map((m) => m.id)).toEqual(['t', 'w', 'l']);
    expect(closeListeners.size).toBe(0);
  });

  it('leaves no close listener for each block of a log read that waited for its client', async () => {
    const { connection, closeListeners, state, drain } = counted();
    const follower = new Follower(connection, { v: 2 }, '0000000000000001');
    state.lag = true;
    const replayed = follower.replay(entries([[line(1)], [line(2)], [line(3)]]));
    for (let i = 0; i < 3; i++) {
      await flush();
      drain();
      state.lag = true;
    }
    await replayed;
    expect(follower.lastSeq).toBe(3);
    expect(closeListeners.size).toBe(0);
  });
});

describe('one connection sending followed triggers', () => {
  let server: SocketServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('does not keep the request of each once it is answered', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const { daemon } = fakeDaemon();
    const path = join(makeTempDir('agentd-unit-ended-'), 's.sock');
    server = new SocketServer({
      path,
      maxLineBytes: MAX_LINE_BYTES,
      maxConnections: 8,
      partialLineTimeoutMs: 30_000,
      idleTimeoutMs: 60_000,
      maxPendingWriteBytes: 4 * 1024 * 1024,
      lagBytes: 64 * 1024,
      stallTimeoutMs: 30_000,
      lingerMs: 1000,
      onLine: (text, connection) => dispatch(text, connection, daemon),
      onLineTooLong: () => {},
      busyLine: busyReply,
    });
    await server.listen();
    const socket = connect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
    });
    const replies = () =>
      received
        .split('\n')
        .filter(Boolean)
        .map((t) => JSON.parse(t) as { type: string });
    const answered = async (count: number) => {
      for (let i = 0; i < 500 && replies().length < count; i++) await new Promise((r) => setTimeout(r, 10));
      return replies();
    };

    // Each a request text of 1 MiB in base64, for an agent the daemon does not have.
    const text = Buffer.alloc(768 * 1024, 7).toString('base64');
    const count = 32;
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < count; i++) {
      socket.write(
        `${JSON.stringify({ v: 2, id: `t${i}`, type: 'trigger', agent: 'nope', follow: true, request: text })}\n`,
      );
    }
    const got = await answered(count);
    expect(got.map((r) => r.type)).toEqual(Array(count).fill('rejected'));
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    // The connection is open: before the fix it held all 32 MiB of request texts until it closed.
    expect(socket.destroyed).toBe(false);
    expect(grown).toBeLessThan(8 * 1024 * 1024);
    socket.destroy();
  });
});
