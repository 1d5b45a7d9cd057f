import { type IncomingHttpHeaders, request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startInspector } from '../../src/inspector/server.js';

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
}

/** GETs a path and resolves once the head arrives (an event stream stays open until the server closes). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      headers: { host: `127.0.0.1:${port}`, ...headers },
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on('error', reject);
    req.end();
  });
}

async function inspector() {
  const server = await startInspector({ port: 0 });
  servers.push(server);
  return server.port;
}

describe('the inspector and other sites', () => {
  it('refuses requests a browser marks as coming from another site', async () => {
    const port = await inspector();
    for (const site of ['cross-site', 'same-site']) {
      const answer = await get(port, '/events', { 'sec-fetch-site': site });
      expect(answer.status, site).toBe(403);
    }
    expect((await get(port, '/machines.json', { origin: 'http://localhost:9999' })).status).toBe(403);
    expect((await get(port, '/', { origin: 'null' })).status).toBe(403);
  });

  it('answers its own page, an address typed by the operator, and clients without browser headers', async () => {
    const port = await inspector();
    expect((await get(port, '/', { 'sec-fetch-site': 'none' })).status).toBe(200);
    const own = { 'sec-fetch-site': 'same-origin', origin: `http://127.0.0.1:${port}` };
    expect((await get(port, '/machines.json', own)).status).toBe(200);
    expect((await get(port, '/events', own)).status).toBe(200);
    expect((await get(port, '/machines.json')).status).toBe(200);
  });

  it('keeps its event streams for the operator when another site opens many', async () => {
    const port = await inspector();
    const foreign = await Promise.all(
      Array.from({ length: 12 }, () =>
        get(port, '/events', { 'sec-fetch-site': 'cross-site', origin: 'http://localhost:8000' }),
      ),
    );
    expect(foreign.every((a) => a.status === 403)).toBe(true);
    expect((await get(port, '/events', { 'sec-fetch-site': 'same-origin' })).status).toBe(200);
  });

  it('forbids framing on every response', async () => {
    const port = await inspector();
    const answers = [
      await get(port, '/'),
      await get(port, '/machines.json'),
      await get(port, '/events'),
      await get(port, '/nowhere'),
      await get(port, '/events', { 'sec-fetch-site': 'cross-site' }),
    ];
    for (const answer of answers) {
      expect(answer.headers['x-frame-options']).toBe('DENY');
      expect(answer.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    }
  });
});
