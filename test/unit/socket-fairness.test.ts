/**
 * One connection pipelining thousands of requests (src/adapters/socket-server.ts) on a real Unix socket,
 * each request costing the handler a millisecond of synchronous work as a trigger's durable writes do:
 * the server handles a share of them per event-loop turn, so another client, and timers, are served
 * while it goes on; the pipelining client still gets every reply, once and in order.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Connection, SocketServer } from '../../src/adapters/socket-server.js';
import { busyReply } from '../../src/protocol/dispatch.js';
import { makeTempDir, track } from '../helpers/resources.js';

const servers: SocketServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) await server.close();
});

/**
 * Client A in a process of its own (argv: socket, count, pad): writes its requests in one write, reads
 * the replies and prints how many came and how many in order, then exits.
 */
const WRITER = `
const [path, count, pad] = process.argv.slice(-3);
const n = Number(count);
const socket = require('node:net').connect(path);
let buffer = '';
let got = 0;
let inOrder = 0;
socket.on('data', (chunk) => {
  buffer += chunk.toString('utf8');
  for (let nl = buffer.indexOf('\\n'); nl !== -1; nl = buffer.indexOf('\\n')) {
    if (JSON.parse(buffer.slice(0, nl)).n === got) inOrder++;
    got++;
    buffer = buffer.slice(nl + 1);
  }
  if (got >= n) {
    process.stdout.write(got + ' replies, ' + inOrder + ' in order\\n');
    socket.destroy();
  }
});
socket.on('connect', () => {
  let out = '';
  for (let i = 0; i < n; i++) out += JSON.stringify({ client: 'a', n: i, pad }) + '\\n';
  socket.write(out);
});
`;

/** Holds the event loop for ms, as fsync'd writes would. */
function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

/** A server whose handler works 1 ms per request and echoes it; `handled` lists requests as handled. */
async function serve(maxLineBytes = 1024) {
  const path = join(makeTempDir('agentd-unit-fair-'), 's.sock');
  const handled: { client: string; n: number }[] = [];
  const server = new SocketServer({
    path,
    maxLineBytes,
    maxConnections: 8,
    partialLineTimeoutMs: 5000,
    idleTimeoutMs: 60_000,
    maxPendingWriteBytes: 64 << 20,
    lagBytes: 1 << 20,
    stallTimeoutMs: 30_000,
    lingerMs: 5000,
    onLine: (line: string, connection: Connection) => {
      const request = JSON.parse(line) as { client: string; n: number };
      busyWait(1);
      handled.push({ client: request.client, n: request.n });
      connection.send({ client: request.client, n: request.n });
    },
    onLineTooLong: () => {},
    busyLine: busyReply,
  });
  await server.listen();
  servers.push(server);
  return { path, handled };
}

/** A client that reads every reply line as it comes and calls onReply with it. */
function lineClient(path: string, onReply: (reply: { client: string; n: number }) => void) {
  return new Promise<{ socket: Socket; closed: Promise<void> }>((resolve, reject) => {
    const socket = connect(path);
    sockets.push(socket);
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
        onReply(JSON.parse(buffer.slice(0, nl)) as { client: string; n: number });
        buffer = buffer.slice(nl + 1);
      }
    });
    const closed = new Promise<void>((done) => socket.on('close', () => done()));
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

async function until(check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const requests = (client: string, n: number, pad = '') =>
  Array.from({ length: n }, (_, i) => `${JSON.stringify({ client, n: i, pad })}\n`).join('');

/** Checks that A got replies 0..n-1, each once and in order. */
function expectAll(replies: number[], n: number): void {
  expect(replies).toHaveLength(n);
  expect(replies.every((value, i) => value === i)).toBe(true);
}

describe('one connection pipelining thousands of requests', () => {
  it('in one write does not keep another client or a timer waiting until it is done', {
    timeout: 60_000,
  }, async () => {
    const n = 3000;
    const { path, handled } = await serve();
    const aReplies: number[] = [];
    let aRepliesWhenB = -1;
    const a = await lineClient(path, (reply) => aReplies.push(reply.n));
    const b = await lineClient(path, () => {
      aRepliesWhenB = aReplies.length;
    });
    // About 60 KB: one read of the server's, 3 s of work at 1 ms a request.
    a.socket.write(requests('a', n));
    b.socket.write(`${JSON.stringify({ client: 'b', n: 0 })}\n`);
    let aHandledWhenTimer = -1;
    setTimeout(() => {
      aHandledWhenTimer = handled.filter((h) => h.client === 'a').length;
    }, 20);
    await until(() => aReplies.length === n && aRepliesWhenB !== -1);
    const aHandledWhenB = handled.findIndex((h) => h.client === 'b');
    console.log(
      `A handled when B was: ${aHandledWhenB}; A's replies when B's arrived: ${aRepliesWhenB}; A handled when a 20 ms timer fired: ${aHandledWhenTimer} (of ${n})`,
    );
    // B was served while A still had most of its requests to go (the old server: after all of them).
    expect(aHandledWhenB).toBeLessThan(n / 10);
    expect(aRepliesWhenB).toBeLessThan(n / 2);
    expect(aHandledWhenTimer).toBeGreaterThanOrEqual(0);
    expect(aHandledWhenTimer).toBeLessThan(n / 2);
    expectAll(aReplies, n);
    expect(handled.filter((h) => h.client === 'a').map((h) => h.n)).toEqual(aReplies);
  });

  it('in long lines from another process, many reads a turn, does not either', {
    timeout: 60_000,
  }, async () => {
    // 2 KB requests, as triggers with long fields: about 30 in each 64 KiB read. A writes from its own
    // process, so the kernel's buffer fills again while the server works, and libuv hands the server
    // several reads in one turn (in this process the writer could not refill it meanwhile).
    const n = 2000;
    const { path, handled } = await serve(4096);
    const writer = track.process(
      spawn(process.execPath, ['-e', WRITER, path, String(n), 'p'.repeat(2000)], {
        detached: true,
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    let out = '';
    writer.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
    });
    const exited = new Promise<number | null>((resolve) => writer.on('exit', resolve));
    // Once the server has begun on A's requests.
    await until(() => handled.length > 0);
    let bAnswered = false;
    const b = await lineClient(path, () => {
      bAnswered = true;
    });
    b.socket.write(`${JSON.stringify({ client: 'b', n: 0 })}\n`);
    expect(await exited).toBe(0);
    await until(() => bAnswered);
    const aHandledWhenB = handled.findIndex((h) => h.client === 'b');
    console.log(
      `long lines: A handled when B was: ${aHandledWhenB} (of ${n}); A's process read: ${out.trim()}`,
    );
    expect(aHandledWhenB).toBeLessThan(n / 10);
    // Every reply, once and in order.
    expect(out.trim()).toBe(`${n} replies, ${n} in order`);
  });

  it('and then ending its side, the last line without a newline, gets every reply and then the end', {
    timeout: 60_000,
  }, async () => {
    const n = 1000;
    const { path } = await serve();
    const aReplies: number[] = [];
    const a = await lineClient(path, (reply) => aReplies.push(reply.n));
    // The end arrives while the server is still on the first requests (reading paused between turns).
    a.socket.end(requests('a', n).slice(0, -1));
    await a.closed;
    expectAll(aReplies, n);
  });
});
