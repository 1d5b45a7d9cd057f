/**
 * The socket protocol through raw clients, as a third-party client written from docs/protocol.md
 * would use it: every error path with its code, version negotiation, request ids, idempotent triggers
 * under retried requests, and `subscribe` with many sessions at once.
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES } from '../../src/constants.js';
import {
  leftoversOfDaemons,
  removeInstanceObjects,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { type Gate, startGate } from '../helpers/gate.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll } from '../helpers/resources.js';

type Reply = Record<string, unknown>;

/** A raw NDJSON client: what it sends is written as is, every reply line is kept. */
class RawClient {
  readonly replies: Reply[] = [];
  closed = false;
  private wake: (() => void) | undefined;

  private constructor(private readonly socket: Socket) {
    createInterface({ input: socket }).on('line', (line) => {
      this.replies.push(JSON.parse(line) as Reply);
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => {});
  }

  static open(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  write(line: string): void {
    this.socket.write(`${line}\n`);
  }

  send(message: Reply): void {
    this.write(JSON.stringify(message));
  }

  /** Waits until match() holds for the replies so far (or the connection closed); returns them. */
  async until(match: (replies: Reply[]) => boolean, timeoutMs = 60_000): Promise<Reply[]> {
    const deadline = Date.now() + timeoutMs;
    while (!match(this.replies)) {
      if (this.closed) return this.replies;
      if (Date.now() > deadline) {
        throw new Error(`no matching replies within ${timeoutMs} ms; got ${JSON.stringify(this.replies)}`);
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 200).unref();
      });
    }
    return this.replies;
  }

  /** Sends one request and returns its first reply (the next line). */
  async ask(message: Reply | string): Promise<Reply> {
    const before = this.replies.length;
    if (typeof message === 'string') this.write(message);
    else this.send(message);
    const replies = await this.until((r) => r.length > before, 10_000);
    return replies[before] as Reply;
  }

  close(): void {
    this.socket.destroy();
  }
}

let git: GitServer;
let gate: Gate;
let d: TestDaemon;
const clients: RawClient[] = [];

async function client(): Promise<RawClient> {
  const c = await RawClient.open(d.socketPath);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  [git, gate] = await Promise.all([startGitServer(), startGate()]);
  const agent = (name: string, command: string[]) => ({
    name,
    image: TEST_IMAGE,
    command,
    repo: git.url(),
    network: 'host',
  });
  d = await startDaemon({
    agents: [agent('ok', ['sh', '-c', 'echo hi']), agent('gated', gate.command)],
  });
});

afterAll(async () => {
  if (d?.running) expect(await d.stop('SIGTERM', 30_000)).toBe(0);
  await cleanupAll();
  await Promise.allSettled([git?.stop(), gate?.close()]);
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  gate.open();
  const status = (await d.request({ type: 'status' })) as { running: { id: string }[] };
  await Promise.all(status.running.map((s) => d.waitForOutcome(s.id, 60_000)));
  const left = await leftoversOfDaemons();
  await removeInstanceObjects(d.prefix);
  gate.hold();
  expect(left, 'podman objects left behind').toEqual([]);
});

const problem = (path: string, message: unknown = expect.any(String)) => ({ path, message });

