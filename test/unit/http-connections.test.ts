/**
 * The HTTP API's connection table (src/http/connections.ts) on a plain Node server with small limits:
 * which connection gives its slot up when a client only opens connections, and when an answer its
 * client does not take closes the connection. No Podman.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type ConnectionLimits, Connections } from '../../src/http/connections.js';

const servers: { server: Server; connections: Connections }[] = [];
const sockets: Socket[] = [];
/** Requests to /hold wait here until the test answers them. */
const held: ServerResponse[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const response of held.splice(0)) response.destroy();
  for (const { server, connections } of servers.splice(0)) {
    connections.detach();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const LIMITS: ConnectionLimits = { max: 6, perSource: 3, maxUnanswered: 2, stallMs: 1000, stuckMs: 1000 };

async function serve(
  limits: Partial<ConnectionLimits> = {},
  now?: () => number,
): Promise<{ port: number; connections: Connections }> {
  const server = createServer((req, res) => {
    if (req.url === '/hold') held.push(res);
    else if (req.url?.startsWith('/big/')) {
      // An answer far larger than the socket buffers, in 16 KiB pieces written as the client takes them.
      let left = Number(req.url.slice('/big/'.length));
      const piece = Buffer.alloc(16 * 1024, 'x');
      res.writeHead(200, { 'content-length': String(left * piece.length) });
      const more = () => {
        while (left > 0) {
          left -= 1;
          if (!res.write(piece)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    } else if (req.url?.startsWith('/whole/')) {
      // One write of the whole answer, as a JSON body is written.
      res.end(Buffer.alloc(Number(req.url.slice('/whole/'.length)) * 1024 * 1024, 'y'));
    } else res.end('ok');
  });
  const connections = new Connections({ ...LIMITS, ...limits }, new Set(), now);
  connections.attach(server);
  servers.push({ server, connections });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, connections };
}

interface Client {
  socket: Socket;
  /** Everything the server sent so far. */
  text: () => string;
  /** Resolves when the connection is closed, with whether the server closed it (the client did not). */
  closed: Promise<void>;
}

function open(port: number, localAddress = '127.0.0.1', options: { read?: boolean } = {}): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    sockets.push(socket);
    let text = '';
    if (options.read !== false)
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
      });
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, text: () => text, closed }));
    socket.once('error', reject);
  });
}

const isOpen = (client: Client) => !client.socket.destroyed && client.socket.readyState === 'open';
const settle = (ms = 150) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await settle(20);
  }
}
const request = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;

