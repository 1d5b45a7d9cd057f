import { writeFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { Hono } from 'hono';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readiness } from '../../src/daemon/http.js';
import { connectionSource } from '../../src/http/connections.js';
import { OPERATIONS } from '../../src/http/operations.js';
import { HttpServer } from '../../src/http/server.js';
import type { DaemonPort } from '../../src/protocol/context.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';
import { selfSignedCertificate } from '../helpers/tls.js';

const servers: HttpServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) await server.close();
  await cleanupAll();
});

/** A server whose /hold answers wait until the test calls the function `release` gets for it. */
async function serve(
  tls?: { cert: string; key: string },
  socketPath?: string,
  answered?: (method: string, route: string, status: number) => void,
): Promise<{ port: number; release: (() => void)[] }> {
  const app = new Hono();
  const release: (() => void)[] = [];
  app.get('/x', (c) => c.text('ok'));
  app.get('/hold', async (c) => {
    await new Promise<void>((resolve) => release.push(resolve));
    return c.text('done');
  });
  const server = await HttpServer.listen(
    {
      listen:
        socketPath === undefined
          ? { kind: 'tcp', host: '127.0.0.1', port: 0 }
          : { kind: 'unix', path: socketPath },
      tokens: [],
      bodyLimitBytes: 1024,
      ...(tls === undefined ? {} : { tls }),
    },
    app,
    answered,
  );
  servers.push(server);
  return { port: socketPath === undefined ? Number(new URL(server.address).port) : 0, release };
}

