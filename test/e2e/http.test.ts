import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionRecord } from '../../src/sessions/records.js';
import { gitAndGate, leftoversAfterCleanup, startDaemon } from '../helpers/daemon.js';
import { makeTempDir } from '../helpers/resources.js';
import { mulberry32 } from '../reliability/fuzz.js';

const { gate, agent } = gitAndGate();

afterEach(async () => {
  gate.hold();
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

const TOKENS = {
  AGENTD_E2E_TOKEN_CI: 'ci-9f8e7d6c5b4a39281706f5e4',
  AGENTD_E2E_TOKEN_VIEW: 'view-1a2b3c4d5e6f7a8b9c0d',
  AGENTD_E2E_TOKEN_ADMIN: 'admin-0f1e2d3c4b5a69788796',
};
const CI = TOKENS.AGENTD_E2E_TOKEN_CI;
const VIEW = TOKENS.AGENTD_E2E_TOKEN_VIEW;
const ADMIN = TOKENS.AGENTD_E2E_TOKEN_ADMIN;

function httpConfig(extra: Record<string, unknown> = {}) {
  return {
    listen: '127.0.0.1:0',
    body_limit: '64k',
    tokens: [
      { name: 'ci', source: 'env:AGENTD_E2E_TOKEN_CI', scopes: ['trigger', 'read', 'cancel'] },
      { name: 'viewer', source: 'env:AGENTD_E2E_TOKEN_VIEW', scopes: ['read'] },
      { name: 'ops', source: 'env:AGENTD_E2E_TOKEN_ADMIN', scopes: ['admin'] },
    ],
    ...extra,
  };
}

/** A daemon with the HTTP API on a free loopback port; `base` is its URL. */
async function startHttpDaemon(agents: Record<string, unknown>[], http = httpConfig()) {
  const d = await startDaemon({ agents, daemon: { http } }, { env: TOKENS });
  const listening = await d.waitForLog((l) => l.event === 'http.listening');
  return { d, base: String(listening.address) };
}

interface Exchange {
  method: string;
  path: string;
  status: number;
  type: string;
  body: unknown;
}

/** Every response the tests saw, to check against docs/openapi.json at the end. */
const seen: Exchange[] = [];

async function call(
  base: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] ??= 'application/json';
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(options.body === undefined
      ? {}
      : { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }),
  });
  const type = response.headers.get('content-type') ?? '';
  const text = await response.text();
  const body = type.startsWith('application/json') ? (JSON.parse(text) as unknown) : text;
  seen.push({
    method: method.toLowerCase(),
    path: path.split('?')[0] as string,
    status: response.status,
    type,
    body,
  });
  return { status: response.status, body, headers: response.headers };
}

/** An NDJSON log stream read as it arrives: events so far, and a wait for one that matches. */
async function follow(base: string, sessionId: string, token: string, query = '') {
  const response = await fetch(`${base}/v1/sessions/${sessionId}/log${query}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(response.status).toBe(200);
  const events: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const done = (async () => {
    const reader = response.body?.getReader();
    let buffered = '';
    for (;;) {
      const chunk = await reader?.read();
      if (!chunk || chunk.done) break;
      buffered += new TextDecoder().decode(chunk.value);
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        events.push(JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>);
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
      for (const check of [...waiters]) check();
    }
    seen.push({
      method: 'get',
      path: `/v1/sessions/${sessionId}/log`,
      status: 200,
      type: 'application/x-ndjson',
      body: events,
    });
    return events;
  })();
  const waitFor = (match: (e: Record<string, unknown>) => boolean, timeoutMs = 60_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no matching event in ${JSON.stringify(events)}`)),
        timeoutMs,
      );
      const check = () => {
        const found = events.find(match);
        if (!found) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(found);
      };
      waiters.add(check);
      check();
    });
  return { events, done, waitFor };
}

