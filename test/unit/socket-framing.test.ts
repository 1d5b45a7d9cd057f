/**
 * The socket's framing (src/adapters/socket-server.ts) on a real Unix socket in a temp dir: lines
 * split and joined however they arrive, a line too long refused without losing the connection, a
 * half line or a silent client dropped after the timeout, connections bounded.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { type Connection, clearStaleSocket, SocketServer } from '../../src/adapters/socket-server.js';
import { busyReply } from '../../src/protocol/dispatch.js';
import { makeTempDir } from '../helpers/resources.js';

const servers: SocketServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function serve(
  limits: {
    maxLineBytes?: number;
    maxConnections?: number;
    partialLineTimeoutMs?: number;
    idleTimeoutMs?: number;
    maxBufferedBytes?: number;
  } = {},
) {
  const path = join(makeTempDir('agentd-unit-sock-'), 's.sock');
  const lines: string[] = [];
  const tooLong: number[] = [];
  /** Per line, where its bytes stop being UTF-8 (undefined: they are UTF-8). */
  const notUtf8: (number | undefined)[] = [];
  /** Replies owed (a request with "hold" is answered later, as a follow is): call one to settle it. */
  const owed: (() => void)[] = [];
  const server = new SocketServer({
    path,
    maxLineBytes: limits.maxLineBytes ?? 64,
    maxConnections: limits.maxConnections ?? 8,
    ...(limits.maxBufferedBytes === undefined ? {} : { maxBufferedBytes: limits.maxBufferedBytes }),
    partialLineTimeoutMs: limits.partialLineTimeoutMs ?? 5000,
    idleTimeoutMs: limits.idleTimeoutMs ?? 60_000,
    maxPendingWriteBytes: 1 << 20,
    lagBytes: 64 * 1024,
    stallTimeoutMs: 30_000,
    lingerMs: 1000,
    onLine: (line: string, connection: Connection, notUtf8At?: number) => {
      lines.push(line);
      notUtf8.push(notUtf8At);
      if (line.includes('"hold"')) owed.push(connection.owe());
      connection.send({ echo: line });
    },
    onLineTooLong: (connection) => {
      tooLong.push(connection.id);
      connection.send({ type: 'error', code: 'line_too_long' });
    },
    busyLine: busyReply,
  });
  await server.listen();
  servers.push(server);
  return { path, lines, tooLong, owed, notUtf8 };
}

function client(path: string): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString();
    });
    const closed = new Promise<void>((done) => socket.on('close', () => done()));
    socket.once('connect', () => resolve({ socket, received: () => data, closed }));
    socket.once('error', reject);
  });
}

const tick = (ms = 30) => new Promise((resolve) => setTimeout(resolve, ms));