describe('HTTP connections at their limit', () => {
  it('makes room for a new connection from a source at its limit by closing that source’s oldest idle one', async () => {
    const { port, connections } = await serve();
    const first = await open(port);
    const second = await open(port);
    const third = await open(port);
    await until(() => connections.size === 3);
    const fourth = await open(port);
    await first.closed;
    fourth.socket.write(request('/x'));
    await until(() => fourth.text().includes('\r\n\r\nok'));
    expect([second, third, fourth].map(isOpen)).toEqual([true, true, true]);
    // Once they are all gone, the source has its whole limit again (the eviction was counted once).
    for (const client of [second, third, fourth]) client.socket.destroy();
    await until(() => connections.size === 0);
    const again = [await open(port), await open(port), await open(port)];
    await until(() => connections.size === 3);
    await settle();
    expect(again.map(isOpen)).toEqual([true, true, true]);
  });

  it('closes a connection between two requests (kept alive), never one whose request is being answered', async () => {
    const { port } = await serve();
    const answering = await open(port);
    answering.socket.write(request('/hold'));
    await until(() => held.length === 1);
    const between = await open(port);
    between.socket.write(request('/x'));
    await until(() => between.text().includes('ok'));
    await open(port);
    await open(port);
    await between.closed;
    expect(isOpen(answering)).toBe(true);
    held[0]?.end('done');
    await until(() => answering.text().includes('done'));
  });

  it('refuses a new connection when every connection of its source is being answered', async () => {
    const { port } = await serve();
    const busy = await Promise.all([open(port), open(port), open(port)]);
    for (const client of busy) client.socket.write(request('/hold'));
    await until(() => held.length === 3);
    const refused = await open(port);
    await refused.closed;
    expect(refused.text()).toBe('');
    expect(busy.map(isOpen)).toEqual([true, true, true]);
    // One answered and kept alive: idle again, so the next new connection takes its place.
    held[0]?.end('done');
    await until(() => busy[0]?.text().includes('done') === true);
    const next = await open(port);
    await busy[0]?.closed;
    next.socket.write(request('/x'));
    await until(() => next.text().includes('ok'));
  });

  it('at the limit of all connections, closes the oldest idle one of any source; refuses when none is idle', async () => {
    // Three sources on loopback: 127.0.0.1, .2 and .3 are three sources here (no own addresses given).
    const { port, connections } = await serve({ max: 4, perSource: 4 });
    const a = await open(port, '127.0.0.1');
    a.socket.write(request('/hold'));
    const b = await open(port, '127.0.0.2');
    const c = await open(port, '127.0.0.3');
    c.socket.write(request('/hold'));
    const d = await open(port, '127.0.0.3');
    d.socket.write(request('/hold'));
    await until(() => held.length === 3 && connections.size === 4);
    const e = await open(port, '127.0.0.4');
    await b.closed;
    e.socket.write(request('/hold'));
    await until(() => held.length === 4);
    const refused = await open(port, '127.0.0.5');
    await refused.closed;
    expect([a, c, d, e].map(isOpen)).toEqual([true, true, true, true]);
    expect(connections.size).toBe(4);
  });

  it('answers a request past the unanswered limit 503 busy and closes the connection', async () => {
    const { port } = await serve();
    const client = await open(port);
    client.socket.write(request('/hold').repeat(3));
    await until(() => held.length === 2);
    // Answers go out in the order of the requests: the 503 after the two held ones.
    for (const response of held) response.end('done');
    await client.closed;
    expect(client.text().match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(client.text()).toMatch(/HTTP\/1\.1 503[\s\S]*"code":"busy"/);
    expect(held).toHaveLength(2);
  });
});

describe('HTTP answers a client does not take', () => {
  it('closes the connection once nothing of an answer was taken for stallMs, and frees its slot', async () => {
    const { port, connections } = await serve({ stallMs: 800 });
    const stalled = await open(port, '127.0.0.1', { read: false });
    stalled.socket.pause();
    stalled.socket.write(request('/big/4096'));
    await until(() => connections.size === 1);
    const started = Date.now();
    // Seen from the server: the client, not reading, would see the end only once it reads again.
    await until(() => connections.size === 0, 10_000);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(700);
    expect(took).toBeLessThan(5000);
    stalled.socket.resume();
    await stalled.closed;
  });

  it.each([
    ['written in 16 KiB pieces', '/big/4096'],
    ['written in one piece', '/whole/64'],
  ])('keeps a connection whose client takes a large answer %s slowly but steadily', async (_, path) => {
    const { port, connections } = await serve({ stallMs: 800 });
    const slow = await open(port, '127.0.0.1', { read: false });
    let received = 0;
    let budget = 0;
    // 1 MiB every 200 ms (64 MiB in all), for three times stallMs: slow, but enough for the kernel to
    // take more of the answer each time (it waits for room in the reader's window).
    slow.socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      budget -= chunk.length;
      if (budget <= 0) slow.socket.pause();
    });
    slow.socket.pause();
    slow.socket.write(request(path));
    const started = Date.now();
    while (Date.now() - started < 2400) {
      budget = 1024 * 1024;
      slow.socket.resume();
      await settle(200);
    }
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(64 * 1024 * 1024);
    // Seen from the server: a client reading its way through megabytes sees an end only much later.
    expect(connections.size).toBe(1);
  });

  it('at a limit with no idle connection, closes the one whose answer has waited untaken longest (stuckMs)', async () => {
    const { port, connections } = await serve({ stallMs: 60_000, stuckMs: 600 });
    const stuck = await open(port, '127.0.0.1', { read: false });
    stuck.socket.pause();
    stuck.socket.write(request('/big/4096'));
    const busy = [await open(port), await open(port)];
    for (const client of busy) client.socket.write(request('/hold'));
    await until(() => held.length === 2 && connections.size === 3);
    // Its answer has not moved for stuckMs (seen by the sweeps): it gives its slot up, not the busy ones.
    await settle(1500);
    const next = await open(port);
    next.socket.write(request('/x'));
    await until(() => next.text().includes('ok'));
    await until(() => connections.size === 3);
    expect(busy.map(isOpen)).toEqual([true, true]);
  });

  it('keeps a connection whose answer is not written yet however long the app takes', async () => {
    const { port } = await serve({ stallMs: 400 });
    const waiting = await open(port);
    waiting.socket.write(request('/hold'));
    await until(() => held.length === 1);
    await settle(1500);
    expect(isOpen(waiting)).toBe(true);
    held[0]?.end('late');
    await until(() => waiting.text().includes('late'));
  });

  describe('when the wall clock is set (an NTP step)', () => {
    const HOURS_2 = 2 * 3_600_000;
    /** Date.now() from here on 2 h ahead, as after a forward step; performance.now() untouched. */
    const stepWallClock = () => {
      const wall = Date.now.bind(Date);
      vi.spyOn(Date, 'now').mockImplementation(() => wall() + HOURS_2);
    };

    it('keeps a connection stalled for a moment, and times it by its own clock', async () => {
      let steady = 0;
      const { port, connections } = await serve({ stallMs: 60_000 }, () => steady);
      const stalled = await open(port, '127.0.0.1', { read: false });
      stalled.socket.pause();
      stalled.socket.write(request('/big/4096'));
      await until(() => connections.size === 1);
      // A few sweeps (every 250 ms here) see its answer stuck.
      await settle(800);
      stepWallClock();
      await settle(1000);
      expect(connections.size).toBe(1);
      expect(isOpen(stalled)).toBe(true);
      // stallMs later by the clock it was given: closed.
      steady += 61_000;
      await settle(1000);
      expect(connections.size).toBe(0);
    });

    it('at a limit, does not take a slot from an answer stuck for a moment', async () => {
      // stallMs beyond the step: only the choice at the limit (stuckMs) is looked at here.
      const { port, connections } = await serve({ stallMs: 3 * HOURS_2, stuckMs: 4000 });
      const stuck = await open(port, '127.0.0.1', { read: false });
      stuck.socket.pause();
      stuck.socket.write(request('/big/4096'));
      const busy = [await open(port), await open(port)];
      for (const client of busy) client.socket.write(request('/hold'));
      await until(() => held.length === 2 && connections.size === 3);
      // A sweep (every second here) has seen its answer waiting.
      await settle(1300);
      stepWallClock();
      const refused = await open(port);
      let closed = false;
      void refused.closed.then(() => {
        closed = true;
      });
      await settle(1000);
      expect(closed).toBe(true);
      expect(connections.size).toBe(3);
      expect(busy.map(isOpen)).toEqual([true, true]);
    });
  });
});
