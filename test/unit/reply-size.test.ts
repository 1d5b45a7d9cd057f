/**
 * An answer never grows with the request, on the socket and over HTTP: what a client sent is repeated in
 * an error only cut short (an unknown field's name, a version the daemon does not speak). And every
 * request line gets an answer: a `v` nested deeper than JSON.stringify can write got none.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createApi } from '../../src/http/api.js';
import { Tokens } from '../../src/http/auth.js';
import type { DaemonPort } from '../../src/protocol/context.js';
import { check, dispatch } from '../../src/protocol/dispatch.js';
import { fakeConnection } from '../helpers/fake-connection.js';

const MIB = 1024 * 1024;

/** The reply a socket client gets for a line, as it goes on the wire. */
function answer(line: string): string {
  const { connection, sent } = fakeConnection();
  const daemon = { log: { error: () => {} } } as unknown as DaemonPort;
  dispatch(line, connection, daemon);
  expect(sent).toHaveLength(1);
  return JSON.stringify(sent[0]);
}

describe('a socket request line', () => {
  it('with an unknown field named by a megabyte gets a short bad_request naming its start', () => {
    const name = `x${'y'.repeat(MIB)}`;
    const reply = answer(`{"v":2,"id":"r","type":"status","${name}":1}`);
    expect(reply.length).toBeLessThan(2048);
    expect(JSON.parse(reply)).toMatchObject({ id: 'r', type: 'error', code: 'bad_request' });
    const result = check(`{"v":2,"type":"status","${name}":1}`);
    if (result.ok) throw new Error('accepted');
    expect(result.problems).toEqual([
      { path: `x${'y'.repeat(63)}... (${MIB + 1} characters)`, message: 'unknown field' },
    ]);
    // Short names are named whole, as before.
    expect(check('{"v":2,"type":"status","colour":1}')).toMatchObject({
      problems: [{ path: 'colour', message: 'unknown field' }],
    });
  });

  it('with a version the daemon does not speak gets a short unsupported_version, whatever the version is', () => {
    const deep = `${'['.repeat(30)}${']'.repeat(30)}`;
    for (const [v, named] of [
      [deep, 'an array'],
      [`{"a":${deep}}`, 'an object'],
      [JSON.stringify('z'.repeat(MIB)), '"zzzzzzzzzzzzzzzz..."'],
      ['3', '3'],
      ['1e400', 'Infinity'],
      ['"2"', '"2"'],
    ] as const) {
      const reply = answer(`{"v":${v},"id":"r","type":"hello"}`);
      expect(reply.length, named).toBeLessThan(1024);
      expect(JSON.parse(reply), named).toMatchObject({
        id: 'r',
        type: 'error',
        code: 'unsupported_version',
        message: `protocol version ${named} is not supported; this daemon speaks 1 and 2 (send hello without v to ask)`,
        supported: [1, 2],
      });
    }
    // Deeper than any request nests: refused before it is parsed, as briefly.
    const deeper = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const reply = answer(`{"v":${deeper},"id":"r","type":"hello"}`);
    expect(reply.length).toBeLessThan(1024);
    expect(JSON.parse(reply)).toMatchObject({ type: 'error', code: 'bad_request' });
  });
});

describe('an HTTP request body', () => {
  it('with an unknown field named by a megabyte gets a short 400 naming its start', async () => {
    const app = createApi({
      daemon: { version: '1', state: () => 'ready' } as unknown as DaemonPort,
      tokens: await Tokens.resolve(
        [{ name: 'ci', source: { kind: 'env', name: 'T', raw: 'env:T' }, scopes: ['trigger'] }],
        { T: 'token-0123456789' },
      ),
      metrics: { text: async () => '', contentType: 'text/plain', httpRequest: () => {} },
      readiness: async () => ({ ready: true }),
      log: pino({ level: 'silent' }),
      bodyLimitBytes: 2 * MIB,
    });
    const name = `x${'y'.repeat(MIB)}`;
    const response = await app.request('/v1/sessions', {
      method: 'POST',
      headers: { authorization: 'Bearer token-0123456789', 'content-type': 'application/json' },
      body: `{"agent":"demo","${name}":1}`,
    });
    const text = await response.text();
    expect(response.status).toBe(400);
    expect(text.length).toBeLessThan(2048);
    expect(JSON.parse(text)).toMatchObject({
      code: 'bad_request',
      problems: [{ path: `body.x${'y'.repeat(63)}... (${MIB + 1} characters)`, message: 'unknown field' }],
    });
  });
});
