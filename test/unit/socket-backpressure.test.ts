/**
 * A client that does not read its replies (src/adapters/socket-server.ts) on a real Unix socket: the
 * requests it sent in one write wait until it reads, instead of each queueing a reply, and one that
 * holds more than the safety net is closed once, with one last message, however its requests arrived.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Connection, SocketServer } from '../../src/adapters/socket-server.js';
import { busyReply } from '../../src/protocol/dispatch.js';
import { makeTempDir } from '../helpers/resources.js';

const servers: SocketServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function serve(
  replyBytes: number,
  maxPendingWriteBytes: number,
  timers: { partialLineTimeoutMs: number; stallTimeoutMs: number } = {
    partialLineTimeoutMs: 5000,
    stallTimeoutMs: 30_000,
  },
) {
  const path = join(makeTempDir('agentd-unit-sock-'), 's.sock');
  const handled: string[] = [];
  let stalled = 0;
  const server = new SocketServer({
    path,
    maxLineBytes: 1024,
    maxConnections: 8,
    partialLineTimeoutMs: timers.partialLineTimeoutMs,
    idleTimeoutMs: 60_000,
    maxPendingWriteBytes,
    lagBytes: 64 * 1024,
    stallTimeoutMs: timers.stallTimeoutMs,
    lingerMs: 5000,
    onLine: (line: string, connection: Connection) => {
      handled.push(line);
      connection.send({ echo: JSON.parse(line), pad: 'x'.repeat(replyBytes) });
    },
    onLineTooLong: () => {},
    // As the daemon does: the last message says why the connection ends.
    onStalled: (connection) => {
      stalled++;
      connection.send({ type: 'closing', reason: 'stalled' });
    },
    busyLine: busyReply,
  });
  await server.listen();
  servers.push(server);
  return { path, handled, stalled: () => stalled };
}

/** A client that reads nothing until told to; then every reply line, parsed. */
function silentClient(path: string): Promise<{
  socket: Socket;
  read: () => void;
  replies: Record<string, unknown>[];
  closed: Promise<void>;
}> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.pause();
    const replies: Record<string, unknown>[] = [];
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
        replies.push(JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>);
        buffer = buffer.slice(nl + 1);
      }
    });
    const closed = new Promise<void>((done) => socket.on('close', () => done()));
    socket.once('connect', () => resolve({ socket, read: () => socket.resume(), replies, closed }));
    socket.once('error', reject);
  });
}

const requests = (n: number) => Array.from({ length: n }, (_, i) => `${JSON.stringify({ n: i })}\n`).join('');

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('a server that closes', () => {
  it('lets a client read what was queued for it (a last outcome) before the end', async () => {
    const { path } = await serve(1 << 20, 4 << 20);
    const client = await silentClient(path);
    client.socket.write(requests(1));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const server = servers.splice(0)[0] as SocketServer;
    const closing = server.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    client.read();
    await client.closed;
    await closing;
    // The whole megabyte reply, not a cut one.
    expect(client.replies).toHaveLength(1);
    expect(String(client.replies[0]?.pad).length).toBe(1 << 20);
  });
});

describe('a client that does not read its replies', () => {
  it('has the rest of its requests wait until it reads, then gets every reply in order', async () => {
    const { path, handled, stalled } = await serve(5000, 4 << 20);
    const client = await silentClient(path);
    // 3,000 requests in one write (about 30 KB), each answered with 5 KB.
    client.socket.write(requests(3000));
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Answered: what the kernel's buffers and the lag threshold hold, not 15 MB of replies.
    expect(handled.length).toBeGreaterThan(0);
    expect(handled.length).toBeLessThan(300);
    client.read();
    await until(() => client.replies.length === 3000);
    expect(client.replies.map((r) => (r.echo as { n: number }).n)).toEqual(
      Array.from({ length: 3000 }, (_, i) => i),
    );
    expect(stalled()).toBe(0);
    client.socket.destroy();
  });

  it('lagging from its first request on, is closed by the stall timer at a message boundary, not cut off', async () => {
    // The half-line timer (armed until a first whole request) must stop once the request was read.
    const { path, stalled } = await serve(200_000, 4 << 20, {
      partialLineTimeoutMs: 200,
      stallTimeoutMs: 800,
    });
    const client = await silentClient(path);
    client.socket.write(requests(3));
    await until(() => stalled() > 0, 5000);
    client.read();
    await client.closed;
    expect(stalled()).toBe(1);
    // Whole replies, then the last message: the requests after the lag began were not read.
    const kinds = client.replies.map((r) => r.type ?? 'echo');
    expect(kinds.at(-1)).toBe('closing');
    expect(kinds.slice(0, -1).every((k) => k === 'echo')).toBe(true);
    expect(kinds.length - 1).toBeLessThan(3);
  });

  it('is closed once, with one last message, when its unread replies pass the safety net', async () => {
    // Each reply alone is past the net: the first one stalls the client.
    const { path, handled, stalled } = await serve(1 << 20, 100_000);
    const client = await silentClient(path);
    client.socket.write(requests(50));
    await until(() => stalled() > 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(stalled()).toBe(1);
    expect(handled).toHaveLength(1);
    client.read();
    await client.closed;
    expect(client.replies.map((r) => r.type ?? 'echo')).toEqual(['echo', 'closing']);
    // The server goes on serving others (whose reply, as large, is the last one too).
    const other = await silentClient(path);
    other.read();
    other.socket.write(requests(1));
    await other.closed;
    expect(other.replies.map((r) => r.type ?? 'echo')).toEqual(['echo', 'closing']);
    expect(stalled()).toBe(2);
  });
});

describe('a client that ends its side after its requests', () => {
  it('gets every reply owed, the last line without a newline included, then the end', async () => {
    const path = join(makeTempDir('agentd-unit-sock-'), 's.sock');
    const server = new SocketServer({
      path,
      maxLineBytes: 1024,
      maxConnections: 8,
      partialLineTimeoutMs: 5000,
      idleTimeoutMs: 60_000,
      maxPendingWriteBytes: 1 << 20,
      lagBytes: 64 * 1024,
      stallTimeoutMs: 30_000,
      lingerMs: 5000,
      // A wait: answered later, as the session ends.
      onLine: (line, connection) => {
        const settled = connection.owe();
        setTimeout(() => {
          connection.send({ late: JSON.parse(line) });
          settled();
        }, 150);
      },
      onLineTooLong: () => {},
      busyLine: busyReply,
    });
    await server.listen();
    servers.push(server);
    const client = await silentClient(path);
    client.read();
    // As `printf '...' | nc -N` sends it: the requests, then the end of its side.
    client.socket.end('{"n":1}\n{"n":2}');
    await client.closed;
    expect(client.replies).toEqual([{ late: { n: 1 } }, { late: { n: 2 } }]);
  });
});
