import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { HttpToken } from '../../src/config/types.js';
import { createApi } from '../../src/http/api.js';
import { Tokens } from '../../src/http/auth.js';
import { LAG_LIMIT_BYTES, MAX_STREAMS_PER_TOKEN } from '../../src/http/log-stream.js';
import { OPERATIONS } from '../../src/http/operations.js';
import type { ClientEvent, DaemonEmitted } from '../../src/machines/daemon.machine.js';
import type { DaemonPort } from '../../src/protocol/context.js';
import type { DaemonStateName } from '../../src/protocol/public-state.js';
import type { OutputLine } from '../../src/runner/session-log.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import type { BusEvent } from '../../src/sessions/session-bus.js';

const TOKENS: HttpToken[] = [
  { name: 'ci', source: { kind: 'env', name: 'T_CI', raw: 'env:T_CI' }, scopes: ['trigger', 'read'] },
  { name: 'viewer', source: { kind: 'env', name: 'T_VIEW', raw: 'env:T_VIEW' }, scopes: ['read'] },
  { name: 'root', source: { kind: 'env', name: 'T_ROOT', raw: 'env:T_ROOT' }, scopes: ['admin'] },
];
const ENV = { T_CI: 'ci-token-0123456789', T_VIEW: 'view-token-abcdef', T_ROOT: 'root-token-zyxwvu' };

async function api(overrides: Partial<DaemonPort> = {}, bodyLimitBytes = 1024, bodiesMaxBytes?: number) {
  const lines: Record<string, unknown>[] = [];
  const sent: ClientEvent[] = [];
  const counted: string[] = [];
  const port = {
    state: () => 'ready',
    version: '1.2.3',
    send: (event: ClientEvent): DaemonEmitted[] => {
      sent.push(event);
      return [{ type: 'cancel.rejected', sessionId: 'x', reason: 'no queued or running session x' }];
    },
    status: () => ({ state: 'ready' }),
    hosts: () => [],
    readLog: () => undefined,
    record: () => undefined,
    ...overrides,
  } as unknown as DaemonPort;
  const app = createApi({
    daemon: port,
    tokens: await Tokens.resolve(TOKENS, ENV),
    metrics: {
      text: async () => 'agentd_up 1\n',
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      httpRequest: (method, route, status) => counted.push(`${method} ${route} ${status}`),
    },
    readiness: async () => ({ ready: false, reason: 'the daemon is reconciling' }),
    log: pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) }),
    bodyLimitBytes,
    ...(bodiesMaxBytes === undefined ? {} : { bodiesMaxBytes }),
  });
  const request = (path: string, init: RequestInit & { token?: string } = {}) => {
    const headers = new Headers(init.headers);
    if (init.token !== undefined) headers.set('authorization', `Bearer ${init.token}`);
    return app.request(path, { ...init, headers });
  };
  return { request, lines, sent, counted };
}

describe('HTTP API: a body where none is read', () => {
  it('every /v1 operation without a request body refuses one (400, path body) and does nothing; no body, or Content-Length 0, is taken', async () => {
    let reloads = 0;
    const a = await api({
      reload: async () => {
        reloads++;
        return { type: 'reloaded' } as never;
      },
    });
    const noBody = OPERATIONS.filter((op) => op.body === undefined && op.path.startsWith('/v1/'));
    expect(noBody.map((op) => op.id).sort()).toEqual(
      [
        'agents',
        'cancelSession',
        'getSession',
        'listSessions',
        'reload',
        'sessionLog',
        'shutdown',
        'status',
      ].sort(),
    );
    for (const op of noBody) {
      const path = op.path.replace('{id}', '0123456789abcdef');
      // A client sends a body with its length, or chunked; app.request sets neither itself. (A GET's is
      // announced by its headers alone: fetch's Request takes no body for GET.)
      const announced: Record<string, string>[] = [
        { 'content-type': 'application/json', 'content-length': '27' },
        { 'transfer-encoding': 'chunked' },
      ];
      for (const headers of announced) {
        const body = op.method === 'post' ? '{"config":"/etc/other.yml"}' : undefined;
        const refused = await a.request(path, {
          method: op.method.toUpperCase(),
          token: ENV.T_ROOT,
          body,
          headers,
        });
        expect(refused.status, `${op.id} ${JSON.stringify(headers)}`).toBe(400);
        expect(await refused.json(), op.id).toMatchObject({
          code: 'bad_request',
          problems: [
            {
              path: 'body',
              message: expect.stringMatching(new RegExp(`^${op.method.toUpperCase()} \\S+ takes no body`)),
            },
          ],
        });
      }
    }
    // Before: POST /v1/reload with {"config":...} reloaded the daemon's own file (200), and a cancel with a
    // body cancelled, their bodies never read.
    expect(reloads).toBe(0);
    expect(a.sent).toEqual([]);
    const empty = await a.request('/v1/reload', {
      method: 'POST',
      token: ENV.T_ROOT,
      headers: { 'content-length': '0' },
    });
    expect(empty.status).toBe(200);
    expect((await a.request('/v1/reload', { method: 'POST', token: ENV.T_ROOT })).status).toBe(200);
    expect(reloads).toBe(2);
    // Without a token, the token's refusal comes first: nothing about the request is told.
    expect(
      (await a.request('/v1/reload', { method: 'POST', body: '{}', headers: { 'content-length': '2' } }))
        .status,
    ).toBe(401);
    // Probes and scrapers are not held to it.
    expect((await a.request('/healthz', { headers: { 'content-length': '5' } })).status).toBe(200);
  });
});

describe('HTTP API: a reload asked of a daemon that cannot reload', () => {
  it('answers 503 not_accepting while it shuts down, and failed once its machine has failed, never 422 (the file was not judged)', async () => {
    let state: DaemonStateName = 'shutdown.draining';
    let reloads = 0;
    const a = await api({
      state: () => state,
      // As the daemon answers a reload its stop ended (reload-thread.ts): reload_failed.
      reload: async () => {
        reloads++;
        return {
          type: 'reload_failed',
          file: '/etc/agentd.yaml',
          message:
            'the daemon is stopping: the file was not read to the end and nothing changed\nThe daemon keeps running with the configuration it had.',
        } as never;
      },
    });
    const reload = () => a.request('/v1/reload', { method: 'POST', token: ENV.T_ROOT });
    // Before: 422, which says the file is invalid and the old configuration stays.
    const draining = await reload();
    expect(draining.status).toBe(503);
    expect(await draining.json()).toMatchObject({
      code: 'not_accepting',
      message: expect.stringContaining('shutting down'),
      retryable: true,
    });
    expect(reloads).toBe(0);
    state = 'failed';
    const failed = await reload();
    expect(failed.status).toBe(503);
    expect(await failed.json()).toMatchObject({ code: 'failed', retryable: false });
    expect(reloads).toBe(0);
    // A stop that comes while the file is read ends the reload: told as the stop, not as the file's fault.
    state = 'ready';
    const a2 = await api({
      state: () => state,
      reload: async () => {
        state = 'shutdown.draining';
        return {
          type: 'reload_failed',
          file: '/etc/agentd.yaml',
          message: 'the daemon is stopping',
        } as never;
      },
    });
    const ended = await a2.request('/v1/reload', { method: 'POST', token: ENV.T_ROOT });
    expect(ended.status).toBe(503);
    expect(await ended.json()).toMatchObject({ code: 'not_accepting' });
    // An invalid file on a running daemon is still 422.
    state = 'ready';
    const a3 = await api({
      state: () => state,
      reload: async () =>
        ({ type: 'reload_failed', file: '/etc/agentd.yaml', message: 'agents.0: bad' }) as never,
    });
    expect((await a3.request('/v1/reload', { method: 'POST', token: ENV.T_ROOT })).status).toBe(422);
  });
});

