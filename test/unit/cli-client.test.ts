/**
 * The CLI's connection to the daemon when the daemon goes away mid-request: a connection reset
 * (the daemon died or closed with the request unread: ECONNRESET on the client's read) is a lost
 * connection like any other, never an unhandled 'error' event that kills the client with a stack
 * trace, and `wait` and the follow of `trigger`/`logs --follow` look for the daemon again.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DaemonClient } from '../../src/cli/client.js';
import { followSession } from '../../src/cli/session-follow.js';
import { waitForSession } from '../../src/cli/session-wait.js';
import { closeFakeDaemons, replyLine, type ScriptedDaemon, scriptedDaemon } from '../helpers/fake-daemon.js';

const ID = '0123456789abcdef';
const RECORD = {
  version: 1,
  id: ID,
  agent: 'a',
  repo: 'git://127.0.0.1/x.git',
  acceptedAt: '2026-01-01T00:00:00.000Z',
  phase: 'finished',
  phases: [{ phase: 'finished', at: '2026-01-01T00:00:00.005Z' }],
  outcome: 'succeeded',
};

afterEach(closeFakeDaemons);

/**
 * A daemon that reads nothing until told (`pauseOnConnect`): its `connections` in order of arrival, so a
 * test can reset one (destroy it while the client's request is unread) or answer it.
 */
function fakeDaemon(): Promise<ScriptedDaemon> {
  return scriptedDaemon(() => {}, { pauseOnConnect: true });
}

/** A daemon that takes every connection and closes it at once. */
function closingDaemon(): Promise<ScriptedDaemon> {
  return scriptedDaemon(() => {}, { onConnection: (socket) => socket.destroy() });
}

/** The client's socket (private): to know its request is in the daemon's queue, and what it saw. */
function socketOf(client: DaemonClient): Socket {
  return (client as unknown as { socket: Socket }).socket;
}

/**
 * Resets the connection from the daemon's side once the client's request sits unread in its queue:
 * Linux answers the client's read with ECONNRESET. Resolves with the error code the client's socket saw.
 */
async function reset(client: DaemonClient, daemonSide: Socket): Promise<string | undefined> {
  const socket = socketOf(client);
  let code: string | undefined;
  socket.on('error', (error: NodeJS.ErrnoException) => {
    code = error.code;
  });
  while (socket.bytesWritten === 0 || socket.writableLength > 0) await sleep(5);
  daemonSide.destroy();
  await new Promise((resolve) => socket.once('close', resolve));
  return code;
}

/** Answers a connection: reads its request and writes the replies. */
function answer(socket: Socket, replies: object[]): void {
  socket.resume();
  socket.once('data', () => {
    for (const reply of replies) socket.write(replyLine(reply));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('the CLI client when the daemon resets the connection', () => {
  it('a reset ends the connection as a closed one: no error escapes', async () => {
    const daemon = await fakeDaemon();
    const client = await DaemonClient.connect(daemon.path);
    client.send({ type: 'status' });
    const pending = client.next();
    expect(await reset(client, await daemon.next())).toBe('ECONNRESET');
    expect(await pending).toBeUndefined();
    // Asking again after the loss is answered at once, and a write on the dead socket throws nothing.
    expect(await client.request({ type: 'status' })).toBeUndefined();
    client.close();
  });

  it('wait looks for the daemon again after a reset and gets the outcome', async () => {
    const daemon = await fakeDaemon();
    const client = await DaemonClient.connect(daemon.path);
    let lost = 0;
    const result = waitForSession({
      socket: daemon.path,
      sessionId: ID,
      client,
      onLost: () => lost++,
    });
    expect(await reset(client, await daemon.next())).toBe('ECONNRESET');
    answer(await daemon.next(), [{ type: 'outcome', sessionId: ID, record: RECORD }]);
    expect(await result).toEqual({ kind: 'outcome', record: RECORD });
    expect(lost).toBe(1);
  });

  it('wait ends with bad_reply at once on an outcome reply whose record has no outcome', async () => {
    const daemon = await fakeDaemon();
    const result = waitForSession({ socket: daemon.path, sessionId: ID });
    const { outcome: _outcome, ...running } = RECORD;
    answer(await daemon.next(), [
      { type: 'outcome', sessionId: ID, record: { ...running, phase: 'running' } },
    ]);
    // Before, it was taken for a lost connection: the wait looked for the daemon again for 60 s.
    expect(await Promise.race([result, sleep(2000).then(() => 'still waiting')])).toMatchObject({
      kind: 'error',
      reply: { code: 'bad_reply' },
    });
    expect(daemon.connections).toHaveLength(1);
  });

  it('a follow resumes after the last line it showed once a reset daemon answers again', async () => {
    const daemon = await fakeDaemon();
    const client = await DaemonClient.connect(daemon.path);
    const lines: string[] = [];
    const first = await daemon.next();
    // The first line arrives (the follow sends its request on the connection it is given); the daemon then
    // dies with the request unread.
    first.write(replyLine({ type: 'output', sessionId: ID, seq: 1, line: 'one' }));
    const result = followSession({
      socket: daemon.path,
      sessionId: ID,
      afterSeq: 0,
      client,
      onOutput: (reply) => lines.push(reply.line),
    });
    await until(() => lines.length === 1);
    expect(await reset(client, first)).toBe('ECONNRESET');
    const second = await daemon.next();
    const request = new Promise<string>((resolve) => second.once('data', (chunk) => resolve(String(chunk))));
    answer(second, [
      { type: 'output', sessionId: ID, seq: 2, line: 'two' },
      { type: 'outcome', sessionId: ID, record: RECORD },
    ]);
    expect(JSON.parse(await request)).toMatchObject({
      type: 'logs',
      sessionId: ID,
      after: 1,
      heartbeat: true,
    });
    expect(await result).toEqual({ kind: 'outcome', record: RECORD });
    expect(lines).toEqual(['one', 'two']);
  });

  it('a follow gives up on a daemon that takes every connection and closes it, after the reconnect time', async () => {
    const { path, connections } = await closingDaemon();
    const lost: number[] = [];
    const started = Date.now();
    const result = await followSession({
      socket: path,
      sessionId: ID,
      afterSeq: 0,
      reconnectMs: 1500,
      onOutput: () => {},
      onLost: () => lost.push(Date.now()),
    });
    expect(result.kind).toBe('lost');
    expect(Date.now() - started).toBeLessThan(10_000);
    // Said once, not once a connection.
    expect(lost).toHaveLength(1);
    expect(connections.length).toBeGreaterThan(1);
  });
});

describe('the CLI client when the wall clock is set back', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a follow still gives up after the reconnect time, timed by the steady clock', async () => {
    const { path } = await closingDaemon();
    const wall = Date.now;
    let stepped = false;
    // Once the follow has lost the daemon, the wall clock goes back two hours.
    vi.spyOn(Date, 'now').mockImplementation(() => wall() - (stepped ? 2 * 3_600_000 : 0));
    const result = followSession({
      socket: path,
      sessionId: ID,
      afterSeq: 0,
      reconnectMs: 1000,
      onOutput: () => {},
      onLost: () => {
        stepped = true;
      },
    });
    const gaveUp = await Promise.race([result, sleep(8000).then(() => 'still waiting' as const)]);
    expect(gaveUp).toMatchObject({ kind: 'lost' });
  });
});

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await sleep(5);
  if (!check()) throw new Error('never happened');
}