describe('socket framing', () => {
  it('says where a line stops being UTF-8, however the line arrived, and reads on', async () => {
    const { path, lines, notUtf8 } = await serve({ maxLineBytes: 256 });
    const c = await client(path);
    const latin1 = Buffer.from('{"workUnit":"caf\xe9"}', 'latin1');
    // A line in two pieces, a 4-byte character cut short, a stray continuation byte, an overlong form, a
    // surrogate; then lines of UTF-8, among them a character split across writes.
    c.socket.write(latin1.subarray(0, 5));
    await tick();
    c.socket.write(Buffer.concat([latin1.subarray(5), Buffer.from('\n')]));
    c.socket.write(Buffer.from([0x61, 0xf0, 0x9f, 0x98, 0x0a]));
    c.socket.write(Buffer.from([0x7b, 0x80, 0x7d, 0x0a, 0xc0, 0xaf, 0x0a, 0x41, 0xed, 0xa0, 0x80, 0x0a]));
    const smile = Buffer.from('{"a":"\u{1F600}é"}\n');
    c.socket.write(smile.subarray(0, 8));
    await tick();
    c.socket.write(smile.subarray(8));
    c.socket.write('{"type":"status"}\n');
    for (let i = 0; i < 200 && lines.length < 7; i++) await tick(10);
    expect(notUtf8).toEqual([16, 1, 1, 0, 1, undefined, undefined]);
    expect(lines[5]).toBe('{"a":"\u{1F600}é"}');
    c.socket.destroy();
  });

  it('joins a line written in pieces, splits lines written together, skips blank ones', async () => {
    const { path, lines } = await serve();
    const c = await client(path);
    c.socket.write('{"a":');
    await tick();
    c.socket.write('1}\n\n{"b":2}\n{"c"');
    c.socket.write(':3}\n');
    await tick();
    expect(lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
    expect(
      c
        .received()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).echo),
    ).toEqual(lines);
    c.socket.destroy();
  });

  it('refuses a line longer than the limit, drops it up to its newline, and keeps the connection', async () => {
    const { path, lines, tooLong } = await serve({ maxLineBytes: 16 });
    const c = await client(path);
    c.socket.write(`${'x'.repeat(40)}`);
    await tick();
    c.socket.write(`${'y'.repeat(40)}\n{"ok":1}\n`);
    await tick();
    expect(tooLong).toHaveLength(1);
    expect(lines).toEqual(['{"ok":1}']);
    expect(c.received()).toContain('line_too_long');
    c.socket.destroy();
  });

  it('drops a client that leaves half a line, or never sends one, for the timeout', async () => {
    const { path } = await serve({ partialLineTimeoutMs: 100 });
    const half = await client(path);
    half.socket.write('{"never":');
    const silent = await client(path);
    await Promise.all([half.closed, silent.closed]);
    expect(half.socket.destroyed && silent.socket.destroyed).toBe(true);
  });

  it('drops a client trickling a line a byte at a time once the line is older than the timeout', async () => {
    const { path, lines } = await serve({ partialLineTimeoutMs: 300 });
    const c = await client(path);
    c.socket.write('{"ok":1}\n');
    await tick();
    // Its clock starts at the line's first byte: bytes that keep coming do not wind it back.
    const began = Date.now();
    const trickle = setInterval(() => c.socket.write('x'), 20);
    await c.closed;
    clearInterval(trickle);
    expect(lines).toEqual(['{"ok":1}']);
    expect(Date.now() - began).toBeLessThan(2000);
  });

  it('ends a connection owed nothing that sends nothing for the idle timeout; one owed a reply stays', async () => {
    const { path, owed } = await serve({ idleTimeoutMs: 200, partialLineTimeoutMs: 5000 });
    const idle = await client(path);
    idle.socket.write('{"status":1}\n');
    const following = await client(path);
    following.socket.write('{"hold":1}\n');
    await idle.closed;
    expect(idle.received()).toContain('status');
    // Three idle timeouts later the one owed a reply is still open; settled, it is idle like any other.
    await tick(600);
    expect(following.socket.destroyed).toBe(false);
    following.socket.write('{"again":1}\n');
    await tick();
    expect(following.received()).toContain('again');
    for (const settle of owed.splice(0)) settle();
    await following.closed;
  });

  it('acts on nothing a client sends once its idle connection was ended (its reply could not be sent)', async () => {
    const { path, lines } = await serve({ idleTimeoutMs: 150 });
    // A client that keeps its side open when the daemon ends its own (as Go or Python clients may).
    const socket = connect({ path, allowHalfOpen: true });
    socket.on('error', () => {});
    socket.resume();
    socket.write('{"first":1}\n');
    await new Promise((resolve) => socket.once('end', resolve));
    socket.write('{"late":1}\n');
    await tick(100);
    socket.destroy();
    // Dropped, not run with its reply thrown away.
    expect(lines).toEqual(['{"first":1}']);
  });

  it('times the line after a discarded overlong one from its own first byte', async () => {
    const { path, lines, tooLong } = await serve({ maxLineBytes: 16, partialLineTimeoutMs: 400 });
    const c = await client(path);
    c.socket.write('x'.repeat(40));
    await tick(250);
    c.socket.write('y\n{"a":');
    await tick(250);
    // 500 ms after the overlong line began, 250 after this one did: still open.
    c.socket.write('1}\n');
    await tick();
    expect(tooLong).toHaveLength(1);
    expect(lines).toEqual(['{"a":1}']);
    c.socket.destroy();
  });

  it('turns away connections beyond the limit with a busy error', async () => {
    const { path } = await serve({ maxConnections: 1 });
    const first = await client(path);
    const second = await client(path);
    await second.closed;
    expect(JSON.parse(second.received())).toMatchObject({ type: 'error', code: 'busy' });
    first.socket.write('{"still":"served"}\n');
    await tick();
    expect(first.received()).toContain('served');
    first.socket.destroy();
  });

  it('bounds the unfinished lines of all clients together: the one past the budget is turned away', async () => {
    const { path, lines } = await serve({ maxLineBytes: 100, maxBufferedBytes: 120 });
    const first = await client(path);
    const second = await client(path);
    first.socket.write(`{"a":"${'x'.repeat(70)}`);
    await tick();
    second.socket.write(`{"b":"${'y'.repeat(70)}`);
    await second.closed;
    expect(JSON.parse(second.received())).toMatchObject({ type: 'error', code: 'busy' });
    // The first client's line completes; its bytes are released, and a new client fits again.
    first.socket.write('"}\n');
    await tick();
    expect(lines).toHaveLength(1);
    const third = await client(path);
    third.socket.write(`{"c":"${'z'.repeat(70)}`);
    await tick();
    third.socket.write('"}\n');
    await tick();
    expect(lines).toHaveLength(2);
    first.socket.destroy();
    third.socket.destroy();
  });

  it('names the refused request in its busy reply; a burst beyond 64 held at once is answered at once', async () => {
    const { path } = await serve({ maxConnections: 1 });
    const held = await client(path);
    const busy = {
      v: 2,
      type: 'error',
      code: 'busy',
      message: 'too many connections; retry later',
      problems: [],
      retryable: true,
    };
    // Silent connections are held a moment for their request; beyond 64 of them at once, answered at once.
    const silent = Array.from({ length: 66 }, () => exchange(path));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const hurried = await exchange(path, JSON.stringify({ v: 1, id: 'early', type: 'status' }));
    expect(hurried).toEqual([busy]);
    expect(await Promise.all(silent)).toEqual(Array.from({ length: 66 }, () => [busy]));
    // With room to read it, the refusal names the request, in its version.
    expect(await exchange(path, JSON.stringify({ v: 1, id: 'r1', type: 'status' }))).toEqual([
      { ...busy, v: 1, id: 'r1' },
    ]);
    held.socket.destroy();
  });
});