describe('errors', () => {
  it('every error a client can cause has its documented code, and lists every problem', async () => {
    const c = await client();
    expect(await c.ask('not json')).toEqual({
      v: 2,
      type: 'error',
      code: 'bad_json',
      message: 'the line is not valid JSON',
      problems: [],
      retryable: false,
    });
    // Seven problems sent, seven listed.
    const seven = await c.ask({
      v: 2,
      id: 'e1',
      type: 'trigger',
      agent: 42,
      follow: 'yes',
      a: 1,
      b: 2,
      c: 3,
      d: 4,
      e: 5,
    });
    expect(seven).toMatchObject({ v: 2, id: 'e1', type: 'error', code: 'bad_request', retryable: false });
    expect(seven.problems).toEqual(['agent', 'follow', 'a', 'b', 'c', 'd', 'e'].map((p) => problem(p)));
    expect(seven.message).toBe(
      'invalid request: agent: expected string, received number; follow: expected boolean, received string; ' +
        'a: unknown field; b: unknown field; c: unknown field; d: unknown field; e: unknown field; see docs/protocol.md',
    );

    expect(await c.ask({ v: 3, id: 'e2', type: 'status' })).toEqual({
      v: 2,
      id: 'e2',
      type: 'error',
      code: 'unsupported_version',
      message: expect.stringContaining('protocol version 3 is not supported; this daemon speaks 1 and 2'),
      problems: [problem('v', 'one of 1, 2')],
      retryable: false,
      supported: [1, 2],
    });
    for (const [sessionRequest, id] of [
      [{ type: 'cancel' }, 'c'],
      [{ type: 'logs' }, 'l'],
      [{ type: 'show' }, 's'],
      [{ type: 'wait' }, 'w'],
    ] as const) {
      expect(await c.ask({ v: 2, id, ...sessionRequest, sessionId: '0123456789abcdef' })).toMatchObject({
        v: 2,
        id,
        type: 'error',
        code: 'unknown_session',
        problems: [],
      });
    }
    // A reused session id is the machine's to refuse: an answer, not an error.
    const used = await c.ask({ v: 2, type: 'trigger', agent: 'ok' });
    await d.waitForOutcome(used.sessionId as string);
    expect(
      await c.ask({
        v: 2,
        id: 'dup',
        type: 'event',
        event: { type: 'trigger', agent: 'ok', sessionId: used.sessionId },
      }),
    ).toMatchObject({
      id: 'dup',
      type: 'event.result',
      answers: [{ type: 'trigger.rejected', code: 'duplicate_session' }],
    });
    expect(await c.ask('x'.repeat(MAX_LINE_BYTES + 1))).toMatchObject({
      v: 2,
      type: 'error',
      code: 'line_too_long',
    });
    // The connection stays usable after each of them.
    expect(await c.ask({ v: 2, id: 'after', type: 'hello' })).toMatchObject({ id: 'after', type: 'hello' });
  });

  it('ids: echoed in every reply when valid, never when empty, too long or not a string', async () => {
    const c = await client();
    for (const id of ['', 'x'.repeat(129), 7]) {
      const reply = await c.ask({ v: 2, id, type: 'status' });
      expect(reply).toMatchObject({ code: 'bad_request', problems: [problem('id')] });
      expect(reply).not.toHaveProperty('id');
    }
    const long = 'x'.repeat(128);
    c.send({ v: 2, id: long, type: 'trigger', agent: 'ok', follow: true });
    const replies = await c.until((r) => r.some((x) => x.type === 'outcome'));
    const mine = replies.filter((r) => r.id === long);
    expect(mine.map((r) => r.type)).toEqual([
      'accepted',
      'phase',
      'phase',
      'phase',
      'phase',
      'output',
      'phase',
      'outcome',
    ]);
    expect(mine.at(-1)).toMatchObject({ agent: 'ok', outcome: 'succeeded' });
  });

  it('a trigger followed without output gets its phases and outcome, and no output line', async () => {
    const c = await client();
    c.send({ v: 2, id: 'quiet', type: 'trigger', agent: 'ok', follow: true, output: false });
    const replies = await c.until((r) => r.some((x) => x.type === 'outcome'));
    expect(replies.map((r) => r.type)).toEqual([
      'accepted',
      'phase',
      'phase',
      'phase',
      'phase',
      'phase',
      'outcome',
    ]);
    const id = (replies[0] as { sessionId: string }).sessionId;
    // The output is there for whoever asks for it.
    const logs = await client();
    logs.send({ v: 2, id: 'l', type: 'logs', sessionId: id });
    const stored = await logs.until((r) => r.some((x) => x.type === 'outcome'));
    expect(stored.filter((r) => r.type === 'output').map((r) => r.line)).toEqual(['hi']);
  });

  it('busy: a connection beyond the limit is refused with the id of its request', async () => {
    const held = await Promise.all(Array.from({ length: 256 }, () => client()));
    // All held open: one more gets busy, answered in the version and with the id of its request.
    const extra = await client();
    const busy = await extra.ask({ v: 1, id: 'b1', type: 'status' });
    expect(busy).toEqual({
      v: 1,
      id: 'b1',
      type: 'error',
      code: 'busy',
      message: 'too many connections; retry later',
      problems: [],
      retryable: true,
    });
    await extra.until(() => false, 5000).catch(() => undefined);
    expect(extra.closed).toBe(true);
    for (const h of held) h.close();
    // Room again once they are gone.
    await expect
      .poll(async () => (await d.request({ type: 'hello' }))?.type, { timeout: 10_000 })
      .toBe('hello');
  });
});