describe('HTTP API: tokens and scopes', () => {
  it('needs no token for /healthz and /readyz, and says why it is not ready', async () => {
    const a = await api();
    const health = await a.request('/healthz');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'alive', pid: process.pid, version: '1.2.3' });
    const ready = await a.request('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({
      status: 'not_ready',
      state: 'ready',
      reason: 'the daemon is reconciling',
    });
  });

  it('answers 401 without a token or with a wrong one, 403 without the scope, with the error shape', async () => {
    const a = await api();
    const missing = await a.request('/v1/status');
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="agentd"');
    expect(await missing.json()).toEqual({
      type: 'error',
      code: 'unauthorized',
      message: expect.stringContaining('Authorization: Bearer'),
      problems: [],
      retryable: false,
    });
    for (const token of ['wrong', `${ENV.T_CI}x`, ENV.T_CI.slice(0, -1), '']) {
      const wrong = await a.request('/v1/status', { headers: { authorization: `Bearer ${token}` } });
      expect(wrong.status).toBe(401);
    }
    expect((await a.request('/v1/status', { headers: { authorization: `Basic ${ENV.T_CI}` } })).status).toBe(
      401,
    );
    const forbidden = await a.request('/v1/sessions/0123456789abcdef/cancel', {
      method: 'POST',
      token: ENV.T_VIEW,
    });
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({
      code: 'forbidden',
      message: expect.stringContaining('no cancel scope'),
    });
    expect((await a.request('/v1/reload', { method: 'POST', token: ENV.T_CI })).status).toBe(403);
    expect(a.sent).toEqual([]);
    const ok = await a.request('/v1/status', { token: ENV.T_VIEW });
    expect(ok.status).toBe(200);
    // admin may do everything.
    expect(
      (await a.request('/v1/sessions/0123456789abcdef/cancel', { method: 'POST', token: ENV.T_ROOT })).status,
    ).toBe(404);
    expect(a.sent).toEqual([{ type: 'cancel', sessionId: '0123456789abcdef' }]);
  });

  it('shuts the daemon down only for an admin token: graceful by default, force when asked, as agentd stop does', async () => {
    let state: DaemonStateName = 'ready';
    const a = await api({
      send: (event: ClientEvent) => {
        a.sent.push(event);
        state = 'shutdown.draining';
        return [];
      },
      state: () => state,
    });
    expect((await a.request('/v1/shutdown', { method: 'POST' })).status).toBe(401);
    for (const token of [ENV.T_CI, ENV.T_VIEW]) {
      expect((await a.request('/v1/shutdown', { method: 'POST', token })).status).toBe(403);
    }
    expect(a.sent).toEqual([]);
    const graceful = await a.request('/v1/shutdown', { method: 'POST', token: ENV.T_ROOT });
    expect(graceful.status).toBe(202);
    expect(await graceful.json()).toEqual({ mode: 'graceful', state: 'shutdown.draining' });
    const forced = await a.request('/v1/shutdown?mode=force', { method: 'POST', token: ENV.T_ROOT });
    expect(forced.status).toBe(202);
    expect(await forced.json()).toEqual({ mode: 'force', state: 'shutdown.draining' });
    // No mode but those two, nor any other parameter: a typo must not shut down in another mode.
    for (const query of ['mode=now', 'force=true', 'mode=force&mode=graceful']) {
      const refused = await a.request(`/v1/shutdown?${query}`, { method: 'POST', token: ENV.T_ROOT });
      expect(refused.status, query).toBe(400);
    }
    // Nor a mode in a body, which is not read: it was a graceful shutdown, answered 202. (A client sends a
    // body with its length, or chunked; app.request sets neither itself.)
    for (const [body, headers] of [
      ['{"mode":"force"}', { 'content-type': 'application/json', 'content-length': '16' }],
      ['mode=force', { 'transfer-encoding': 'chunked' }],
    ] as const) {
      const refused = await a.request('/v1/shutdown', { method: 'POST', token: ENV.T_ROOT, body, headers });
      expect(refused.status, body).toBe(400);
      expect(await refused.json(), body).toMatchObject({
        code: 'bad_request',
        problems: [{ path: 'body', message: expect.stringContaining('?mode=force') }],
      });
    }
    expect(a.sent).toEqual([
      { type: 'shutdown', mode: 'graceful' },
      { type: 'shutdown', mode: 'force' },
    ]);
    expect(a.counted).toContain('POST /v1/shutdown 202');
    expect(a.lines.filter((l) => l.route === '/v1/shutdown' && l.status === 202)).toHaveLength(2);
    expect(
      a.lines.find((l) => l.route === '/v1/shutdown' && l.status === 202),
      'the request line at info, with the token name',
    ).toMatchObject({ level: 30, tokenName: 'root' });
  });

  it('reads the Bearer scheme case-insensitively (RFC 7235), and says so when the header is not Bearer TOKEN', async () => {
    const a = await api();
    for (const header of [`bearer ${ENV.T_VIEW}`, `BEARER ${ENV.T_VIEW}`, `Bearer  ${ENV.T_VIEW}`]) {
      expect((await a.request('/v1/status', { headers: { authorization: header } })).status, header).toBe(
        200,
      );
    }
    for (const header of [
      `Basic ${ENV.T_VIEW}`,
      `Token ${ENV.T_VIEW}`,
      'Bearer a b',
      `Bearer${ENV.T_VIEW}`,
    ]) {
      const refused = await a.request('/v1/status', { headers: { authorization: header } });
      expect(refused.status, header).toBe(401);
      const { message } = (await refused.json()) as { message: string };
      // Not "the token is not one of daemon.http.tokens": the operator would look for a wrong token.
      expect(message, header).toMatch(
        /^the Authorization header is not Bearer TOKEN .*send Authorization: Bearer TOKEN$/,
      );
      expect(message).not.toContain(ENV.T_VIEW);
    }
    const unknown = await a.request('/v1/status', { headers: { authorization: 'bearer not-a-token' } });
    expect(await unknown.json()).toMatchObject({ message: 'the token is not one of daemon.http.tokens' });
  });

  it('logs every request with the token name, never its value, rejected ones too; and counts them by route', async () => {
    const a = await api();
    await a.request('/v1/status', { token: ENV.T_VIEW });
    await a.request('/v1/status', { token: ENV.T_CI.replace('0', '1') });
    await a.request('/v1/sessions/0123456789abcdef/cancel', { method: 'POST', token: ENV.T_VIEW });
    await a.request('/nope?token=secret-in-query');
    const requests = a.lines.filter((l) => l.event === 'http.request');
    // Without a valid token at debug (20): anyone can send those as fast as they like.
    expect(requests.map((l) => [l.method, l.route, l.status, l.tokenName, l.auth, l.level])).toEqual([
      ['GET', '/v1/status', 200, 'viewer', undefined, 30],
      ['GET', '/v1/status', 401, null, 'unknown', 20],
      ['POST', '/v1/sessions/:id/cancel', 403, 'viewer', 'scope', 30],
      ['GET', 'unmatched', 404, null, undefined, 20],
    ]);
    expect(requests[3]?.path).toBe('/nope');
    const text = JSON.stringify(a.lines);
    for (const value of Object.values(ENV)) expect(text).not.toContain(value);
    expect(text).not.toContain('secret-in-query');
    expect(a.counted).toEqual([
      'GET /v1/status 200',
      'GET /v1/status 401',
      'POST /v1/sessions/:id/cancel 403',
      'GET unmatched 404',
    ]);
  });
});

