import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startInspector } from '../../src/inspector/server.js';

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

/**
 * Sends one request with a raw request target (node:http's client checks its paths) and resolves with
 * the status line, or with what happened instead.
 */
function rawStatus(port: number, target: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('no answer');
    }, 2000);
    socket.on('data', (data) => {
      text += data.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text.split('\r\n')[0] || 'closed without an answer');
    });
  });
}

describe('the inspector and request targets', () => {
  it('answers 400 to a target that is no URL, and goes on serving', async () => {
    const inspector = await startInspector({ port: 0 });
    servers.push(inspector);
    // These made the URL parser throw out of the request handler: an uncaught exception ended the daemon.
    for (const target of ['http://[', 'http://%zz/', 'http://[::1']) {
      expect(await rawStatus(inspector.port, target), target).toBe('HTTP/1.1 400 Bad Request');
    }
    expect(await rawStatus(inspector.port, '/')).toBe('HTTP/1.1 200 OK');
    expect(await rawStatus(inspector.port, '/nowhere')).toBe('HTTP/1.1 404 Not Found');
  });
});
