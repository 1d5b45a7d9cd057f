/**
 * A connection the daemon ended (src/adapters/socket-server.ts) is let go as soon as its client closes:
 * the timer that destroys one whose client never closes must not outlive it, or it keeps the socket,
 * its buffers and closures alive for the whole linger (60 s in the daemon). The bench's 1,001 triggers,
 * each a client that reads its reply and closes, left 4 to 5 MB of RSS behind for that minute.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { type Connection, SocketServer } from '../../src/adapters/socket-server.js';
import { busyReply } from '../../src/protocol/dispatch.js';
import { makeTempDir } from '../helpers/resources.js';

let server: SocketServer | undefined;
afterEach(async () => {
  vi.useRealTimers();
  await server?.close();
  server = undefined;
});

it('clears the linger timer of an ended connection once its client has closed', async () => {
  const path = join(makeTempDir('agentd-unit-linger-'), 's.sock');
  const closed: Promise<void>[] = [];
  server = new SocketServer({
    path,
    maxLineBytes: 1024,
    maxConnections: 8,
    partialLineTimeoutMs: 5000,
    idleTimeoutMs: 60_000,
    maxPendingWriteBytes: 1024 * 1024,
    lagBytes: 64 * 1024,
    stallTimeoutMs: 30_000,
    lingerMs: 60_000,
    onLine: (line: string, connection: Connection) => {
      closed.push(new Promise((resolve) => connection.onClose(resolve)));
      connection.send({ echo: JSON.parse(line) });
    },
    onLineTooLong: () => {},
    busyLine: busyReply,
  });
  await server.listen();
  // Only the timers the server sets for its connections are counted; sockets still do real I/O.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });

  for (let i = 0; i < 3; i++) {
    // As the CLI and the bench's clients do: send, read the reply, end the connection.
    await new Promise<void>((resolve, reject) => {
      const socket = connect(path);
      socket.once('error', reject);
      socket.once('connect', () => socket.write('{"n":1}\n'));
      socket.once('data', () => {
        socket.end();
        socket.once('close', () => resolve());
      });
      socket.resume();
    });
  }
  await Promise.all(closed);
  expect(closed).toHaveLength(3);
  // Each connection's timers (idle, stall, linger) are gone with it.
  expect(vi.getTimerCount()).toBe(0);
});