describe('HTTP API: tokens no client can send', () => {
  it('are refused at start, by name and source, never by value, with the fix', async () => {
    const values = [
      '',
      'two words-0123456789',
      'tab\there-0123456789',
      'line\nbreak-0123456789',
      'nön-ascii-0123456789',
    ];
    for (const value of values) {
      const resolving = Tokens.resolve(
        [
          ...TOKENS,
          {
            ...TOKENS[0],
            name: 'bad',
            source: { kind: 'env', name: 'T_BAD', raw: 'env:T_BAD' },
          } as HttpToken,
        ],
        {
          ...ENV,
          T_BAD: value,
        },
      );
      const error = await resolving.then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message, JSON.stringify(value)).toMatch(
        /^daemon\.http token bad: the value of env:T_BAD (is empty|contains a space|contains a control character|contains a non-ASCII character)/,
      );
      expect(error?.message).toContain('printable ASCII without spaces');
      if (value !== '') expect(error?.message).not.toContain(value);
    }
    // Every value the Bearer pattern takes is still taken.
    await expect(
      Tokens.resolve(TOKENS, { ...ENV, T_CI: '!~"#$%&\'()*+,-./0123456789:;<=>?@[\\]^_`{|}' }),
    ).resolves.toBeDefined();
  });
});

describe('HTTP API: a token sending requests by the thousand', () => {
  it('has 100 of them logged at info at once, then 10 a second; the rest at debug, all counted', async () => {
    const a = await api();
    const started = performance.now();
    for (let i = 0; i < 300; i++) await a.request('/v1/reload', { method: 'POST', token: ENV.T_VIEW });
    const seconds = (performance.now() - started) / 1000;
    const requests = a.lines.filter((l) => l.event === 'http.request');
    expect(requests).toHaveLength(300);
    const info = requests.filter((l) => l.level === 30).length;
    expect(info).toBeGreaterThanOrEqual(100);
    expect(info).toBeLessThanOrEqual(100 + Math.ceil(seconds * 10));
    expect(requests.filter((l) => l.level === 20)).toHaveLength(300 - info);
    expect(a.counted).toHaveLength(300);
    // Another token has its own budget.
    await a.request('/v1/status', { token: ENV.T_CI });
    expect(a.lines.at(-1)).toMatchObject({ event: 'http.request', tokenName: 'ci', level: 30 });
  });
});

describe('HTTP API: a body that arrives in pieces', () => {
  const streamOf = (pieces: Uint8Array[], end?: Error) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (const piece of pieces) controller.enqueue(piece);
        if (end === undefined) controller.close();
        else controller.error(end);
      },
    });
  const post = (a: Awaited<ReturnType<typeof api>>, body: ReadableStream<Uint8Array>) =>
    a.request('/v1/sessions', {
      method: 'POST',
      token: ENV.T_CI,
      headers: { 'content-type': 'application/json' },
      body,
      duplex: 'half',
    } as RequestInit & { token: string });

  it('is read whole when it comes a byte at a time', async () => {
    const staged: string[] = [];
    const a = await api(
      {
        newSessionId: () => '00000000000000c3',
        makesNoSession: () => false,
        stage: async (_id, payload) => {
          staged.push(payload.request?.toString('utf8') ?? '');
        },
        unstage: () => {},
        send: () => [{ type: 'trigger.accepted', sessionId: '00000000000000c3', queued: false, position: 0 }],
      } as Partial<DaemonPort>,
      64 * 1024,
    );
    const text = JSON.stringify({ agent: 'demo', request: 'r'.repeat(3000) });
    const response = await post(a, streamOf([...Buffer.from(text)].map((byte) => Uint8Array.of(byte))));
    expect(response.status).toBe(201);
    expect(staged).toEqual(['r'.repeat(3000)]);
  });

  it('cut off by the client is answered 400 aborted and logged at debug, not as the daemon failing', async () => {
    const a = await api();
    const cut = Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    const response = await post(a, streamOf([Buffer.from('{"agent":"de')], cut));
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 'aborted' });
    expect(a.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    expect(a.lines.some((l) => l.event === 'http.aborted' && l.level === 20)).toBe(true);
  });
});

