import { request } from 'node:http';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { HttpSettings } from '../../src/config/types.js';
import { createApi } from '../../src/http/api.js';
import { Tokens } from '../../src/http/auth.js';
import { hostCheckFor } from '../../src/http/hosts.js';
import { HttpServer } from '../../src/http/server.js';
import type { DaemonPort } from '../../src/protocol/context.js';

const TOKEN = 'read-token-0123456789';
const servers: HttpServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

/** The API (with the daemon's host check for `settings`) on a real server; its port. */
async function serve(settings: Pick<HttpSettings, 'listen' | 'tls'>): Promise<number> {
  const app = createApi({
    daemon: {
      state: () => 'ready',
      version: '1.2.3',
      status: () => ({ state: 'ready' }),
    } as unknown as DaemonPort,
    tokens: await Tokens.resolve(
      [{ name: 'viewer', source: { kind: 'env', name: 'T', raw: 'env:T' }, scopes: ['read'] }],
      { T: TOKEN },
    ),
    metrics: { text: async () => '', contentType: 'text/plain', httpRequest: () => {} },
    readiness: async () => ({ ready: true }),
    log: pino({ level: 'silent' }),
    bodyLimitBytes: 1024,
    checkHost: hostCheckFor(settings),
  });
  const server = await HttpServer.listen(
    { listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, tokens: [], bodyLimitBytes: 1024 },
    app,
  );
  servers.push(server);
  return Number(new URL(server.address).port);
}

/** GET `path` on 127.0.0.1 with this Host header: status and body. */
function get(
  port: number,
  path: string,
  host: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      headers: { host, authorization: `Bearer ${TOKEN}` },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the HTTP API on a loopback address and the Host a request names', () => {
  const loopback = { listen: { kind: 'tcp', host: '127.0.0.1', port: 7391 } } as const;

  it('refuses another name (a page reaching it through DNS rebinding) 421 wrong_host, naming the fix, with a token or without', async () => {
    const port = await serve(loopback);
    for (const path of ['/healthz', '/readyz', '/v1/status']) {
      const answer = await get(port, path, `rebind.attacker.example:${port}`);
      expect(answer.status, path).toBe(421);
      expect(answer.body).toMatchObject({ code: 'wrong_host', retryable: false });
      expect(answer.body.message).toContain('"rebind.attacker.example"');
      expect(answer.body.message).toContain('http://127.0.0.1:7391');
      expect(answer.body.message).toContain('proxy_set_header Host');
      expect(answer.body.message).toContain('header_up Host');
    }
    expect((await get(port, '/healthz', '10.1.2.3:7391')).status).toBe(421);
    expect((await get(port, '/healthz', 'localhost.attacker.example')).status).toBe(421);
    // A request line that is a whole URL (as sent to a proxy): its host and the Host header both count.
    expect((await get(port, 'http://127.0.0.1/healthz', 'rebind.attacker.example')).status).toBe(421);
    expect((await get(port, 'http://rebind.attacker.example/healthz', '127.0.0.1')).status).toBe(421);
    expect((await get(port, `http://localhost:${port}/healthz`, '127.0.0.1')).status).toBe(200);
  });

  it('answers localhost, its subdomains, 127.0.0.0/8 and [::1], on any port (an ssh tunnel changes it)', async () => {
    const port = await serve(loopback);
    for (const host of [
      '127.0.0.1:7391',
      `127.0.0.1:${port}`,
      'LocalHost:9000',
      'localhost',
      'localhost.',
      'agentd.localhost:1',
      '127.0.0.2',
      '[::1]:7391',
    ]) {
      expect((await get(port, '/v1/status', host)).status, host).toBe(200);
    }
  });

  it('answers any name on a non-loopback address, with TLS, or on a Unix socket: rebinding cannot use them, and their names are the operator’s', () => {
    expect(hostCheckFor({ listen: { kind: 'tcp', host: '0.0.0.0', port: 7391 } })).toBeUndefined();
    expect(hostCheckFor({ ...loopback, tls: { cert: '/c.pem', key: '/k.pem' } })).toBeUndefined();
    expect(hostCheckFor({ listen: { kind: 'unix', path: '/run/agentd/http.sock' } })).toBeUndefined();
    expect(hostCheckFor({ listen: { kind: 'tcp', host: 'localhost', port: 7391 } })).toBeDefined();
    expect(hostCheckFor({ listen: { kind: 'tcp', host: '::1', port: 7391 } })).toBeDefined();
    // Port 0 (any free one) is not named as where to send requests.
    const anyPort = hostCheckFor({ listen: { kind: 'tcp', host: '::1', port: 0 } });
    expect(anyPort?.('http://evil.example/', 'evil.example')).toContain('send requests to http://[::1],');
  });
});