/** Connects, sends line (if any), resolves with every line received until the server closes. */
function exchange(path: string, line?: string): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(path);
    const lines: Record<string, unknown>[] = [];
    createInterface({ input: socket }).on('line', (l) =>
      lines.push(JSON.parse(l) as Record<string, unknown>),
    );
    socket.once('connect', () => {
      if (line !== undefined) socket.write(`${line}\n`);
    });
    socket.once('close', () => resolve(lines));
    socket.once('error', reject);
  });
}

describe('a socket path left at start', () => {
  it('is removed when nobody listens, and kept when a live daemon is too busy to take the connection', async () => {
    const dir = makeTempDir('agentd-unit-stale-');
    // Left by a process that died: the file is a socket nobody listens on.
    const stale = join(dir, 'stale.sock');
    const dead = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    await new Promise((resolve) => dead.on('exit', resolve));
    expect(existsSync(stale)).toBe(true);
    await clearStaleSocket(stale);
    expect(existsSync(stale)).toBe(false);

    // A live daemon whose queue of connections is full (its event loop busy): connecting fails with
    // EAGAIN, which is not a dead daemon.
    const live = join(dir, 'live.sock');
    const busy = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen({ path: ${JSON.stringify(live)}, backlog: 1 }, () => { console.log('up'); for (;;); })`,
    ]);
    try {
      await new Promise((resolve) => busy.stdout.once('data', resolve));
      const filling = Array.from({ length: 8 }, () => connect(live).on('error', () => {}));
      try {
        await expect(clearStaleSocket(live)).rejects.toMatchObject({ code: 'DAEMON_RUNNING' });
        expect(existsSync(live)).toBe(true);
      } finally {
        for (const socket of filling) socket.destroy();
      }
    } finally {
      busy.kill('SIGKILL');
    }
  });
});