describe('HTTP API: bad requests', () => {
  it('refuses a body that repeats a key, naming its path, instead of acting on the last value', async () => {
    const submitted: unknown[] = [];
    const a = await api(
      {
        newSessionId: () => '0123456789abcdef',
        send: (event: ClientEvent) => {
          submitted.push(event);
          return [];
        },
      } as Partial<DaemonPort>,
      1 << 20,
    );
    const post = (body: string) =>
      a.request('/v1/sessions', {
        method: 'POST',
        token: ENV.T_CI,
        body,
        headers: { 'content-type': 'application/json' },
      });
    const refused = await post('{"agent":"nope","agent":"demo","workUnit":"w"}');
    expect(refused.status).toBe(400);
    const body = (await refused.json()) as { code: string; message: string; problems: unknown[] };
    expect(body.code).toBe('bad_request');
    expect(body.problems).toEqual([
      { path: 'body.agent', message: expect.stringMatching(/^given more than once.*give each field once/) },
    ]);
    expect(body.message).toMatch(/^invalid request: body\.agent: given more than once/);
    // Nested and escaped, with the body's other problems.
    const nested = await post('{"agent":"demo","inputs":[{"name":"a","data":"","n\\u0061me":"b"}],"x":1}');
    expect(((await nested.json()) as { problems: { path: string }[] }).problems.map((p) => p.path)).toEqual([
      'body.inputs.0.name',
      'body.x',
    ]);
    // A repeated field has its one problem, not also one of the value JSON.parse kept.
    const mistyped = await post('{"agent":"demo","agent":42,"timeout":7}');
    expect(((await mistyped.json()) as { problems: { path: string }[] }).problems.map((p) => p.path)).toEqual(
      ['body.agent', 'body.timeout'],
    );
    // Too deep, or too many fields, is refused before JSON.parse reads it.
    const deep = await post(`{"agent":"demo","x":${'['.repeat(50_000)}${']'.repeat(50_000)}}`);
    expect(deep.status).toBe(400);
    expect(await deep.json()).toMatchObject({
      code: 'bad_request',
      problems: [
        { path: 'body', message: expect.stringMatching(/^nests objects and arrays more than 32 deep/) },
      ],
    });
    const fields = await post(
      JSON.stringify(Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, 0]))),
    );
    expect(await fields.json()).toMatchObject({
      code: 'bad_request',
      problems: [{ path: 'body', message: expect.stringMatching(/^holds more than 4096 fields/) }],
    });
    const objects = await post(`{"agent":"demo","x":[${'{},'.repeat(100_000)}{}]}`);
    expect(objects.status).toBe(400);
    expect(await objects.json()).toMatchObject({
      code: 'bad_request',
      problems: [
        { path: 'body', message: expect.stringMatching(/^holds more than 4096 objects and arrays/) },
      ],
    });
    expect(submitted).toEqual([]);
    // The same body without the repetition is taken.
    expect((await post('{"agent":"demo","workUnit":"w"}')).status).not.toBe(400);
  });

  it('refuses a body in another charset than UTF-8, or with bytes that are not UTF-8, instead of handing the agent U+FFFD', async () => {
    const submitted: unknown[] = [];
    const a = await api({
      newSessionId: () => '0123456789abcdef',
      send: (event: ClientEvent) => {
        submitted.push(event);
        return [];
      },
    } as Partial<DaemonPort>);
    const post = (body: string | Uint8Array, type: string) =>
      a.request('/v1/sessions', { method: 'POST', token: ENV.T_CI, body, headers: { 'content-type': type } });
    const latin1 = Buffer.concat([
      Buffer.from('{"agent":"demo","request":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('"}'),
    ]);
    const declared = await post(latin1, 'application/json; charset=ISO-8859-1');
    expect(declared.status).toBe(415);
    expect(((await declared.json()) as { message: string }).message).toContain('not charset=ISO-8859-1');
    const undeclared = await post(latin1, 'application/json');
    expect(undeclared.status).toBe(400);
    expect(await undeclared.json()).toMatchObject({
      code: 'bad_json',
      message: expect.stringMatching(/^the body holds bytes that are not UTF-8 .*, the first at byte 30,/),
    });
    expect(submitted).toEqual([]);
    // UTF-8, said or not, is taken as before.
    for (const type of ['application/json; charset=utf-8', 'application/json;charset="UTF8"']) {
      const ok = await post('{"agent":"demo","request":"café"}', type);
      expect(ok.status, type).not.toBe(415);
      expect(ok.status, type).not.toBe(400);
    }
  });

  it('answers malformed, oversized, mistyped and unknown-field bodies with the error shape', async () => {
    const a = await api();
    const post = (body: string, type = 'application/json') =>
      a.request('/v1/sessions', { method: 'POST', token: ENV.T_CI, body, headers: { 'content-type': type } });
    const codes = async (r: Response) => [r.status, ((await r.json()) as { code: string }).code];
    expect(await codes(await post('{"agent":'))).toEqual([400, 'bad_json']);
    const bom = await post('\uFEFF{"agent":"x"}');
    expect(bom.status).toBe(400);
    expect(((await bom.json()) as { message: string }).message).toMatch(
      /^the body starts with a UTF-8 byte order mark/,
    );
    expect(await codes(await post('{"agent":"x"}', 'text/plain'))).toEqual([415, 'unsupported_media_type']);
    expect(await codes(await post(JSON.stringify({ agent: 'x', request: 'y'.repeat(2000) })))).toEqual([
      413,
      'payload_too_large',
    ]);
    const bad = await post(JSON.stringify({ agent: 7, extra: true, timeout: 'x'.repeat(100) }));
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { code: string; problems: { path: string; message: string }[] };
    expect(body.code).toBe('bad_request');
    expect(body.problems.map((p) => p.path).sort()).toEqual(['body.agent', 'body.extra', 'body.timeout']);
    expect(await codes(await a.request('/v1/sessions/NOT-AN-ID', { token: ENV.T_CI }))).toEqual([
      400,
      'bad_request',
    ]);
    expect(await codes(await a.request('/v1/sessions/0123456789abcdef', { token: ENV.T_CI }))).toEqual([
      404,
      'unknown_session',
    ]);
    expect(await codes(await a.request('/v2/anything', { token: ENV.T_CI }))).toEqual([404, 'not_found']);
  });

  it('words the problems of a body as the socket does: a field left out is required, no zod prefix', async () => {
    const a = await api();
    const post = async (body: unknown) => {
      const response = await a.request('/v1/sessions', {
        method: 'POST',
        token: ENV.T_CI,
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
      });
      return (await response.json()) as { message: string; problems: { path: string; message: string }[] };
    };
    const missing = await post({ repo: 'https://example.com/r.git' });
    expect(missing.problems).toEqual([{ path: 'body.agent', message: 'required: string' }]);
    expect(missing.message).toBe('invalid request: body.agent: required: string; see docs/openapi.json');
    const mistyped = await post({ agent: 7, inputs: 'x' });
    expect(mistyped.problems).toEqual([
      { path: 'body.agent', message: 'expected string, received number' },
      { path: 'body.inputs', message: 'expected array, received string' },
    ]);
    // One problem for a mistyped field: zod also checked an array's length against the string's bounds.
    expect((await post({ agent: [] })).problems).toEqual([
      { path: 'body.agent', message: 'expected string, received array' },
    ]);
    const notObject = await post([1]);
    expect(notObject.problems).toEqual([{ path: 'body', message: 'expected object, received array' }]);
  });

  it('answers an unknown long path with a short 404: an answer never grows with the request', async () => {
    const a = await api();
    // A quote is sent as %22: a path of 15,000 of them would come back as 45,000 bytes.
    const response = await a.request(`/${'%22'.repeat(15_000)}`);
    const text = await response.text();
    expect(response.status).toBe(404);
    expect(text.length).toBeLessThan(600);
    expect(JSON.parse(text)).toMatchObject({ code: 'not_found' });
  });

  it('answers a path of the API asked with another method 405 with Allow, not 404', async () => {
    const a = await api();
    const answer = async (method: string, path: string) => {
      const response = await a.request(path, { method, token: ENV.T_ROOT });
      const body = (await response.json()) as { code: string; message: string };
      return { status: response.status, allow: response.headers.get('allow'), ...body };
    };
    expect(await answer('DELETE', '/v1/sessions/0123456789abcdef')).toMatchObject({
      status: 405,
      allow: 'GET, HEAD',
      code: 'method_not_allowed',
      message: expect.stringContaining('/v1/sessions/0123456789abcdef does not take DELETE, only GET, HEAD'),
    });
    expect(await answer('PUT', '/v1/sessions')).toMatchObject({ status: 405, allow: 'POST, GET, HEAD' });
    expect(await answer('GET', '/v1/reload')).toMatchObject({ status: 405, allow: 'POST' });
    expect(await answer('GET', '/v1/sessions/0123456789abcdef/cancel')).toMatchObject({
      status: 405,
      allow: 'POST',
    });
    expect(await answer('OPTIONS', '/healthz')).toMatchObject({ status: 405, allow: 'GET, HEAD' });
    // Still 404: no operation has the path, whatever the method.
    expect(await answer('DELETE', '/v1/sessions/a/b')).toMatchObject({ status: 404, code: 'not_found' });
    expect(await answer('POST', '/v1/status/')).toMatchObject({ status: 404, code: 'not_found' });
  });

  it('serves metrics in the Prometheus format to a read token', async () => {
    const a = await api();
    const metrics = await a.request('/metrics', { token: ENV.T_VIEW });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    expect(await metrics.text()).toBe('agentd_up 1\n');
    expect((await a.request('/metrics')).status).toBe(401);
  });
});

