/**
 * The HTTP API's listening socket (src/http/server.ts) against clients that hold connections or pipeline
 * requests, and what /readyz tells a caller without a token. No Podman: a small app stands for the API.
 */
import { execFileSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { readiness } from '../../src/daemon/http.js';
import { connectionSource, HttpServer } from '../../src/http/server.js';
import type { DaemonPort } from '../../src/protocol/context.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

const servers: HttpServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) await server.close();
  cleanupAll();
});

async function serve(tls?: { cert: string; key: string }): Promise<{ port: number }> {
  const app = new Hono();
  app.get('/x', (c) => c.text('ok'));
  const server = await HttpServer.listen(
    {
      listen: { kind: 'tcp', host: '127.0.0.1', port: 0 },
      tokens: [],
      bodyLimitBytes: 1024,
      ...(tls === undefined ? {} : { tls }),
    },
    app,
  );
  servers.push(server);
  return { port: Number(new URL(server.address).port) };
}

/** A connection that has been accepted (or refused: then it closes without a byte). */
function open(port: number, localAddress?: string): Promise<{ socket: Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      port,
      host: '127.0.0.1',
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    sockets.push(socket);
    const started = Date.now();
    const closed = new Promise<number>((done) => socket.once('close', () => done(Date.now() - started)));
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

/** Sends raw bytes on a new connection and collects what comes back until the server closes it. */
function exchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    sockets.push(socket);
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
    });
    socket.on('error', () => {});
    socket.once('close', () => resolve(text));
  });
}

describe('HTTP server limits', () => {
  it('refuses a connection past 64 from one address at once, and takes one again when one closes', async () => {
    const { port } = await serve();
    const held = await Promise.all(Array.from({ length: 64 }, () => open(port)));
    const refused = await open(port);
    // Closed at once, before the 10 s a silent client gets for its headers.
    expect(await refused.closed).toBeLessThan(5_000);
    held[0]?.socket.destroy();
    await held[0]?.closed;
    const answer = await exchange(port, 'GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
  });

  it('counts every loopback address as one: a 65th connection from 127.0.0.2 is refused too', async () => {
    const { port } = await serve();
    await Promise.all(Array.from({ length: 32 }, () => open(port)));
    await Promise.all(Array.from({ length: 32 }, () => open(port, '127.0.0.3')));
    const refused = await open(port, '127.0.0.2');
    expect(await refused.closed).toBeLessThan(5_000);
  });

  it('groups sources: the addresses of this machine as one, IPv6 by its /64, IPv4-mapped as IPv4', () => {
    expect(connectionSource('127.0.0.1')).toBe('this machine');
    expect(connectionSource('::ffff:127.9.9.9')).toBe('this machine');
    expect(connectionSource('::1')).toBe('this machine');
    // The host's own addresses, whatever they are.
    expect(connectionSource('::ffff:192.0.2.9', new Set(['192.0.2.9']))).toBe('this machine');
    expect(connectionSource('2001:db8::9', new Set(['2001:db8::9']))).toBe('this machine');
    expect(connectionSource('192.0.2.7')).toBe('192.0.2.7');
    expect(connectionSource('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(connectionSource('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(connectionSource('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(connectionSource('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(connectionSource('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });

  it('answers 4 pipelined requests ahead of what the client has read; the next gets 503 busy and the connection closes', async () => {
    const { port } = await serve();
    const request = 'GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    const started = Date.now();
    const answer = await exchange(port, request.repeat(150));
    expect(answer.match(/HTTP\/1\.1 200/g)?.length ?? 0).toBe(4);
    expect(answer.match(/HTTP\/1\.1 503/g)?.length ?? 0).toBe(1);
    expect(answer).toContain('"code":"busy"');
    // Closed after the refusal: no wait for the 5 s keep-alive timeout.
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('closes a connection after 100 requests, one after the other, instead of answering without end', async () => {
    const { port } = await serve();
    const { socket, closed } = await open(port);
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
    });
    const answers = () => text.match(/HTTP\/1\.1 200/g)?.length ?? 0;
    for (let i = 1; i <= 101 && !socket.destroyed; i++) {
      socket.write('GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      const deadline = Date.now() + 2000;
      while (answers() < i && !socket.destroyed && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 2));
    }
    await closed;
    expect(answers()).toBe(100);
    expect(text).not.toContain('503');
  });

  it('gives a TLS client the headers’ 10 s for its handshake, not Node’s 120 s', async () => {
    const dir = makeTempDir('agentd-unit-http-tls-');
    const [cert, key] = [join(dir, 'api.crt'), join(dir, 'api.key')];
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'].concat(
        ['-subj', '/CN=127.0.0.1', '-keyout', key, '-out', cert],
      ),
      { stdio: 'ignore' },
    );
    const { port } = await serve({ cert, key });
    // A client that connects and sends nothing at all.
    const silent = await open(port);
    expect(await silent.closed).toBeLessThan(30_000);
  }, 60_000);
});

describe('/readyz', () => {
  it('names each host and its state, never its problem (which shows its url and key file)', () => {
    const problem =
      'probe the host failed (exit 125): failed to read identity "/etc/agentd/id_ed25519" [podman --url ssh://agentd@build1.example:22/run/podman/podman.sock]';
    const port = {
      state: () => 'ready',
      hosts: () => [
        { name: 'build1', state: 'down', problem },
        { name: 'build2', state: 'draining' },
      ],
    } as unknown as DaemonPort;
    const { ready, reason } = readiness(port);
    expect(ready).toBe(false);
    expect(reason).toBe('Podman does not answer (build1: down; build2: draining)');
  });
});