async function waitFor(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A connection that has been accepted (or refused: then it closes without a byte). */
/** Where a test connects: a TCP port on 127.0.0.1, or a Unix socket. */
type Target = number | { path: string };

function connectTo(target: Target, localAddress?: string): Socket {
  return typeof target === 'number'
    ? connect({ port: target, host: '127.0.0.1', ...(localAddress === undefined ? {} : { localAddress }) })
    : connect(target);
}

function open(target: Target, localAddress?: string): Promise<{ socket: Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = connectTo(target, localAddress);
    sockets.push(socket);
    const started = Date.now();
    const closed = new Promise<number>((done) => socket.once('close', () => done(Date.now() - started)));
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

/** Sends raw bytes on a new connection and collects what comes back until the server closes it. */
function exchange(target: Target, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTo(target);
    socket.once('connect', () => socket.write(bytes));
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
  it('serves a 65th connection from one address by closing its oldest idle one: holding connections locks nobody out', async () => {
    const { port } = await serve();
    const idle = await Promise.all(Array.from({ length: 64 }, () => open(port)));
    const answer = await exchange(port, 'GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    // The oldest gave its slot up, closed by the server long before the 10 s a silent client gets.
    expect(await idle[0]?.closed).toBeLessThan(5_000);
    expect(idle.slice(1).filter(({ socket }) => socket.destroyed)).toHaveLength(0);
  });

  it('refuses a 65th connection from this machine (127.0.0.2 counts as 127.0.0.1) when all 64 are being answered', async () => {
    const { port, release } = await serve();
    const busy = [
      ...(await Promise.all(Array.from({ length: 32 }, () => open(port)))),
      ...(await Promise.all(Array.from({ length: 32 }, () => open(port, '127.0.0.3')))),
    ];
    for (const { socket } of busy) socket.write('GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await waitFor(() => release.length === 64);
    const refused = await open(port, '127.0.0.2');
    expect(await refused.closed).toBeLessThan(5_000);
    expect(busy.filter(({ socket }) => socket.destroyed)).toHaveLength(0);
    for (const done of release) done();
  });

  it('holds 256 connections in all: the next one (on a Unix socket, no address) closes the oldest idle one', async () => {
    const dir = makeTempDir('agentd-unit-http-unix-');
    const path = join(dir, 'api', 'http.sock');
    await serve(undefined, path);
    const idle = await Promise.all(Array.from({ length: 256 }, () => open({ path })));
    const answer = await exchange(
      { path },
      'GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(await idle[0]?.closed).toBeLessThan(5_000);
    expect(idle.slice(1).filter(({ socket }) => socket.destroyed)).toHaveLength(0);
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

  it('tells of the requests answered before the app sees them, to count them: refused 503 busy, and unparsed', async () => {
    const answered: string[] = [];
    const { port } = await serve(undefined, undefined, (method, route, status) =>
      answered.push(`${method} ${route} ${status}`),
    );
    const busy = await exchange(port, 'GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(5));
    expect(busy.match(/HTTP\/1\.1 503/g)?.length ?? 0).toBe(1);
    // A method Node does not know, and a header line without a colon: Node's own 400, as without a listener.
    const badMethod = await exchange(port, 'XYZZY /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(badMethod).toBe('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    const badHeader = await exchange(port, 'GET /x HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n');
    expect(badHeader).toBe('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    const huge = await exchange(
      port,
      `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(huge).toMatch(/^HTTP\/1\.1 431 /);
    expect(answered).toEqual([
      'GET refused 503',
      'unknown unparsed 400',
      'unknown unparsed 400',
      'unknown unparsed 431',
    ]);
  });

  it('answers a request it cannot make a URL of (OPTIONS *, a backslash, a Host that is no host or none) in the one error shape, counted, not an empty 400', async () => {
    const answered: string[] = [];
    const { port } = await serve(undefined, undefined, (method, route, status) =>
      answered.push(`${method} ${route} ${status}`),
    );
    const cases: [string, string, string][] = [
      ['OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 'target', 'is not a path starting with /'],
      ['GET /x\\y HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 'target', 'backslash'],
      ['GET /x HTTP/1.1\r\nHost: a b\r\n\r\n', 'header.host', 'is not a host name or address'],
      ['GET /x HTTP/1.0\r\n\r\n', 'header.host', 'is missing'],
    ];
    for (const [request, path, words] of cases) {
      const answer = await exchange(port, request);
      expect(answer, request).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer, request).toMatch(/content-type: application\/json/i);
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as {
        message: string;
        problems: { path: string; message: string }[];
      };
      expect(body).toMatchObject({ type: 'error', code: 'bad_request', retryable: false });
      expect(body.problems, request).toEqual([{ path, message: expect.stringContaining(words) }]);
      expect(body.message, request).toContain(`${path}: `);
      expect(body.message, request).toContain('docs/openapi.json');
    }
    expect(answered).toEqual(Array(4).fill('unknown unparsed 400'));
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

  it('turns TCP keepalive on for every connection, so that a vanished client (a log stream nothing is written to) does not hold its slot for ever', async () => {
    const calls: {
      remotePort: number | undefined;
      enable: boolean | undefined;
      delay: number | undefined;
    }[] = [];
    const spy = vi.spyOn(Socket.prototype, 'setKeepAlive').mockImplementation(function (
      this: Socket,
      enable?: boolean,
      delay?: number,
    ) {
      calls.push({ remotePort: this.remotePort, enable, delay });
      return this;
    });
    try {
      const { port, release } = await serve();
      const { socket } = await open(port);
      socket.write('GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await waitFor(() => release.length === 1);
      const accepted = calls.find((call) => call.remotePort === socket.localPort);
      expect(accepted?.enable).toBe(true);
      expect(accepted?.delay).toBeGreaterThan(0);
      expect(accepted?.delay).toBeLessThanOrEqual(60_000);
      release[0]?.();
    } finally {
      spy.mockRestore();
    }
  });

  it('gives a TLS client the headers’ 10 s for its handshake, not Node’s 120 s', async () => {
    const { port } = await serve(selfSignedCertificate(makeTempDir('agentd-unit-http-tls-'), 'api'));
    // A client that connects and sends nothing at all.
    const silent = await open(port);
    expect(await silent.closed).toBeLessThan(30_000);
  }, 60_000);

  it('counts a TLS connection’s unanswered requests too: the fifth pipelined gets 503 busy', async () => {
    const { port } = await serve(selfSignedCertificate(makeTempDir('agentd-unit-http-tls-'), 'api'));
    const answer = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () =>
        socket.write('GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(150)),
      );
      sockets.push(socket);
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
      });
      socket.on('error', () => {});
      socket.once('close', () => resolve(text));
    });
    expect(answer.match(/HTTP\/1\.1 200/g)?.length ?? 0).toBe(4);
    expect(answer).toMatch(/HTTP\/1\.1 503[\s\S]*"code":"busy"/);
  });
});

describe('a TLS certificate or key that does not load', () => {
  it('is blamed on daemon.http.tls.cert or .key and its file, with the fix, not on the listen address', async () => {
    const dir = makeTempDir('agentd-unit-http-tls-');
    const a = selfSignedCertificate(dir, 'a');
    const b = selfSignedCertificate(dir, 'b');
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a PEM file\n');
    const refusal = async (tls: { cert: string; key: string }) => {
      const error = await serve(tls).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).not.toContain('cannot listen');
      expect(error?.message).not.toContain('daemon.http.listen');
      return error?.message ?? '';
    };
    const cert = await refusal({ cert: garbage, key: a.key });
    expect(cert).toMatch(
      new RegExp(`^${garbage} \\(daemon\\.http\\.tls\\.cert\\) is not a PEM certificate: .*no start line`),
    );
    expect(cert).toContain('Point daemon.http.tls.cert at');
    const key = await refusal({ cert: a.cert, key: garbage });
    expect(key).toMatch(new RegExp(`^${garbage} \\(daemon\\.http\\.tls\\.key\\) is not a PEM private key`));
    expect(key).toContain('Point daemon.http.tls.key at');
    // A private key in the certificate's place: not a certificate.
    expect(await refusal({ cert: a.key, key: a.key })).toContain(
      '(daemon.http.tls.cert) is not a PEM certificate',
    );
    const mismatch = await refusal({ cert: a.cert, key: b.key });
    expect(mismatch).toContain(`${b.key} (daemon.http.tls.key) is not the key of the certificate ${a.cert}`);
    expect(await refusal({ cert: join(dir, 'none.pem'), key: a.key })).toContain('ENOENT');
  });
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

  it('is ready with one host up of several, as its OpenAPI description says', () => {
    const port = {
      state: () => 'ready',
      hosts: () => [
        { name: 'build1', state: 'down' },
        { name: 'build2', state: 'up' },
      ],
    } as unknown as DaemonPort;
    expect(readiness(port)).toEqual({ ready: true });
    const description = OPERATIONS.find((op) => op.id === 'ready')?.description ?? '';
    expect(description).toContain('at least one Podman host');
    expect(description).not.toMatch(/every host/);
  });
});