/** When the daemon read the lines of these logs. */
const TIME = '2026-12-02T10:00:00.000Z';
const RECORD = {
  version: 1,
  id: '00000000000000a1',
  agent: 'demo',
  repo: 'https://git.example/demo.git',
  acceptedAt: '2026-06-01T10:00:00.000Z',
  phase: 'running',
  phases: [{ phase: 'queued', at: '2026-06-01T10:00:00.000Z' }],
} as unknown as SessionRecord;

describe('HTTP API: sessions', () => {
  it('creates a session with the request text, answers 201, 200 for a repeated key, and the rejection code otherwise', async () => {
    const staged: { id: string; request?: string }[] = [];
    let next: DaemonEmitted = { type: 'trigger.accepted', sessionId: 'x', queued: true, position: 2 };
    const a = await api({
      newSessionId: () => '00000000000000b2',
      // A trigger with files is staged only if the daemon may make a session of it (src/protocol/submit.ts).
      makesNoSession: () => false,
      stage: async (id, payload) => {
        staged.push({ id, request: payload.request?.toString('utf8') });
      },
      unstage: () => {},
      send: (event) => {
        sent.push(event);
        return [next];
      },
    } as Partial<DaemonPort>);
    const sent: ClientEvent[] = [];
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      a.request('/v1/sessions', {
        method: 'POST',
        token: ENV.T_CI,
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', ...headers },
      });
    next = { type: 'trigger.accepted', sessionId: '00000000000000b2', queued: true, position: 2 };
    const created = await post({ agent: 'demo', workUnit: 'issue-7', request: 'fix it ✓', key: 'k-1' });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/v1/sessions/00000000000000b2');
    expect(await created.json()).toEqual({ sessionId: '00000000000000b2', queued: true, position: 2 });
    expect(staged).toEqual([{ id: '00000000000000b2', request: 'fix it ✓' }]);
    // The key in the token's own namespace: another token's same key is another key.
    expect(sent[0]).toMatchObject({
      type: 'trigger',
      agent: 'demo',
      workUnit: 'issue-7',
      key: 'http:ci:k-1',
    });
    next = {
      type: 'trigger.accepted',
      sessionId: '00000000000000b2',
      queued: false,
      position: 0,
      existing: true,
    };
    const again = await post({ agent: 'demo' }, { 'idempotency-key': 'k-1' });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({
      sessionId: '00000000000000b2',
      queued: false,
      position: 0,
      existing: true,
    });
    expect(sent[1]).toMatchObject({ key: 'http:ci:k-1' });
    const other = await a.request('/v1/sessions', {
      method: 'POST',
      token: ENV.T_ROOT,
      body: JSON.stringify({ agent: 'demo', key: 'k-1' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(other.status).toBe(200);
    expect(sent[2]).toMatchObject({ key: 'http:root:k-1' });
    const statuses: [string, number][] = [
      ['unknown_agent', 422],
      ['key_conflict', 409],
      ['state_dir_full', 503],
      ['not_accepting', 503],
    ];
    for (const [code, status] of statuses) {
      next = { type: 'trigger.rejected', sessionId: 'x', code: code as never, reason: `because ${code}` };
      const rejected = await post({ agent: 'demo' });
      expect(rejected.status).toBe(status);
      expect(await rejected.json()).toEqual({
        type: 'error',
        code,
        message: `because ${code}`,
        problems: [],
        retryable: status === 503,
      });
    }
    const differ = await post({ agent: 'demo', key: 'a' }, { 'idempotency-key': 'b' });
    expect(differ.status).toBe(400);
  });

  it('lists history with the filters from the query, checked', async () => {
    const filters: unknown[] = [];
    const a = await api({
      history: (filter) => {
        filters.push(filter);
        return { sessions: [RECORD], more: 3 };
      },
    } as Partial<DaemonPort>);
    const list = await a.request('/v1/sessions?agent=demo&outcome=failed&limit=5&since=2h', {
      token: ENV.T_VIEW,
    });
    expect(list.status).toBe(200);
    expect(await list.json()).toEqual({ sessions: [RECORD], more: 3 });
    expect(filters).toEqual([{ agent: 'demo', outcome: 'failed', limit: 5, since: '2h' }]);
    const bad = await a.request('/v1/sessions?limit=0&outcome=meh&colour=red', { token: ENV.T_VIEW });
    expect(bad.status).toBe(400);
    const problems = ((await bad.json()) as { problems: { path: string }[] }).problems
      .map((p) => p.path)
      .sort();
    expect(problems).toEqual(['query.colour', 'query.limit', 'query.outcome']);
  });

  it('says what a number in the query takes: not zod\'s "expected number, received NaN"', async () => {
    const a = await api({ history: () => ({ sessions: [], more: 0 }) } as Partial<DaemonPort>);
    const problems = async (path: string) => {
      const response = await a.request(path, { token: ENV.T_VIEW });
      expect(response.status, path).toBe(400);
      return ((await response.json()) as { problems: { path: string; message: string }[] }).problems;
    };
    const form = 'in decimal digits only (like';
    for (const value of ['abc', '1.5', 'Infinity', '', '1e308'])
      expect(await problems(`/v1/sessions?limit=${value}`), value).toEqual([
        {
          path: 'query.limit',
          message: expect.stringMatching(/^a whole number from 1 to 1000, in decimal digits/),
        },
      ]);
    for (const value of ['0', '1001', '99999999999999999999'])
      expect(await problems(`/v1/sessions?limit=${value}`), value).toEqual([
        { path: 'query.limit', message: 'a whole number from 1 to 1000' },
      ]);
    for (const value of ['abc', '-1', '0.5'])
      expect(await problems(`/v1/sessions/0123456789abcdef/log?after=${value}`), value).toEqual([
        { path: 'query.after', message: expect.stringContaining("a line's seq: a whole number, 0 or more") },
      ]);
    expect((await problems('/v1/sessions?limit=0x10'))[0]?.message).toContain(form);
  });

  it('takes a number in the query in decimal digits only: 0x10, 1e1, " 5", "+5", "5.0", "05" and an empty one are refused, not read as 16, 10 or 5', async () => {
    const filters: unknown[] = [];
    const a = await api({
      history: (filter) => {
        filters.push(filter);
        return { sessions: [], more: 0 };
      },
      readLog: () => undefined,
      record: () => undefined,
    } as Partial<DaemonPort>);
    for (const value of ['0x10', '1e1', '%205', '5%20', '+5', '5.0', '05', '0b11', '']) {
      for (const path of [
        `/v1/sessions?limit=${value}`,
        `/v1/sessions/0123456789abcdef/log?after=${value}`,
      ]) {
        const response = await a.request(path, { token: ENV.T_VIEW });
        expect(response.status, path).toBe(400);
        const body = (await response.json()) as {
          message: string;
          problems: { path: string; message: string }[];
        };
        expect(body.problems, path).toHaveLength(1);
        expect(body.problems[0]?.path, path).toBe(path.includes('limit') ? 'query.limit' : 'query.after');
        expect(body.problems[0]?.message, path).toContain('decimal digits only');
      }
    }
    expect(filters).toEqual([]);
    const ok = await a.request('/v1/sessions?limit=50', { token: ENV.T_VIEW });
    expect(ok.status).toBe(200);
    expect(filters).toEqual([{ limit: 50 }]);
  });

  it('refuses a query parameter of a /v1 operation that takes none (cancel?force=true), instead of ignoring it; probes keep theirs', async () => {
    const a = await api();
    const cancel = await a.request('/v1/sessions/0123456789abcdef/cancel?force=true', {
      method: 'POST',
      token: ENV.T_ROOT,
    });
    expect(cancel.status).toBe(400);
    expect(((await cancel.json()) as { problems: unknown[] }).problems).toEqual([
      { path: 'query.force', message: 'unknown field; this operation takes no query parameters' },
    ]);
    expect(a.sent).toEqual([]);
    const status = await a.request(`/v1/status?verbose=1&${'k'.repeat(100)}=2`, { token: ENV.T_VIEW });
    expect(status.status).toBe(400);
    expect(((await status.json()) as { problems: { path: string }[] }).problems.map((p) => p.path)).toEqual([
      'query.verbose',
      `query.${'k'.repeat(64)}... (100 characters)`,
    ]);
    expect((await a.request('/healthz?probe=1')).status).toBe(200);
  });

  it('refuses a query parameter given twice (?limit=5&limit=500) naming it, instead of using the first', async () => {
    const filters: unknown[] = [];
    const a = await api({
      history: (filter) => {
        filters.push(filter);
        return { sessions: [], more: 0 };
      },
    } as Partial<DaemonPort>);
    const response = await a.request('/v1/sessions?limit=5&agent=demo&limit=500', { token: ENV.T_VIEW });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { code: string; problems: unknown[] };
    expect(body.code).toBe('bad_request');
    expect(body.problems).toEqual([{ path: 'query.limit', message: 'given 2 times; give it once' }]);
    // An unknown parameter given twice is told as unknown; one given once is taken.
    const unknown = await a.request('/v1/sessions?colour=1&colour=2', { token: ENV.T_VIEW });
    expect(((await unknown.json()) as { problems: unknown[] }).problems).toEqual([
      { path: 'query.colour', message: 'unknown field' },
    ]);
    expect(filters).toEqual([]);
  });

  it('shows a token the key it gave as it gave it; another key as the daemon keeps it', async () => {
    const keyed = { ...RECORD, key: 'http:ci:pr-42-rev-1' };
    const a = await api({
      record: () => keyed,
      history: () => ({ sessions: [keyed], more: 0 }),
    } as Partial<DaemonPort>);
    const own = await a.request(`/v1/sessions/${RECORD.id}`, { token: ENV.T_CI });
    expect(await own.json()).toMatchObject({ key: 'pr-42-rev-1' });
    const listed = (await (await a.request('/v1/sessions', { token: ENV.T_CI })).json()) as {
      sessions: { key?: string }[];
    };
    expect(listed.sessions[0]?.key).toBe('pr-42-rev-1');
    const other = await a.request(`/v1/sessions/${RECORD.id}`, { token: ENV.T_VIEW });
    expect(await other.json()).toMatchObject({ key: 'http:ci:pr-42-rev-1' });
  });
});

describe('HTTP API: log streams', () => {
  const at = (seq: number, text: string): OutputLine => ({ seq, time: TIME, stream: 'stdout', text });
  /** A stored log of these lines (seq 1, 2, ...), read the way the daemon's LogReader reads one. */
  function logPort(lines: string[], record = RECORD, batch = Number.POSITIVE_INFINITY) {
    let listener: ((event: BusEvent) => void) | undefined;
    let following = 0;
    const reader = (after = 0) => {
      let rest = lines.map((text, i) => at(i + 1, text)).filter((line) => line.seq > after);
      let done = false;
      return {
        next: () => {
          if (done) return undefined;
          const taken = rest.slice(0, batch);
          rest = rest.slice(taken.length);
          if (rest.length === 0) done = true;
          return taken;
        },
        close: () => {
          done = true;
        },
      };
    };
    return {
      port: {
        follow: (_id: string, l: (event: BusEvent) => void) => {
          listener = l;
          following++;
          return () => {
            following--;
          };
        },
        readLog: (id: string) => (id === record.id ? { record, reader } : undefined),
      } as Partial<DaemonPort>,
      emit: (event: BusEvent) => listener?.(event),
      following: () => following,
    };
  }
  const read = async (response: Response) => {
    const reader = response.body?.getReader();
    let text = '';
    for (;;) {
      const chunk = await reader?.read();
      if (!chunk || chunk.done) return text;
      text += new TextDecoder().decode(chunk.value);
    }
  };

  it('streams stored lines after `after`, then live phases and output, and the outcome last (NDJSON)', async () => {
    const log = logPort(['one', 'two', 'three']);
    const a = await api(log.port);
    const response = await a.request(`/v1/sessions/${RECORD.id}/log?after=1`, { token: ENV.T_VIEW });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const text = read(response);
    log.emit({ type: 'output', sessionId: RECORD.id, lines: [at(4, 'four')] });
    log.emit({ type: 'phase', sessionId: RECORD.id, agent: 'demo', phase: 'tearing_down' });
    log.emit({ type: 'outcome', sessionId: RECORD.id, record: { ...RECORD, outcome: 'succeeded' } });
    expect(
      (await text)
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { type: 'output', seq: 2, line: 'two', stream: 'stdout', time: TIME },
      { type: 'output', seq: 3, line: 'three', stream: 'stdout', time: TIME },
      { type: 'output', seq: 4, line: 'four', stream: 'stdout', time: TIME },
      { type: 'phase', phase: 'tearing_down' },
      { type: 'outcome', record: { ...RECORD, outcome: 'succeeded' } },
    ]);
    expect(log.following()).toBe(0);
  });

  it('speaks SSE with the seq as event id, resuming from Last-Event-ID; follow=false ends after what is stored', async () => {
    const log = logPort(['a', 'b', 'c'], { ...RECORD, outcome: 'failed' } as SessionRecord);
    const a = await api(log.port);
    const sse = await a.request(`/v1/sessions/${RECORD.id}/log`, {
      token: ENV.T_VIEW,
      headers: { accept: 'text/event-stream', 'last-event-id': '2' },
    });
    expect(sse.headers.get('content-type')).toContain('text/event-stream');
    const text = await read(sse);
    expect(text).toBe(
      `id: 3\nevent: output\ndata: {"type":"output","seq":3,"line":"c","stream":"stdout","time":"${TIME}"}\n\nevent: outcome\ndata: ${JSON.stringify({ type: 'outcome', record: { ...RECORD, outcome: 'failed' } })}\n\n`,
    );
    const running = logPort(['x']);
    const b = await api(running.port);
    const once = await b.request(`/v1/sessions/${RECORD.id}/log?follow=false`, { token: ENV.T_VIEW });
    expect(await read(once)).toBe(
      `{"type":"output","seq":1,"line":"x","stream":"stdout","time":"${TIME}"}\n`,
    );
    expect(running.following()).toBe(0);
    expect((await b.request('/v1/sessions/0000000000000000/log', { token: ENV.T_VIEW })).status).toBe(404);
  });

  it('sends a long stored log whole to a client that reads it, with the outcome last', async () => {
    // 30,000 short lines: about 2.5 MB as events, more than a client may leave unread at once.
    const lines = Array.from({ length: 30_000 }, (_, i) => `line ${i}`);
    const log = logPort(lines, { ...RECORD, outcome: 'succeeded' } as SessionRecord, 500);
    const a = await api(log.port);
    const response = await a.request(`/v1/sessions/${RECORD.id}/log?follow=false`, { token: ENV.T_VIEW });
    const events = (await read(response))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; seq?: number });
    expect(events.filter((e) => e.type === 'output')).toHaveLength(30_000);
    expect(events.at(-1)?.type).toBe('outcome');
    expect(events.some((e) => e.type === 'lagging')).toBe(false);
  });

  it('answers HEAD without opening a stream: 64 of them leave every stream free', async () => {
    const log = logPort(['a']);
    const a = await api(log.port);
    for (let i = 0; i < 70; i++) {
      const head = await a.request(`/v1/sessions/${RECORD.id}/log`, { method: 'HEAD', token: ENV.T_VIEW });
      expect(head.status).toBe(200);
    }
    expect(log.following()).toBe(0);
    const get = await a.request(`/v1/sessions/${RECORD.id}/log?follow=false`, { token: ENV.T_VIEW });
    expect(get.status).toBe(200);
    expect(await read(get)).toContain('"line":"a"');
    const unknown = await a.request('/v1/sessions/0000000000000000/log', {
      method: 'HEAD',
      token: ENV.T_VIEW,
    });
    expect(unknown.status).toBe(404);
  });

  it('ends the stream of a client that does not read, with `lagging` and where to resume, instead of buffering', async () => {
    const log = logPort([]);
    const a = await api(log.port);
    const response = await a.request(`/v1/sessions/${RECORD.id}/log`, { token: ENV.T_VIEW });
    const line = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 200; i++)
      log.emit({ type: 'output', sessionId: RECORD.id, lines: [at(i + 1, line)] });
    expect(log.following()).toBe(0);
    const events = (await read(response))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; after?: number });
    const last = events.at(-1);
    expect(last?.type).toBe('lagging');
    expect(events.length - 1).toBe(last?.after);
    expect(events.length).toBeLessThan(100);
  });

  it('never holds more than its lag limit for a client that does not read, whatever a line escapes to', async () => {
    const log = logPort([]);
    const a = await api(log.port);
    const response = await a.request(`/v1/sessions/${RECORD.id}/log`, { token: ENV.T_VIEW });
    // 64 KiB of control characters: 384 KiB of JSON each.
    const line = '\u0001'.repeat(64 * 1024);
    for (let i = 0; i < 20; i++) log.emit({ type: 'output', sessionId: RECORD.id, lines: [at(i + 1, line)] });
    const text = await read(response);
    // What was held unread: the high-water mark, the lag limit, the lagging event.
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(LAG_LIMIT_BYTES + 64 * 1024 + 1024);
    const events = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; seq?: number; after?: number });
    const last = events.at(-1);
    expect(last?.type).toBe('lagging');
    // Resumed after `after`, the first line not sent is the first sent.
    expect(events.at(-2)?.seq).toBe(last?.after);
  });

  describe('of a session history lets go of while its log is sent', () => {
    const SEALED = {
      ...RECORD,
      phase: 'finished',
      outcome: 'succeeded',
      recordDir: '/var/lib/agentd/records/demo/00000000000000a1',
    } as unknown as SessionRecord;
    /** A port whose log is gone from history after the first read; `record` finds the sealed record or not. */
    function prunedPort(sealed: SessionRecord | undefined) {
      const log = logPort(['one', 'two'], RECORD, 1);
      let reads = 0;
      const readLog = log.port.readLog as NonNullable<DaemonPort['readLog']>;
      return {
        ...log.port,
        readLog: (id: string) => (reads++ === 0 ? readLog(id) : undefined),
        record: () => sealed,
      } as Partial<DaemonPort>;
    }
    const events = async (response: Response) =>
      (await read(response))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; seq?: number; message?: string; record?: unknown });

    for (const follow of [true, false]) {
      it(`ends with the sealed record's outcome and where the log is${follow ? ' (following)' : ''}`, async () => {
        const a = await api(prunedPort(SEALED));
        const response = await a.request(`/v1/sessions/${RECORD.id}/log?follow=${follow}`, {
          token: ENV.T_VIEW,
        });
        const sent = await events(response);
        expect(sent.map((e) => e.seq ?? e.type)).toEqual([1, 2, 'outcome']);
        expect(sent.at(-1)).toMatchObject({
          type: 'outcome',
          record: { id: RECORD.id, outcome: 'succeeded' },
          message: expect.stringContaining(`${SEALED.recordDir}/session.log`),
        });
      });

      it(`ends with an unknown_session error when no outcome is known${follow ? ' (following)' : ''}`, async () => {
        const a = await api(prunedPort(undefined));
        const response = await a.request(`/v1/sessions/${RECORD.id}/log?follow=${follow}`, {
          token: ENV.T_VIEW,
        });
        const sent = await events(response);
        expect(sent.map((e) => e.seq ?? e.type)).toEqual([1, 2, 'error']);
        expect(sent.at(-1)).toMatchObject({
          type: 'error',
          code: 'unknown_session',
          message: expect.stringContaining('no longer kept'),
        });
      });
    }

    it('sends that error in SSE as a `problem` event, which EventSource does not take for a failed connection', async () => {
      const a = await api(prunedPort(undefined));
      const response = await a.request(`/v1/sessions/${RECORD.id}/log?format=sse`, { token: ENV.T_VIEW });
      const last = (await read(response)).trim().split('\n\n').at(-1) ?? '';
      expect(last).toMatch(/^event: problem\ndata: /);
      expect(JSON.parse(last.split('data: ')[1] ?? '')).toMatchObject({
        type: 'error',
        code: 'unknown_session',
      });
    });

    it('beyond history: its outcome and where its log is, as GET /v1/sessions/{id} finds its record', async () => {
      const a = await api({
        readLog: () => undefined,
        record: (id: string) => (id === RECORD.id ? SEALED : undefined),
      });
      for (const format of ['ndjson', 'sse']) {
        const response = await a.request(`/v1/sessions/${RECORD.id}/log?format=${format}`, {
          token: ENV.T_VIEW,
        });
        expect(response.status).toBe(200);
        const text = await read(response);
        const event = JSON.parse(format === 'sse' ? (text.split('data: ')[1] ?? '') : text);
        if (format === 'sse') expect(text).toMatch(/^event: outcome\n/);
        expect(event).toEqual({
          type: 'outcome',
          record: SEALED,
          message: `session ${RECORD.id} is beyond daemon.history: its log is in its sealed record, ${SEALED.recordDir}/session.log (\`agentd export ${RECORD.id}\` packs the record)`,
        });
      }
      const head = await a.request(`/v1/sessions/${RECORD.id}/log`, { method: 'HEAD', token: ENV.T_VIEW });
      expect(head.status).toBe(200);
      expect((await a.request('/v1/sessions/0000000000000000/log', { token: ENV.T_VIEW })).status).toBe(404);
    });
  });

  it(`opens at most ${MAX_STREAMS_PER_TOKEN} log streams for one token: one reader cannot take every stream`, async () => {
    const log = logPort([]);
    const a = await api(log.port);
    const open = [];
    for (let i = 0; i < MAX_STREAMS_PER_TOKEN; i++) {
      const response = await a.request(`/v1/sessions/${RECORD.id}/log`, { token: ENV.T_VIEW });
      expect(response.status).toBe(200);
      open.push(response);
    }
    const refused = await a.request(`/v1/sessions/${RECORD.id}/log`, { token: ENV.T_VIEW });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ code: 'busy' });
    // Another token still gets one.
    const other = await a.request(`/v1/sessions/${RECORD.id}/log`, { token: ENV.T_CI });
    expect(other.status).toBe(200);
    for (const response of [...open, other]) await response.body?.cancel();
  });
});

