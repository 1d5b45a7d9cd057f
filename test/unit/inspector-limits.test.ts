import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startInspector } from '../../src/inspector/server.js';

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

/** Opens /events and resolves with its status once the head arrives; the stream stays open. */
function openEvents(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events', headers: { host: `127.0.0.1:${port}` } });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the inspector under many pages', () => {
  it('streams to 8 pages at most and turns the next away with 503', async () => {
    const inspector = await startInspector({ port: 0 });
    servers.push(inspector);
    const statuses = await Promise.all(Array.from({ length: 10 }, () => openEvents(inspector.port)));
    expect(statuses.filter((s) => s === 200)).toHaveLength(8);
    expect(statuses.filter((s) => s === 503)).toHaveLength(2);
  });
});