describe('HTTP API', () => {
  it('with a token: creates, follows, cancels and lists sessions; the request reaches the agent', async () => {
    const { d, base } = await startHttpDaemon([
      agent('demo', ['sh', '-c', 'cat "$AGENTD_REQUEST_FILE"; echo; echo done']),
      agent('blocked', gate.command),
    ]);
    expect((await call(base, 'GET', '/healthz')).status).toBe(200);
    expect(await call(base, 'GET', '/readyz')).toMatchObject({
      status: 200,
      body: { status: 'ready', state: 'ready' },
    });

    // A session that runs to its end, with a request text, followed from the start.
    const created = await call(base, 'POST', '/v1/sessions', {
      token: CI,
      body: { agent: 'demo', workUnit: 'issue-12', request: 'please fix ✓ the build', key: 'build-12' },
    });
    expect(created.status).toBe(201);
    const { sessionId } = created.body as { sessionId: string };
    expect(created.headers.get('location')).toBe(`/v1/sessions/${sessionId}`);
    const stream = await follow(base, sessionId, VIEW);
    const events = await stream.done;
    expect(events.filter((e) => e.type === 'output').map((e) => e.line)).toEqual(
      expect.arrayContaining(['please fix ✓ the build', 'done']),
    );
    const outcome = events.at(-1) as { type: string; record: SessionRecord };
    expect(outcome.type).toBe('outcome');
    expect(outcome.record).toMatchObject({ id: sessionId, outcome: 'succeeded', workUnit: 'issue-12' });
    // The same key again: the same session, nothing new.
    const again = await call(base, 'POST', '/v1/sessions', {
      token: CI,
      body: { agent: 'demo' },
      headers: { 'idempotency-key': 'build-12' },
    });
    expect(again).toMatchObject({ status: 200, body: { sessionId, existing: true } });
    // Resumed after the second line: only what came after it.
    const resumed = await follow(base, sessionId, VIEW, '?after=1&follow=false');
    const rest = await resumed.done;
    expect(rest[0]).toMatchObject({ type: 'output', seq: 2 });

    // A session that blocks at the gate, followed and cancelled.
    const blocked = await call(base, 'POST', '/v1/sessions', { token: CI, body: { agent: 'blocked' } });
    expect(blocked.status).toBe(201);
    const blockedId = (blocked.body as { sessionId: string }).sessionId;
    const live = await follow(base, blockedId, CI);
    await live.waitFor((e) => e.type === 'output' && e.line === 'waiting');
    expect(live.events.some((e) => e.type === 'phase' && e.phase === 'running')).toBe(true);
    const cancelled = await call(base, 'POST', `/v1/sessions/${blockedId}/cancel`, { token: CI });
    expect(cancelled).toMatchObject({ status: 202, body: { sessionId: blockedId, wasQueued: false } });
    const last = (await live.done).at(-1) as { type: string; record: SessionRecord };
    expect(last).toMatchObject({ type: 'outcome', record: { id: blockedId, outcome: 'cancelled' } });
    expect((await call(base, 'POST', `/v1/sessions/${blockedId}/cancel`, { token: CI })).status).toBe(404);

    // Listed and shown.
    const listed = await call(base, 'GET', '/v1/sessions?limit=10', { token: VIEW });
    expect(listed.status).toBe(200);
    const sessions = (listed.body as { sessions: SessionRecord[] }).sessions;
    expect(sessions.map((s) => [s.id, s.outcome])).toEqual([
      [blockedId, 'cancelled'],
      [sessionId, 'succeeded'],
    ]);
    const filtered = await call(base, 'GET', '/v1/sessions?outcome=cancelled', { token: VIEW });
    expect((filtered.body as { sessions: SessionRecord[] }).sessions.map((s) => s.id)).toEqual([blockedId]);
    expect(await call(base, 'GET', `/v1/sessions/${sessionId}`, { token: VIEW })).toMatchObject({
      status: 200,
      body: { id: sessionId, outcome: 'succeeded' },
    });
    expect((await call(base, 'GET', '/v1/status', { token: VIEW })).body).toMatchObject({
      state: 'ready',
      running: [],
    });
    expect((await call(base, 'GET', '/v1/agents', { token: VIEW })).body).toMatchObject({
      agents: [{ name: 'demo' }, { name: 'blocked' }],
    });
    expect((await call(base, 'POST', '/v1/reload', { token: ADMIN })).status).toBe(200);
    expect(await d.stop()).toBe(0);
  });

  it('rejects a wrong token (401) and a token without the scope (403), and logs each request by token name only', async () => {
    const { d, base } = await startHttpDaemon([agent('demo', ['true'])]);
    const missing = await call(base, 'GET', '/v1/status');
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="agentd"');
    expect(missing.body).toMatchObject({ type: 'error', code: 'unauthorized', retryable: false });
    expect((await call(base, 'GET', '/v1/status', { token: `${VIEW}0` })).status).toBe(401);
    expect((await call(base, 'GET', '/metrics', { token: 'nope' })).status).toBe(401);
    const forbidden = await call(base, 'POST', '/v1/sessions', { token: VIEW, body: { agent: 'demo' } });
    expect(forbidden).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    expect((await call(base, 'POST', '/v1/reload', { token: CI })).status).toBe(403);
    expect(await call(base, 'GET', '/v1/sessions', { token: VIEW })).toMatchObject({
      status: 200,
      body: { sessions: [] },
    });
    expect(await d.stop()).toBe(0);
    const requests = d.logs().filter((l) => l.event === 'http.request');
    // Refusals without a valid token are logged at debug, below the daemon's level.
    expect(requests.map((l) => [l.route, l.status, l.tokenName])).toEqual([
      ['/v1/sessions', 403, 'viewer'],
      ['/v1/reload', 403, 'ci'],
      ['/v1/sessions', 200, 'viewer'],
    ]);
    for (const value of Object.values(TOKENS)) expect(d.stderr()).not.toContain(value);
  });

  it('answers only loopback names on a loopback address (421 wrong_host: DNS rebinding), and 405 with Allow for a method a path does not take', async () => {
    const { d, base } = await startHttpDaemon([agent('demo', ['true'])]);
    const url = new URL(base);
    // Not through `call`: these answers are no operation's, and the last test checks those against the document.
    const raw = (method: string, path: string, host: string, token = VIEW) =>
      new Promise<{ status: number; allow: string | undefined; body: Record<string, unknown> }>(
        (resolve, reject) => {
          const req = httpRequest({
            host: url.hostname,
            port: Number(url.port),
            method,
            path,
            headers: { host, authorization: `Bearer ${token}` },
          });
          req.on('response', (res) => {
            let text = '';
            res.on('data', (chunk: Buffer) => {
              text += chunk.toString();
            });
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                allow: res.headers.allow,
                body: JSON.parse(text) as Record<string, unknown>,
              }),
            );
          });
          req.on('error', reject);
          req.end();
        },
      );
    const rebound = await raw('GET', '/v1/status', `rebind.attacker.example:${url.port}`);
    expect(rebound).toMatchObject({ status: 421, body: { code: 'wrong_host' } });
    expect(String(rebound.body.message)).toContain(`http://${url.hostname}`);
    expect((await raw('GET', '/readyz', 'rebind.attacker.example')).status).toBe(421);
    expect((await raw('GET', '/v1/status', `localhost:${url.port}`)).status).toBe(200);
    expect((await raw('GET', '/v1/status', url.host)).status).toBe(200);
    expect(await raw('DELETE', '/v1/sessions/0123456789abcdef', url.host)).toMatchObject({
      status: 405,
      allow: 'GET, HEAD',
      body: { code: 'method_not_allowed' },
    });
    expect(await d.stop()).toBe(0);
  });

  it('survives malformed and oversized requests (bounded fuzz) and stays ready, with nothing accepted', async () => {
    const { d, base } = await startHttpDaemon([agent('demo', ['true'])]);
    const random = mulberry32(20);
    const int = (n: number) => Math.floor(random() * n);
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
    const url = new URL(base);
    const bodies: (() => string | Buffer)[] = [
      () => bytes(int(2000)),
      () => '{"agent":',
      () => JSON.stringify({ agent: 'demo', repo: 'x'.repeat(70_000) }),
      () => `${'['.repeat(5000)}${']'.repeat(5000)}`,
      () => JSON.stringify({ agent: { nested: [1, 2, { deeper: 'x' }] }, timeout: 7 }),
      () => JSON.stringify({ agent: 'demo', inputs: [{ name: '../etc/passwd', data: 'aGk=' }] }),
      () => JSON.stringify({ agent: 'nope', __proto__: { admin: true } }),
      () => JSON.stringify(Array.from({ length: 200 }, (_, i) => i)),
      () => '\u0000\uffff"\\',
    ];
    const rss = () =>
      Number((/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8')) ?? [])[1]) * 1024;
    const before = rss();
    const statuses = new Map<number, number>();
    for (let i = 0; i < 150; i++) {
      const body = bodies[int(bodies.length)]?.() ?? '';
      const type = int(5) === 0 ? 'text/plain' : 'application/json';
      const path = int(6) === 0 ? `/v1/sessions/${bytes(4).toString('hex')}/cancel` : '/v1/sessions';
      const response = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CI}`, 'content-type': type },
        body,
      });
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      await response.arrayBuffer();
    }
    // A body without a length, streamed past the limit.
    const chunked = await fetch(`${base}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CI}`, 'content-type': 'application/json' },
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 40; i++) controller.enqueue(new Uint8Array(8192).fill(0x20));
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    // Garbage that is not HTTP, and a request line and headers far too long.
    for (const raw of [
      bytes(3000),
      Buffer.from(`GET /${'a'.repeat(100_000)} HTTP/1.1\r\n\r\n`),
      Buffer.from(`GET / HTTP/1.1\r\nx: ${'y'.repeat(100_000)}\r\n\r\n`),
    ]) {
      await new Promise<void>((resolve) => {
        const socket = connect(Number(url.port), url.hostname, () => socket.end(raw));
        socket.on('data', () => {});
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
      });
    }
    expect(
      [...statuses.keys()].every((s) => [400, 404, 413, 415, 422].includes(s)),
      JSON.stringify([...statuses]),
    ).toBe(true);
    expect(statuses.get(413) ?? 0).toBeGreaterThan(0);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(0);
    expect(await call(base, 'GET', '/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } });
    expect(
      ((await call(base, 'GET', '/v1/sessions', { token: VIEW })).body as { sessions: unknown[] }).sessions,
    ).toEqual([]);
    // Memory stays bounded: a few hundred bad requests cost no more than a fraction of what it started with.
    expect(rss() / before).toBeLessThan(1.5);
    expect((await d.cli(['status', '--json'])).stdout).toContain('"state":"ready"');
    expect(await d.stop()).toBe(0);
  });

  it('/metrics counts a known number of sessions exactly', async () => {
    const { d, base } = await startHttpDaemon([
      agent('demo', ['sh', '-c', 'echo hello']),
      agent('failing', ['sh', '-c', 'exit 1']),
    ]);
    const run = async (name: string) => {
      const created = await call(base, 'POST', '/v1/sessions', { token: CI, body: { agent: name } });
      const id = (created.body as { sessionId: string }).sessionId;
      await d.waitForOutcome(id);
    };
    for (let i = 0; i < 3; i++) await run('demo');
    await run('failing');
    await call(base, 'POST', '/v1/sessions', { token: CI, body: { agent: 'unknown' } });
    const metrics = await call(base, 'GET', '/metrics', { token: VIEW });
    expect(metrics.status).toBe(200);
    const text = String(metrics.body);
    const sample = (series: string) =>
      Number(
        text
          .split('\n')
          .find((l) => l.startsWith(`${series} `))
          ?.split(' ')[1],
      );
    expect(sample('agentd_sessions_accepted_total{agent="demo"}')).toBe(3);
    expect(sample('agentd_sessions_started_total{agent="demo"}')).toBe(3);
    expect(sample('agentd_sessions_finished_total{agent="demo",outcome="succeeded"}')).toBe(3);
    expect(sample('agentd_sessions_finished_total{agent="failing",outcome="failed"}')).toBe(1);
    expect(sample('agentd_session_duration_seconds_count{agent="demo",outcome="succeeded"}')).toBe(3);
    expect(sample('agentd_session_phase_duration_seconds_count{agent="demo",phase="running"}')).toBe(3);
    expect(sample('agentd_triggers_rejected_total{code="unknown_agent"}')).toBe(1);
    expect(sample('agentd_session_output_bytes_total{agent="demo"}')).toBe(15);
    expect(sample('agentd_sessions_running')).toBe(0);
    expect(sample('agentd_queue_depth')).toBe(0);
    expect(sample('agentd_ready')).toBe(1);
    // The local Podman creates and starts each session's container in one `podman run`.
    expect(sample('agentd_podman_calls_total{operation="runAttached",host="local"}')).toBe(4);
    expect(sample('agentd_http_requests_total{method="POST",route="/v1/sessions",status="201"}')).toBe(4);
    expect(sample('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(await d.stop()).toBe(0);
  });

  it('serves TLS and a Unix socket', async () => {
    const dir = makeTempDir('agentd-e2e-tls-');
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const { d, base } = await startHttpDaemon([agent('demo', ['true'])], httpConfig({ tls: { cert, key } }));
    expect(base).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const { request } = await import('node:https');
    const status = await new Promise<number>((resolve, reject) => {
      request(
        `${base}/v1/status`,
        { ca: readFileSync(cert), headers: { authorization: `Bearer ${VIEW}` } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      )
        .on('error', reject)
        .end();
    });
    expect(status).toBe(200);
    expect(await d.stop()).toBe(0);

    const socketPath = join(makeTempDir('agentd-e2e-http-sock-'), 'run', 'http.sock');
    const unix = await startHttpDaemon(
      [agent('demo', ['true'])],
      httpConfig({ listen: `unix:${socketPath}` }),
    );
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      httpRequest({ socketPath, path: '/v1/status', headers: { authorization: `Bearer ${VIEW}` } }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
        .on('error', reject)
        .end();
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ state: 'ready' });
    expect(await unix.d.stop()).toBe(0);
  });

  it('POST /v1/shutdown: admin only; graceful drains and, asked again, never cancels the running session; the daemon exits 0', async () => {
    gate.hold();
    const { d, base } = await startHttpDaemon([agent('gated', gate.command)]);
    const created = await call(base, 'POST', '/v1/sessions', { token: CI, body: { agent: 'gated' } });
    expect(created.status).toBe(201);
    const { sessionId } = created.body as { sessionId: string };
    await gate.waitFor(1);
    expect((await call(base, 'POST', '/v1/shutdown', { token: CI })).status).toBe(403);
    expect((await call(base, 'POST', '/v1/shutdown?mode=now', { token: ADMIN })).status).toBe(400);
    expect(d.running).toBe(true);
    for (let asked = 0; asked < 2; asked++) {
      expect(await call(base, 'POST', '/v1/shutdown', { token: ADMIN })).toMatchObject({
        status: 202,
        body: { mode: 'graceful', state: 'shutdown.draining' },
      });
    }
    // Draining: the session runs on (a second plain shutdown would have cancelled it), triggers are refused.
    expect((await call(base, 'POST', '/v1/sessions', { token: CI, body: { agent: 'gated' } })).status).toBe(
      503,
    );
    const requested = await d.waitForLog((l) => l.event === 'daemon.shutdown_requested');
    expect(requested).toMatchObject({ mode: 'graceful' });
    gate.open();
    expect(await d.waitForExit(60_000)).toBe(0);
    expect(await d.waitForOutcome(sessionId)).toMatchObject({ outcome: 'succeeded' });
    expect(d.logs().some((l) => l.event === 'daemon.cancelling')).toBe(false);
  });

  it('answers as docs/openapi.json says: every operation routed, every response of its documented shape', async () => {
    const doc = JSON.parse(
      readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'openapi.json'), 'utf8'),
    ) as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>
      >;
      components: { schemas: Record<string, unknown> };
    };
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    ajv.addSchema({ $id: 'doc', components: doc.components }, 'doc');
    const resolveRefs = (schema: unknown): unknown =>
      JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/'));
    const operationOf = (method: string, path: string) =>
      Object.entries(doc.paths).find(
        ([template, ops]) =>
          ops[method] !== undefined && new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path),
      );
    // Routing: every documented operation answers something other than "no such route".
    const { d, base } = await startHttpDaemon([agent('demo', ['true'])]);
    for (const [template, ops] of Object.entries(doc.paths)) {
      // It would stop this daemon before the others are tried: the test above calls it.
      if (template === '/v1/shutdown') continue;
      for (const method of Object.keys(ops)) {
        const path = template.replace('{id}', '0123456789abcdef');
        const response = await call(base, method.toUpperCase(), path, {
          token: ADMIN,
          ...(method === 'post' ? { body: {} } : {}),
        });
        expect((response.body as { code?: string }).code, `${method} ${template}`).not.toBe('not_found');
      }
    }
    expect(await d.stop()).toBe(0);
    // Shapes: every response this file saw (the tests above ran first) matches its documented schema.
    const problems: string[] = [];
    const covered = new Set<string>();
    for (const exchange of seen) {
      const found = operationOf(exchange.method, exchange.path);
      if (!found) {
        problems.push(`${exchange.method} ${exchange.path}: not in the document`);
        continue;
      }
      const [template, ops] = found;
      covered.add(`${exchange.method} ${template}`);
      const response = ops[exchange.method]?.responses[String(exchange.status)];
      if (!response) {
        problems.push(`${exchange.method} ${template}: status ${exchange.status} is not documented`);
        continue;
      }
      const media = Object.keys(response.content ?? {}).find((m) =>
        exchange.type.startsWith(m.split(';')[0] as string),
      );
      if (!media) {
        problems.push(
          `${exchange.method} ${template} ${exchange.status}: ${exchange.type} is not documented`,
        );
        continue;
      }
      const schema = response.content?.[media]?.schema;
      const values = media === 'application/x-ndjson' ? (exchange.body as unknown[]) : [exchange.body];
      const validate = ajv.compile(resolveRefs(schema) as object);
      for (const value of values) {
        if (!validate(value)) {
          problems.push(
            `${exchange.method} ${template} ${exchange.status}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(value).slice(0, 300)}`,
          );
        }
      }
    }
    expect(problems).toEqual([]);
    const documented = Object.entries(doc.paths).flatMap(([template, ops]) =>
      Object.keys(ops).map((m) => `${m} ${template}`),
    );
    expect(documented.filter((op) => !covered.has(op))).toEqual([]);
  });
});