describe('HTTP API: bodies being received', () => {
  it('holds at most half its budget for one token: beyond, 503 busy for that token, not for another; room again as they end', async () => {
    const a = await api(
      {
        newSessionId: () => '00000000000000c1',
        makesNoSession: () => false,
        stage: async () => {},
        unstage: () => {},
        send: () => [{ type: 'trigger.accepted', sessionId: '00000000000000c1', queued: false, position: 0 }],
      } as Partial<DaemonPort>,
      1024,
      4096,
    );
    /** A POST whose body sends `head` at once and the rest only when told. */
    const slow = (head: string, token = ENV.T_CI) => {
      let finish: (rest: string) => void = () => {};
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(head));
          finish = (rest) => {
            controller.enqueue(new TextEncoder().encode(rest));
            controller.close();
          };
        },
      });
      const response = a.request('/v1/sessions', {
        method: 'POST',
        token,
        body,
        headers: { 'content-type': 'application/json' },
        duplex: 'half',
      } as RequestInit & { token: string });
      return { response, finish: (rest: string) => finish(rest) };
    };
    const head = `{"agent":"demo","request":"${'x'.repeat(900)}`;
    // A budget of 4096 bytes: 2048 for one token.
    const first = slow(head);
    const second = slow(head);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const refused = await slow(head).response;
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ code: 'busy', retryable: true });
    // Another token is not held up by the first one's bodies.
    const other = slow(head, ENV.T_ROOT);
    other.finish('"}');
    expect((await other.response).status).toBe(201);
    first.finish('"}');
    expect((await first.response).status).toBe(201);
    const again = slow(head);
    again.finish('"}');
    expect((await again.response).status).toBe(201);
    second.finish('"}');
    expect((await second.response).status).toBe(201);
  });
});