describe('versions', () => {
  it('hello needs no version and names the versions the daemon speaks', async () => {
    const c = await client();
    expect(await c.ask({ type: 'hello', id: 'h' })).toMatchObject({
      v: 2,
      id: 'h',
      type: 'hello',
      protocol: 2,
      protocols: [1, 2],
      state: 'ready',
    });
    expect(await c.ask({ v: 1, type: 'hello' })).toMatchObject({ v: 1, protocol: 1, protocols: [1, 2] });
  });

  it('a version 1 client keeps its replies: rejected with a sessionId, no new request types', async () => {
    const c = await client();
    const v1 = await c.ask({ v: 1, type: 'trigger', agent: 'nope' });
    expect(v1).toMatchObject({ v: 1, type: 'rejected', code: 'unknown_agent', retryable: false });
    expect(v1.sessionId).toMatch(/^[0-9a-f]{16}$/);
    const v2 = await c.ask({ v: 2, type: 'trigger', agent: 'nope' });
    expect(v2).toMatchObject({ v: 2, type: 'rejected', code: 'unknown_agent' });
    expect(v2).not.toHaveProperty('sessionId');
    expect(await c.ask({ v: 1, type: 'history' })).toMatchObject({
      v: 1,
      code: 'bad_request',
      problems: [problem('type', 'history needs protocol version 2 or later')],
    });
  });
});

describe('idempotent triggers', () => {
  it('the same request retried on ten connections at once makes one session', async () => {
    const key = `retry-${Date.now()}`;
    const conns = await Promise.all(Array.from({ length: 10 }, () => client()));
    const answers = await Promise.all(
      conns.map((c, i) => c.ask({ v: 2, id: `r${i}`, type: 'trigger', agent: 'gated', key })),
    );
    const ids = new Set(answers.map((a) => a.sessionId));
    expect(ids.size).toBe(1);
    expect(answers.filter((a) => a.existing === true)).toHaveLength(9);
    expect(answers.every((a) => a.type === 'accepted')).toBe(true);
    expect(d.records().filter((r) => r.key === key)).toHaveLength(1);
    // A key is 1 to 128 visible characters.
    const c = await client();
    expect(await c.ask({ v: 2, type: 'trigger', agent: 'ok', key: 'has space' })).toMatchObject({
      code: 'bad_request',
      problems: [problem('key', 'a key is 1 to 128 visible ASCII characters (no spaces)')],
    });
  });
});

describe('subscribe', () => {
  it('delivers every phase and outcome of 20 concurrent sessions, with the agent, and no internal state', async () => {
    const v2 = await client();
    const v1 = await client();
    v2.send({ v: 2, id: 'sub', type: 'subscribe' });
    v1.send({ v: 1, type: 'subscribe' });
    await v2.until((r) => r.length > 0);
    await v1.until((r) => r.length > 0);
    const t = await client();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const accepted = await t.ask({ v: 2, type: 'trigger', agent: 'ok', workUnit: `s-${i}` });
      ids.push(accepted.sessionId as string);
    }
    await v2.until(
      (r) => ids.every((id) => r.some((x) => x.type === 'outcome' && x.sessionId === id)),
      120_000,
    );
    for (const id of ids) {
      const record = d.record(id);
      const seen = v2.replies.filter((r) => r.sessionId === id);
      // Every phase the record shows, in order, then the outcome; nothing twice, nothing after.
      expect(seen.map((r) => (r.type === 'phase' ? r.phase : r.type))).toEqual([
        ...(record?.phases ?? []).map((p) => p.phase).filter((p) => p !== 'finished'),
        'outcome',
      ]);
      expect(seen.every((r) => r.agent === 'ok' && r.id === 'sub' && r.v === 2)).toBe(true);
      expect(seen.at(-1)).toMatchObject({ outcome: 'succeeded', record: { id, outcome: 'succeeded' } });
    }
    const phasesOf = (id: string) =>
      new Set(
        v1.replies.flatMap((r) =>
          ((r.running as { id: string; agent: string; phase: string }[] | undefined) ?? [])
            .filter((s) => s.id === id)
            .map((s) => `${s.agent}:${s.phase}`),
        ),
      );
    await v1.until(() => ids.every((id) => phasesOf(id).has('ok:tearing_down')), 30_000);
    // Version 1 gets state replies only, each a public state.
    expect(new Set(v1.replies.map((r) => r.type))).toEqual(new Set(['state']));
    for (const r of [...v1.replies, ...v2.replies].filter((x) => x.type === 'state')) {
      expect(['ready', 'degraded', 'shutdown.draining']).toContain(r.state);
    }
  });
});
