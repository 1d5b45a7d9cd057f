import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NotifyOutbox, OUTBOX_MAX_ENTRIES } from '../../src/adapters/notify-outbox.js';
import {
  permanentStatus,
  postWebhook,
  retryAfterMs,
  WebhookError,
  type WebhookRequest,
} from '../../src/adapters/webhook.js';
import { type ConfigError, parseConfig } from '../../src/config/index.js';
import type { NotifyTarget } from '../../src/config/types.js';
import { FETCH_BLOCKED_PORTS, shownWebhookUrl } from '../../src/config/webhook-url.js';
import {
  MAX_DEFERRED,
  MAX_PENDING,
  MAX_WAITING,
  type NotifiedSession,
  Notifier,
  type NotifierOptions,
  outboxFailureLog,
  RESUME_GAP_MS,
} from '../../src/daemon/notifier.js';
import { MAX_RETRY_AFTER_MS } from '../../src/machines/delivery.machine.js';
import type { SessionRecord } from '../../src/sessions/records.js';

const RECORD: SessionRecord = {
  version: 1,
  id: '0123456789abcdef',
  agent: 'demo',
  repo: 'https://git.example/demo.git',
  acceptedAt: '2026-06-01T10:00:00.000Z',
  finishedAt: '2026-06-01T10:01:00.000Z',
  phase: 'finished',
  phases: [{ phase: 'queued', at: '2026-06-01T10:00:00.000Z' }],
  outcome: 'failed',
  exitCode: 1,
};
const KEY = 'whsec-test-1f2e3d4c';

function target(extra: Partial<NotifyTarget> = {}): NotifyTarget {
  return {
    url: 'http://127.0.0.1:9/hook?token=hidden',
    secret: { kind: 'env', name: 'HOOK_KEY', raw: 'env:HOOK_KEY' },
    attempts: 3,
    backoffMs: 1000,
    ...extra,
  };
}

interface Attempt {
  request: WebhookRequest;
  settle(error?: Error): void;
}

type Limits = Pick<
  NotifierOptions,
  'maxWaiting' | 'maxWaitingChars' | 'maxDeferred' | 'maxPendingPerWebhook'
>;

function setup(
  targets: NotifyTarget[] | ((session: NotifiedSession) => NotifyTarget[]),
  maxPending?: number,
  outbox?: NotifyOutbox,
  env: Record<string, string> = { HOOK_KEY: KEY },
  limits: Limits = {},
) {
  const attempts: Attempt[] = [];
  const counted: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const notifier = new Notifier({
    targets: typeof targets === 'function' ? targets : () => targets,
    env,
    log,
    metrics: {
      notification: (result) => counted.push(`notification:${result}`),
      notificationAttempt: (result) => counted.push(`attempt:${result}`),
    },
    version: '9.9.9',
    ...(maxPending === undefined ? {} : { maxPending }),
    ...(outbox === undefined ? {} : { outbox }),
    ...limits,
    post: (request) =>
      new Promise<void>((resolve, reject) => {
        attempts.push({ request, settle: (error) => (error ? reject(error) : resolve()) });
      }),
  });
  return { notifier, attempts, counted, lines };
}

/** Fixes the jitter's draw (Math.random) for the test. */
const draw = (value: number) => vi.spyOn(Math, 'random').mockReturnValue(value);

/** The session a POST tells of. */
const sessionOf = (a: Attempt | undefined) =>
  (JSON.parse(a?.request.body ?? '{}') as { session?: SessionRecord }).session?.id;

/** Session ids in the order the tests notify them. */
const ids = (count: number) =>
  Array.from({ length: count }, (_, i) => `00000000000000${(i + 16).toString(16)}`);

/**
 * A receiver answering each POST as it comes: 503 until downUntil (ms since the epoch), then 2xx; the
 * fake clock runs by steps of stepMs until nothing is under way or waiting. Returns the sessions whose
 * POST was taken, in order, and the most deliveries seen under way at once.
 */
async function answerUntilDone(
  n: ReturnType<typeof setup>,
  downUntil: number,
  stepMs = 250,
): Promise<{ taken: (string | undefined)[]; mostUnderWay: number }> {
  const taken: (string | undefined)[] = [];
  let answered = 0;
  let mostUnderWay = 0;
  for (let step = 0; step < 10_000; step++) {
    mostUnderWay = Math.max(mostUnderWay, n.notifier.underWay);
    for (; answered < n.attempts.length; answered++) {
      const attempt = n.attempts[answered] as Attempt;
      if (Date.now() < downUntil) attempt.settle(new WebhookError('http_5xx', 'answered 503'));
      else {
        taken.push(sessionOf(attempt));
        attempt.settle();
      }
    }
    await vi.advanceTimersByTimeAsync(stepMs);
    if (n.notifier.underWay === 0 && n.notifier.waiting === 0 && answered === n.attempts.length) break;
  }
  return { taken, mostUnderWay };
}

describe('notifier', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] }));
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('POSTs the record signed with HMAC-SHA256 of the exact body, and returns at once', async () => {
    const n = setup([target()]);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    expect(n.attempts).toHaveLength(1);
    const { request } = n.attempts[0] as Attempt;
    const body = JSON.parse(request.body) as { event: string; delivery: string; session: SessionRecord };
    expect(body).toEqual({ event: 'session.finished', delivery: expect.any(String), session: RECORD });
    expect(request.headers['X-Agentd-Signature-256']).toBe(
      `sha256=${createHmac('sha256', KEY).update(request.body).digest('hex')}`,
    );
    expect(request.headers['X-Agentd-Delivery']).toBe(body.delivery);
    expect(request.headers['X-Agentd-Event']).toBe('session.finished');
    expect(request.headers['user-agent']).toBe('agentd/9.9.9');
    n.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    expect(n.counted).toEqual(['attempt:ok', 'notification:delivered']);
    expect(n.notifier.underWay).toBe(0);
    // The URL's query (a token, for some services) and the key never reach the log.
    const text = JSON.stringify(n.lines);
    expect(text).not.toContain('hidden');
    expect(text).not.toContain(KEY);
    expect(n.lines.find((l) => l.event === 'notify.delivered')).toMatchObject({
      url: 'http://127.0.0.1:9/hook?…',
    });
  });

  it('retries a failing receiver with a doubling wait, a bounded number of times, the same body each time', async () => {
    // The highest draw: the whole doubled wait.
    draw(0.9999999);
    const n = setup([target({ attempts: 3, backoffMs: 1000 })]);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    n.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(999);
    expect(n.attempts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(n.attempts).toHaveLength(2);
    n.attempts[1]?.settle(new WebhookError('timeout', 'no answer'));
    await vi.advanceTimersByTimeAsync(1999);
    expect(n.attempts).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(n.attempts).toHaveLength(3);
    n.attempts[2]?.settle(new WebhookError('network', 'ECONNREFUSED'));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(n.attempts).toHaveLength(3);
    expect(new Set(n.attempts.map((a) => a.request.body)).size).toBe(1);
    expect(n.counted).toEqual([
      'attempt:http_5xx',
      'attempt:timeout',
      'attempt:network',
      'notification:failed',
    ]);
    expect(
      n.lines.filter((l) => l.event === 'notify.attempt_failed').map((l) => [l.final, l.retryIn]),
    ).toEqual([
      [false, 1000],
      [false, 2000],
      [true, undefined],
    ]);
    expect(n.lines.find((l) => l.event === 'notify.attempt_failed')?.msg).toContain('trying again in 1.0s');
    expect(n.lines.find((l) => l.event === 'notify.failed')).toMatchObject({
      attempts: 3,
      reason: 'ECONNREFUSED',
    });
  });

  it('waits a random part of the doubled backoff, never less than half of it: failed together, not back together', async () => {
    // The lowest draw: half the doubled wait.
    draw(0);
    const n = setup([target({ attempts: 3, backoffMs: 1000 })]);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    n.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(499);
    expect(n.attempts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(n.attempts).toHaveLength(2);
    n.attempts[1]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(999);
    expect(n.attempts).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(n.attempts).toHaveLength(3);
    n.attempts[2]?.settle();
    await vi.advanceTimersByTimeAsync(0);
  });

  it("waits at least as long as a receiver's Retry-After asks, at most MAX_RETRY_AFTER_MS", async () => {
    draw(0);
    const n = setup([target({ attempts: 4, backoffMs: 1000 })]);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    // 503 with Retry-After: 30 s, longer than the backoff: 30 s.
    n.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503', undefined, 30_000));
    await vi.advanceTimersByTimeAsync(29_999);
    expect(n.attempts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(n.attempts).toHaveLength(2);
    // 429 asking for a day: cut to the bound.
    n.attempts[1]?.settle(new WebhookError('http_4xx', 'answered 429', undefined, 86_400_000));
    await vi.advanceTimersByTimeAsync(MAX_RETRY_AFTER_MS - 1);
    expect(n.attempts).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(n.attempts).toHaveLength(3);
    // One shorter than the backoff does not shorten it (half of 4 s at the lowest draw).
    n.attempts[2]?.settle(new WebhookError('http_5xx', 'answered 503', undefined, 0));
    await vi.advanceTimersByTimeAsync(1999);
    expect(n.attempts).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(n.attempts).toHaveLength(4);
    n.attempts[3]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    expect(n.lines.filter((l) => l.event === 'notify.attempt_failed').map((l) => l.retryIn)).toEqual([
      30_000,
      MAX_RETRY_AFTER_MS,
      2000,
    ]);
    expect(n.counted.at(-1)).toBe('notification:delivered');
  });

  it('a stop does not wait for a delivery waiting to try again, nor tries it again', async () => {
    const n = setup([target({ backoffMs: 1000 })]);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    n.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(0);
    let closed = false;
    void n.notifier.close(5000).then(() => {
      closed = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(closed).toBe(true);
    expect(n.notifier.underWay).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(n.attempts).toHaveLength(1);
    expect(n.lines.find((l) => l.event === 'notify.abandoned')).toMatchObject({ attempts: 1 });
  });

  it('a stop waits for a POST in flight, and no longer once it failed', async () => {
    const n = setup([target({ backoffMs: 1000 })]);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    let closed = false;
    void n.notifier.close(5000).then(() => {
      closed = true;
    });
    await vi.advanceTimersByTimeAsync(100);
    expect(closed).toBe(false);
    n.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(0);
    expect(closed).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(n.attempts).toHaveLength(1);
  });

  it('beyond the deliveries under way, notifications wait their turn: all are delivered once each, in order, through a webhook down a while', async () => {
    draw(0.5);
    const n = setup([target({ attempts: 5, backoffMs: 1000 })], 2);
    const sessions = ids(10);
    for (const id of sessions) n.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    expect(n.attempts.map(sessionOf)).toEqual(sessions.slice(0, 2));
    expect([n.notifier.underWay, n.notifier.waiting]).toEqual([2, 8]);
    expect(n.lines.filter((l) => l.event === 'notify.waiting')).toEqual([
      expect.objectContaining({ pending: 2 }),
    ]);
    // Down for 10 s: the first two take 5 attempts (waits of 0.75, 1.5, 3 and 6 s), the others wait.
    const { taken, mostUnderWay } = await answerUntilDone(n, Date.now() + 10_000);
    expect(mostUnderWay).toBe(2);
    expect(taken).toEqual(sessions);
    // The first POST of each, in the order notified.
    const firsts = [...new Set(n.attempts.map(sessionOf))];
    expect(firsts).toEqual(sessions);
    expect(n.counted.filter((c) => c.startsWith('notification:'))).toEqual(
      sessions.map(() => 'notification:delivered'),
    );
    expect(n.lines.filter((l) => l.event === 'notify.dropped')).toEqual([]);
  });

  it('with the queue full too, drops one (no outbox: not sent), counted and logged', async () => {
    const n = setup([target()], 1, undefined, undefined, { maxWaiting: 2 });
    const sessions = ids(4);
    for (const id of sessions) n.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    expect([n.notifier.underWay, n.notifier.waiting]).toEqual([1, 2]);
    expect(n.counted).toEqual(['notification:dropped']);
    expect(n.lines.find((l) => l.event === 'notify.dropped')).toMatchObject({
      session: sessions[3],
      pending: 1,
      waiting: 2,
      kept: false,
      msg: expect.stringContaining('1 notifications under way and 2 waiting, the most'),
    });
    const { taken } = await answerUntilDone(n, 0);
    expect(taken).toEqual(sessions.slice(0, 3));
  });

  it('bounds the record text the queue refers to, not only its length', async () => {
    const size = JSON.stringify(RECORD).length;
    const n = setup([target()], 1, undefined, undefined, { maxWaitingChars: Math.floor(size * 2.5) });
    for (const id of ids(4)) n.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    expect([n.notifier.underWay, n.notifier.waiting]).toEqual([1, 2]);
    expect(n.counted).toEqual(['notification:dropped']);
  });

  it('a stop does not start the notifications waiting their turn, and says so once', async () => {
    const n = setup([target()], 1);
    for (const id of ids(3)) n.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    const closed = n.notifier.close(5000);
    // The POST in flight is taken during the grace: nothing waiting starts in its place.
    n.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await closed;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(n.attempts).toHaveLength(1);
    expect([n.notifier.underWay, n.notifier.waiting]).toEqual([0, 0]);
    expect(n.lines.filter((l) => l.event === 'notify.abandoned')).toEqual([
      expect.objectContaining({ waiting: 2, msg: expect.stringContaining('they are not sent again') }),
    ]);
  });

  it('a wall clock set back 2 h neither holds a waiting notification back nor quiets notify.waiting: their waits are steady', async () => {
    const n = setup([target()], 1);
    const [first, second, third] = ids(3);
    n.notifier.notify({ ...RECORD, id: first as string });
    n.notifier.notify({ ...RECORD, id: second as string });
    await vi.advanceTimersByTimeAsync(0);
    expect([n.notifier.underWay, n.notifier.waiting]).toEqual([1, 1]);
    const waiting = () => n.lines.filter((l) => l.event === 'notify.waiting');
    expect(waiting()).toHaveLength(1);
    // The system clock steps back 2 h while the second waits its turn.
    vi.setSystemTime(Date.now() - 2 * 3_600_000);
    n.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(60_000);
    // Its turn came: POSTed at once, not 2 h later.
    expect(n.attempts.map(sessionOf)).toEqual([first, second]);
    // A minute on, more wait again: said again, not 2 h later.
    await vi.advanceTimersByTimeAsync(1000);
    n.notifier.notify({ ...RECORD, id: third as string });
    await vi.advanceTimersByTimeAsync(0);
    expect(n.notifier.waiting).toBe(1);
    expect(waiting()).toHaveLength(2);
    await answerUntilDone(n, 0);
    expect(n.attempts.map(sessionOf)).toEqual([first, second, third]);
  });

  it('a webhook that is down holds at most its own places: the notifications to a healthy one are all delivered at once, and its own wait, in order', async () => {
    draw(0.5);
    const down = target({ url: 'http://127.0.0.1:9/down', attempts: 5, backoffMs: 60_000 });
    const up = target({ url: 'http://127.0.0.1:9/up' });
    const n = setup([down, up], 4, undefined, undefined, { maxPendingPerWebhook: 2 });
    const sessions = ids(10);
    for (const id of sessions) n.notifier.notify({ ...RECORD, id });
    const taken = new Map<string, (string | undefined)[]>([
      [down.url, []],
      [up.url, []],
    ]);
    let answered = 0;
    let mostUnderWay = 0;
    /** Answers each POST as it comes, the down one with 503 asking for 15 minutes while it is down. */
    const answer = async (steps: number, stepMs: number, downNow: () => boolean) => {
      for (let step = 0; step < steps; step++) {
        await vi.advanceTimersByTimeAsync(step === 0 ? 0 : stepMs);
        mostUnderWay = Math.max(mostUnderWay, n.notifier.underWay);
        for (; answered < n.attempts.length; answered++) {
          const attempt = n.attempts[answered] as Attempt;
          if (attempt.request.url === down.url && downNow())
            attempt.settle(new WebhookError('http_5xx', 'answered 503', undefined, MAX_RETRY_AFTER_MS));
          else {
            taken.get(attempt.request.url)?.push(sessionOf(attempt));
            attempt.settle();
          }
        }
      }
    };
    // A second: the healthy one takes each at once.
    await answer(10, 100, () => true);
    expect(taken.get(up.url)).toEqual(sessions);
    expect(mostUnderWay).toBeLessThanOrEqual(4);
    // The down one's first two hold its two places, the others wait their turn.
    const toDown = () => n.attempts.filter((a) => a.request.url === down.url).map(sessionOf);
    expect(toDown()).toEqual(sessions.slice(0, 2));
    expect([n.notifier.underWay, n.notifier.waiting]).toEqual([2, 8]);
    expect(n.lines.filter((l) => l.event === 'notify.waiting')).toEqual([
      expect.objectContaining({ pending: 4, msg: expect.stringContaining('the most at once') }),
    ]);
    // Back: each of the down one's is delivered once, in the order notified.
    await answer(400, 5000, () => false);
    expect([n.notifier.underWay, n.notifier.waiting]).toEqual([0, 0]);
    expect(mostUnderWay).toBeLessThanOrEqual(4);
    expect(taken.get(down.url)).toEqual(sessions);
    expect([...new Set(toDown())]).toEqual(sessions);
    expect(n.counted.filter((c) => c === 'notification:delivered')).toHaveLength(20);
    expect(n.lines.filter((l) => l.event === 'notify.dropped')).toEqual([]);
  });

  it('a webhook at its own bound: more to it wait, logged once a minute for each webhook, naming it', async () => {
    const a = target({ url: 'http://127.0.0.1:9/a' });
    const b = target({ url: 'http://127.0.0.1:9/b' });
    const sessions = ids(6);
    const n = setup((session) => [sessions.indexOf(session.id) % 2 === 0 ? a : b], 8, undefined, undefined, {
      maxPendingPerWebhook: 2,
    });
    for (const id of sessions) n.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    expect([n.notifier.underWay, n.notifier.waiting]).toEqual([4, 2]);
    const waiting = () => n.lines.filter((l) => l.event === 'notify.waiting');
    expect(waiting()).toEqual([
      expect.objectContaining({
        url: a.url,
        pending: 4,
        webhookPending: 2,
        msg: `2 notifications to ${a.url} are under way, the most to one webhook (slow or down?): more to it wait their turn, in order, up to ${MAX_WAITING} waiting in all; those to other webhooks are not held up`,
      }),
      expect.objectContaining({ url: b.url, pending: 4, webhookPending: 2 }),
    ]);
    const { taken } = await answerUntilDone(n, 0);
    expect([...taken].sort()).toEqual([...sessions].sort());
    // Waiting again within the minute: not logged again.
    for (const id of ids(3)) n.notifier.notify({ ...RECORD, id: `${id}0` });
    await vi.advanceTimersByTimeAsync(0);
    expect(n.notifier.waiting).toBe(1);
    expect(waiting()).toHaveLength(2);
    await answerUntilDone(n, 0);
  });

  it('when a place frees, the webhooks with notifications waiting take turns, each in order, within the bound of all', async () => {
    const a = target({ url: 'http://127.0.0.1:9/a' });
    const b = target({ url: 'http://127.0.0.1:9/b' });
    const sessions = ids(8);
    const toA = new Set(sessions.slice(0, 4));
    const n = setup((session) => [toA.has(session.id) ? a : b], 2, undefined, undefined, {
      maxPendingPerWebhook: 2,
    });
    for (const id of sessions) n.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    expect([n.notifier.underWay, n.notifier.waiting]).toEqual([2, 6]);
    // Taken one at a time, in the order they started.
    for (let i = 0; i < sessions.length; i++) {
      expect(n.notifier.underWay).toBeLessThanOrEqual(2);
      n.attempts[i]?.settle();
      await vi.advanceTimersByTimeAsync(0);
    }
    const [s1, s2, s3, s4, s5, s6, s7, s8] = sessions;
    expect(n.attempts.map(sessionOf)).toEqual([s1, s2, s3, s5, s4, s6, s7, s8]);
    expect(n.counted.filter((c) => c === 'notification:delivered')).toHaveLength(8);
  });

  it('several webhooks down together keep within the bound of all, each in order', async () => {
    draw(0.5);
    const hooks = ['a', 'b', 'c'].map((name) =>
      target({ url: `http://127.0.0.1:9/${name}`, attempts: 5, backoffMs: 1000 }),
    );
    const sessions = ids(9);
    const n = setup(
      (session) => [hooks[sessions.indexOf(session.id) % 3] as NotifyTarget],
      4,
      undefined,
      undefined,
      { maxPendingPerWebhook: 2 },
    );
    for (const id of sessions) n.notifier.notify({ ...RECORD, id });
    const { taken, mostUnderWay } = await answerUntilDone(n, Date.now() + 10_000);
    expect(mostUnderWay).toBe(4);
    expect([...taken].sort()).toEqual([...sessions].sort());
    for (const [i, hook] of hooks.entries()) {
      const its = sessions.filter((_, j) => j % 3 === i);
      const firsts = [...new Set(n.attempts.filter((x) => x.request.url === hook.url).map(sessionOf))];
      expect(firsts).toEqual(its);
    }
  });

  it('counts a credential source that cannot be read as a failed attempt, naming the source, never a value', async () => {
    const n = setup([target({ attempts: 1, secret: { kind: 'env', name: 'NOPE', raw: 'env:NOPE' } })]);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    expect(n.attempts).toEqual([]);
    expect(n.counted).toEqual(['attempt:secret', 'notification:failed']);
    expect(String(n.lines.find((l) => l.event === 'notify.failed')?.reason)).toContain('env:NOPE');
  });

  it('sends nothing signed with a secret that resolves to an empty value (anyone could forge it), and says why; a key put there later is used', async () => {
    const env: Record<string, string> = { HOOK_KEY: '' };
    const n = setup([target({ attempts: 2, backoffMs: 1000 })], undefined, undefined, env);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    expect(n.attempts).toEqual([]);
    expect(n.counted).toEqual(['attempt:secret']);
    expect(n.lines.find((l) => l.event === 'notify.attempt_failed')?.reason).toBe(
      'credential notify.secret: env:HOOK_KEY resolves to an empty value: a signature keyed with nothing can be made by anyone, so no notification is sent to this webhook; put the key there (it is read again at the next attempt)',
    );
    env.HOOK_KEY = KEY;
    await vi.advanceTimersByTimeAsync(1000);
    expect(n.attempts).toHaveLength(1);
    const body = n.attempts[0]?.request.body ?? '';
    expect(n.attempts[0]?.request.headers['X-Agentd-Signature-256']).toBe(
      `sha256=${createHmac('sha256', KEY).update(body).digest('hex')}`,
    );
  });

  it('tells a target with outcomes: only of those outcomes, one without of every outcome', async () => {
    const n = setup([
      target({ url: 'http://127.0.0.1:9/successes', outcomes: ['succeeded'] }),
      target({ url: 'http://127.0.0.1:9/trouble', outcomes: ['failed', 'timed_out'] }),
      target({ url: 'http://127.0.0.1:9/all' }),
    ]);
    n.notifier.notify(RECORD);
    n.notifier.notify({ ...RECORD, id: '0123456789abcde0', outcome: 'succeeded', exitCode: 0 });
    await vi.advanceTimersByTimeAsync(0);
    const sent = n.attempts.map((a) => {
      const session = (JSON.parse(a.request.body) as { session: SessionRecord }).session;
      return `${session.outcome} -> ${a.request.url}`;
    });
    expect(sent.sort()).toEqual([
      'failed -> http://127.0.0.1:9/all',
      'failed -> http://127.0.0.1:9/trouble',
      'succeeded -> http://127.0.0.1:9/all',
      'succeeded -> http://127.0.0.1:9/successes',
    ]);
  });

  it('on close, waits a grace period for deliveries under way, then stops them', async () => {
    const n = setup([target()]);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    const closed = n.notifier.close(5000);
    await vi.advanceTimersByTimeAsync(5000);
    await closed;
    expect(n.notifier.underWay).toBe(0);
    expect(n.lines.some((l) => l.event === 'notify.abandoned')).toBe(true);
  });
});

describe('notifier with an outbox (notifications kept across a stop or a crash)', () => {
  let stateDir: string;
  const failures: string[] = [];
  const outbox = () =>
    new NotifyOutbox(stateDir, (operation, error) => failures.push(`${operation}: ${error}`));
  const files = () => readdirSync(join(stateDir, 'notify'));
  const entry = (id = RECORD.id) =>
    JSON.parse(readFileSync(join(stateDir, 'notify', `${id}.json`), 'utf8')) as {
      record?: unknown;
      targets: { key: string; delivery: string; made: number }[];
    };
  const deliveryOf = (a: Attempt | undefined) => a?.request.headers['X-Agentd-Delivery'];
  /** A stop: the grace period runs out on the fake clock while deliveries are still under way. */
  const stop = async (notifier: Notifier, graceMs = 0) => {
    const closed = notifier.close(graceMs);
    await vi.advanceTimersByTimeAsync(graceMs);
    await closed;
  };

  beforeEach(() => {
    stateDir = mkdtempSync(join(tmpdir(), 'agentd-outbox-'));
    failures.length = 0;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    // The middle draw: waits of three quarters of the doubled backoff (750 ms for the first of 1 s).
    draw(0.5);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    rmSync(stateDir, { recursive: true, force: true });
    expect(failures).toEqual([]);
  });

  it('keeps what a stop cut short, and the next start sends it again: same delivery id and body, the attempts left', async () => {
    const first = setup([target({ attempts: 3, backoffMs: 1000 })], undefined, outbox());
    first.notifier.prepare(RECORD, 'failed');
    // On disk, durably, before the record says the session finished: no URL, no key.
    expect(entry().targets).toHaveLength(1);
    expect(entry().record).toBeUndefined();
    const raw = readFileSync(join(stateDir, 'notify', `${RECORD.id}.json`), 'utf8');
    expect(raw).not.toContain('127.0.0.1');
    expect(raw).not.toContain('hidden');
    expect(raw).not.toContain(KEY);
    first.notifier.notify(RECORD);
    // The record is on disk before the first POST goes out: a resend is the same bytes.
    expect(entry().record).toBe(JSON.stringify(RECORD));
    await vi.advanceTimersByTimeAsync(0);
    expect(first.attempts).toHaveLength(1);
    first.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    const failedAt = Date.now();
    await vi.advanceTimersByTimeAsync(0);
    await stop(first.notifier, 100);
    expect(first.lines.find((l) => l.event === 'notify.abandoned')?.msg).toContain(
      'the next start sends it again when its next attempt is due',
    );
    // When the next attempt is due is kept: 750 ms after the failure.
    expect(entry()).toMatchObject({
      record: JSON.stringify(RECORD),
      targets: [{ made: 1, due: failedAt + 750 }],
    });

    const next = setup([target({ attempts: 3, backoffMs: 1000 })], undefined, outbox());
    next.notifier.resume(() => undefined);
    await vi.advanceTimersByTimeAsync(0);
    // Not at once: on the first daemon's schedule, of which the stop took 100 ms.
    expect(next.attempts).toHaveLength(0);
    expect(next.lines.find((l) => l.event === 'notify.resumed')).toMatchObject({ attempt: 2, retryIn: 650 });
    await vi.advanceTimersByTimeAsync(649);
    expect(next.attempts).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(next.attempts).toHaveLength(1);
    expect(deliveryOf(next.attempts[0])).toBe(deliveryOf(first.attempts[0]));
    expect(next.attempts[0]?.request.body).toBe(first.attempts[0]?.request.body);
    // Attempt 2 of 3 fails: the wait is the doubled one (¾ of 2 s), as if no stop had come between.
    next.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(1499);
    expect(next.attempts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(next.attempts).toHaveLength(2);
    next.attempts[1]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
    expect(next.counted).toEqual(['attempt:http_5xx', 'attempt:ok', 'notification:delivered']);
    expect(files()).toEqual([]);
  });

  it('a crash after the intent, before the outcome was published: the next start sends it from the finished record', async () => {
    const first = setup([target()], undefined, outbox());
    first.notifier.prepare(RECORD, 'failed');
    const { delivery } = entry().targets[0] as { delivery: string };
    // Killed here: nothing more of the first daemon runs.
    const next = setup([target()], undefined, outbox());
    next.notifier.resume((id) => (id === RECORD.id ? RECORD : undefined));
    await vi.advanceTimersByTimeAsync(0);
    expect(deliveryOf(next.attempts[0])).toBe(delivery);
    expect(JSON.parse(next.attempts[0]?.request.body ?? '')).toEqual({
      event: 'session.finished',
      delivery,
      session: RECORD,
    });
    next.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
    expect(files()).toEqual([]);
  });

  it('a crash while the record was sealed is told once recovery has sealed it, with its output summary', async () => {
    const first = setup([target()], undefined, outbox());
    first.notifier.prepare(RECORD, 'failed');
    const { delivery } = entry().targets[0] as { delivery: string };
    // Killed while the output was unpacked: the state dir's record says the outcome, not the output.
    const next = setup([target()], undefined, outbox());
    const unsealed: SessionRecord = { ...RECORD, recordDir: '/var/lib/agentd/records/demo/x' };
    next.notifier.resume(() => unsealed);
    await vi.advanceTimersByTimeAsync(0);
    expect(next.attempts).toHaveLength(0);
    // Recovery seals it, writes the summary into the record and publishes the outcome.
    const sealed: SessionRecord = {
      ...unsealed,
      output: { files: 1, bytes: 5, truncated: false, skipped: 0 },
    };
    next.notifier.notify(sealed);
    await vi.advanceTimersByTimeAsync(0);
    expect(deliveryOf(next.attempts[0])).toBe(delivery);
    expect(JSON.parse(next.attempts[0]?.request.body ?? '').session).toEqual(sealed);
    next.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
    expect(files()).toEqual([]);
  });

  it('a session recovery has not finished yet is told once it is, with the delivery id chosen before the crash', async () => {
    const first = setup([target()], undefined, outbox());
    first.notifier.prepare(RECORD, 'failed');
    const { delivery } = entry().targets[0] as { delivery: string };
    const next = setup([target()], undefined, outbox());
    const unfinished = { ...RECORD, phase: 'running', outcome: undefined } as unknown as SessionRecord;
    next.notifier.resume(() => unfinished);
    await vi.advanceTimersByTimeAsync(0);
    expect(next.attempts).toHaveLength(0);
    // Recovery records the outcome (this time it timed out).
    const settled: SessionRecord = { ...RECORD, outcome: 'timed_out' };
    next.notifier.prepare(settled, 'timed_out');
    next.notifier.notify(settled);
    await vi.advanceTimersByTimeAsync(0);
    expect(deliveryOf(next.attempts[0])).toBe(delivery);
    expect(JSON.parse(next.attempts[0]?.request.body ?? '').session).toEqual(settled);
    next.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
    expect(files()).toEqual([]);
  });

  it('gives up a webhook no longer configured or with no attempt left, and removes an unreadable entry with a warning', async () => {
    const kept = target({ url: 'http://127.0.0.1:9/kept', attempts: 2 });
    const gone = target({ url: 'http://127.0.0.1:9/gone' });
    const first = setup([kept, gone], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    first.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    first.attempts[1]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(0);
    await stop(first.notifier);
    expect(entry().targets.map((t) => t.made)).toEqual([1, 1]);
    writeFileSync(join(stateDir, 'notify', 'fedcba9876543210.json'), '{"version":1,');
    mkdirSync(join(stateDir, 'notify', 'planted'));

    // The next start: `gone` was removed from the configuration, `kept` allows one attempt less.
    const next = setup([{ ...kept, attempts: 1 }], undefined, outbox());
    next.notifier.resume(() => undefined);
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
    expect(next.attempts).toHaveLength(0);
    expect(next.counted).toEqual(['notification:failed', 'notification:failed']);
    expect(next.lines.filter((l) => l.event === 'notify.failed').map((l) => l.reason)).toEqual([
      'all 1 attempt(s) were made (a POST a stop or a crash cut short counts)',
      'its webhook is no longer configured for this outcome',
    ]);
    expect(next.lines.filter((l) => l.event === 'notify.unreadable').map((l) => l.file)).toEqual([
      join(stateDir, 'notify', 'fedcba9876543210.json'),
      join(stateDir, 'notify', 'planted'),
    ]);
    expect(files()).toEqual(['planted']);
  });

  it('an earlier entry whose webhooks no longer want the outcome recovery recorded is removed, and says so', async () => {
    const failedOnly = target({ outcomes: ['failed'] });
    setup([failedOnly], undefined, outbox()).notifier.prepare(RECORD, 'failed');
    const next = setup([failedOnly], undefined, outbox());
    next.notifier.resume(
      () => ({ ...RECORD, phase: 'running', outcome: undefined }) as unknown as SessionRecord,
    );
    // Recovery settles the session otherwise: the webhook wants only failures.
    next.notifier.prepare(RECORD, 'timed_out');
    next.notifier.notify({ ...RECORD, outcome: 'timed_out' });
    await next.notifier.close(0);
    expect(files()).toEqual([]);
    expect(next.lines.find((l) => l.event === 'notify.failed')).toMatchObject({
      reason: 'no webhook wants this outcome now',
    });
    // A later start finds nothing to send.
    const later = setup([failedOnly], undefined, outbox());
    later.notifier.resume(() => ({ ...RECORD, outcome: 'timed_out' }));
    await vi.advanceTimersByTimeAsync(0);
    expect(later.attempts).toHaveLength(0);
  });

  it('a URL configured twice (the agent and the daemon) is sent again to each, with its own key', async () => {
    const other = 'whsec-other-9a8b7c';
    const env = { HOOK_KEY: KEY, OTHER_KEY: other };
    const twice = [target(), target({ secret: { kind: 'env', name: 'OTHER_KEY', raw: 'env:OTHER_KEY' } })];
    const first = setup(twice, undefined, outbox(), env);
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    expect(first.attempts).toHaveLength(2);
    await stop(first.notifier);
    const next = setup(twice, undefined, outbox(), env);
    next.notifier.resume(() => undefined);
    // Both cut short by the stop: due when a failed POST's retry would be (750 ms), to one receiver a
    // gap apart.
    await vi.advanceTimersByTimeAsync(750);
    expect(next.attempts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(RESUME_GAP_MS);
    expect(next.attempts.map((a) => deliveryOf(a))).toEqual(first.attempts.map((a) => deliveryOf(a)));
    const signed = (a: Attempt | undefined) => a?.request.headers['X-Agentd-Signature-256'];
    const key = (k: string, a: Attempt | undefined) =>
      `sha256=${createHmac('sha256', k)
        .update(a?.request.body ?? '')
        .digest('hex')}`;
    expect(signed(next.attempts[0])).toBe(key(KEY, next.attempts[0]));
    expect(signed(next.attempts[1])).toBe(key(other, next.attempts[1]));
    for (const a of next.attempts) a.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
  });

  it('a URL configured twice, once for other outcomes only, is sent again to the webhook that wanted the outcome', async () => {
    const other = 'whsec-other-9a8b7c';
    const env = { HOOK_KEY: KEY, OTHER_KEY: other };
    // The agent's webhook hears of successes only, once; the daemon's, of every outcome, three times.
    const twice = [
      target({ attempts: 1, outcomes: ['succeeded'] }),
      target({ attempts: 3, secret: { kind: 'env', name: 'OTHER_KEY', raw: 'env:OTHER_KEY' } }),
    ];
    const first = setup(twice, undefined, outbox(), env);
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    expect(first.attempts).toHaveLength(1);
    await stop(first.notifier);
    const next = setup(twice, undefined, outbox(), env);
    next.notifier.resume(() => undefined);
    // Cut short by a stop or a kill: due when a failed POST's retry would be.
    await vi.advanceTimersByTimeAsync(750);
    expect(next.attempts.map((a) => deliveryOf(a))).toEqual([deliveryOf(first.attempts[0])]);
    const body = next.attempts[0]?.request.body ?? '';
    expect(next.attempts[0]?.request.headers['X-Agentd-Signature-256']).toBe(
      `sha256=${createHmac('sha256', other).update(body).digest('hex')}`,
    );
    next.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
  });

  it('a URL configured twice for the same outcomes: after a kill, the webhook that had not taken it is sent again, with its own key', async () => {
    const other = 'whsec-other-9a8b7c';
    const env = { HOOK_KEY: KEY, OTHER_KEY: other };
    const twice = [
      target({ attempts: 3 }),
      target({ attempts: 3, secret: { kind: 'env', name: 'OTHER_KEY', raw: 'env:OTHER_KEY' } }),
    ];
    const first = setup(twice, undefined, outbox(), env);
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    expect(first.attempts).toHaveLength(2);
    // The first webhook takes it; the daemon is killed before the second does.
    first.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    const next = setup(twice, undefined, outbox(), env);
    next.notifier.resume(() => undefined);
    // Cut short by a stop or a kill: due when a failed POST's retry would be.
    await vi.advanceTimersByTimeAsync(750);
    expect(next.attempts.map((a) => deliveryOf(a))).toEqual([deliveryOf(first.attempts[1])]);
    const body = next.attempts[0]?.request.body ?? '';
    expect(next.attempts[0]?.request.headers['X-Agentd-Signature-256']).toBe(
      `sha256=${createHmac('sha256', other).update(body).digest('hex')}`,
    );
    next.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
  });

  it('an entry of an agentd before `nth` is sent again to the first webhook of its URL left', async () => {
    const first = setup([target()], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    const file = join(stateDir, 'notify', `${RECORD.id}.json`);
    const old = JSON.parse(readFileSync(file, 'utf8')) as { targets: { nth?: number }[] };
    for (const t of old.targets) delete t.nth;
    writeFileSync(file, JSON.stringify(old));
    const next = setup([target()], undefined, outbox());
    next.notifier.resume(() => undefined);
    // Cut short by a stop or a kill: due when a failed POST's retry would be.
    await vi.advanceTimersByTimeAsync(750);
    expect(next.attempts.map((a) => deliveryOf(a))).toEqual([deliveryOf(first.attempts[0])]);
    next.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
  });

  it('a POST is counted before it goes out: a daemon killed during each one still runs out of attempts', async () => {
    const first = setup([target({ attempts: 2 })], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    expect(first.attempts).toHaveLength(1);
    // Killed: no close. What is on disk already counts the POST under way.
    expect(entry().targets[0]?.made).toBe(1);
    const second = setup([target({ attempts: 2 })], undefined, outbox());
    second.notifier.resume(() => undefined);
    // Not at once after the kill: when a failed POST's retry would be.
    await vi.advanceTimersByTimeAsync(0);
    expect(second.attempts).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(750);
    expect(second.attempts).toHaveLength(1);
    expect(entry().targets[0]?.made).toBe(2);
    // Killed again: the third start has no attempt left to make.
    const third = setup([target({ attempts: 2 })], undefined, outbox());
    third.notifier.resume(() => undefined);
    await vi.advanceTimersByTimeAsync(0);
    expect(third.attempts).toHaveLength(0);
    expect(third.counted).toEqual(['notification:failed']);
    expect(files()).toEqual([]);
    // The POSTs of the first two "killed" daemons are left hanging: a settled one would write again.
  });

  it('a POST a stop cut short counts as an attempt made', async () => {
    const first = setup([target({ attempts: 2 })], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    expect(first.attempts).toHaveLength(1);
    // The receiver never answers; the stop's grace ends.
    await stop(first.notifier, 10);
    expect(entry().targets[0]?.made).toBe(1);
  });

  it('once a stop has begun, no POST starts: one waiting to try again is stopped at once, its attempts as they were, and the next start sends it', async () => {
    const [a, b] = ids(2);
    const first = setup([target({ attempts: 3, backoffMs: 1000 })], undefined, outbox());
    first.notifier.notify({ ...RECORD, id: a as string });
    first.notifier.notify({ ...RECORD, id: b as string });
    await vi.advanceTimersByTimeAsync(0);
    expect(first.attempts).toHaveLength(2);
    // b's first POST fails: it waits at most 1 s to try again. a's never answers and holds the stop's grace.
    first.attempts[1]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(0);
    await stop(first.notifier, 5000);
    expect(first.attempts).toHaveLength(2);
    expect(entry(b).targets[0]?.made).toBe(1);
    expect(entry(a).targets[0]?.made).toBe(1);
    expect(first.lines.filter((l) => l.event === 'notify.abandoned').map((l) => l.session)).toEqual([b, a]);
    const second = setup([target({ attempts: 3, backoffMs: 1000 })], undefined, outbox());
    second.notifier.resume(() => undefined);
    await vi.advanceTimersByTimeAsync(1000);
    expect(second.attempts.map(sessionOf).sort()).toEqual([a, b]);
  });

  it('a POST that fails during a stop is not tried again by the stopping daemon', async () => {
    const [a, b] = ids(2);
    const first = setup([target({ attempts: 3, backoffMs: 1000 })], undefined, outbox());
    first.notifier.notify({ ...RECORD, id: a as string });
    first.notifier.notify({ ...RECORD, id: b as string });
    await vi.advanceTimersByTimeAsync(0);
    const closed = first.notifier.close(5000);
    await vi.advanceTimersByTimeAsync(100);
    // b's POST fails within the grace, while a's still holds it.
    first.attempts[1]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(4900);
    await closed;
    expect(first.attempts).toHaveLength(2);
    expect(entry(b).targets[0]?.made).toBe(1);
    expect(first.lines.filter((l) => l.event === 'notify.abandoned').map((l) => l.session)).toEqual([b, a]);
  });

  it('a stop that cuts its last attempt short gives it up then, saying so, rather than promising a next start that would not send it', async () => {
    const first = setup([target({ attempts: 2, backoffMs: 1000 })], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    first.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(1000);
    expect(first.attempts).toHaveLength(2);
    // The receiver never answers the last attempt; the stop's grace ends.
    await stop(first.notifier, 10);
    expect(files()).toEqual([]);
    expect(first.counted).toEqual(['attempt:http_5xx', 'notification:failed']);
    expect(first.lines.filter((l) => l.event === 'notify.abandoned')).toEqual([]);
    const failed = first.lines.find((l) => l.event === 'notify.failed');
    expect(failed).toMatchObject({
      session: RECORD.id,
      url: 'http://127.0.0.1:9/hook?…',
      attempts: 2,
      reason: 'its last attempt was cut short by the stop',
    });
    expect(String(failed?.msg)).toContain('it is not sent again');
    const second = setup([target({ attempts: 2 })], undefined, outbox());
    second.notifier.resume(() => undefined);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(second.attempts).toEqual([]);
    expect(second.lines).toEqual([]);
  });

  it('an entry that is not what agentd wrote is removed with a warning, and the others are sent', async () => {
    const first = setup([target()], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    await stop(first.notifier);
    const good = readFileSync(join(stateDir, 'notify', `${RECORD.id}.json`), 'utf8');
    const planted = (id: string, content: string) =>
      writeFileSync(join(stateDir, 'notify', `${id}.json`), content);
    // Another session's record under this id; a record nested past any stack; a file too large to be one.
    planted(
      '00000000000000b1',
      good
        .replaceAll(RECORD.id, '00000000000000b1')
        .replace('"id\\":\\"00000000000000b1', '"id\\":\\"0123456789abcdef'),
    );
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    planted(
      '00000000000000b2',
      good
        .replaceAll(RECORD.id, '00000000000000b2')
        .replace('"phase\\":', `"deep\\":${JSON.stringify(deep).slice(1, -1)},"phase\\":`),
    );
    planted('00000000000000b3', ' '.repeat(2 * 1024 * 1024));
    const next = setup([target()], undefined, outbox());
    expect(() => next.notifier.resume(() => undefined)).not.toThrow();
    await vi.advanceTimersByTimeAsync(750);
    expect(next.attempts).toHaveLength(1);
    expect(deliveryOf(next.attempts[0])).toBe(deliveryOf(first.attempts[0]));
    expect(next.lines.filter((l) => l.event === 'notify.unreadable')).toHaveLength(3);
    next.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
    expect(files()).toEqual([]);
  });

  it('a start after a long stop sends the overdue deliveries to one webhook RESUME_GAP_MS apart, not all at once', async () => {
    const down = target({ url: 'http://127.0.0.1:9/down' });
    const other = target({ url: 'http://127.0.0.1:9/other' });
    const ids = ['00000000000000a1', '00000000000000a2', '00000000000000a3'];
    const first = setup([down], undefined, outbox());
    for (const id of ids) first.notifier.notify({ ...RECORD, id });
    const second = setup([other], undefined, outbox());
    second.notifier.notify({ ...RECORD, id: '00000000000000b1' });
    await vi.advanceTimersByTimeAsync(0);
    for (const a of [...first.attempts, ...second.attempts])
      a.settle(new WebhookError('network', 'ECONNREFUSED'));
    await vi.advanceTimersByTimeAsync(0);
    await stop(first.notifier);
    await stop(second.notifier);
    // Stopped for an hour: every one is overdue.
    vi.setSystemTime(Date.now() + 3_600_000);
    const next = setup([down, other], undefined, outbox());
    next.notifier.resume(() => undefined);
    const urls = () => next.attempts.map((a) => a.request.url);
    await vi.advanceTimersByTimeAsync(0);
    expect(urls().sort()).toEqual([down.url, other.url]);
    await vi.advanceTimersByTimeAsync(RESUME_GAP_MS - 1);
    expect(next.attempts).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(next.attempts).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(RESUME_GAP_MS);
    expect(next.attempts).toHaveLength(4);
    expect(urls().filter((u) => u === down.url)).toHaveLength(3);
    expect(new Set(next.attempts.map((a) => deliveryOf(a))).size).toBe(4);
    for (const a of next.attempts) a.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
    expect(files()).toEqual([]);
  });

  it('a due time further than any planned wait (a clock set back) is cut to MAX_RETRY_AFTER_MS', async () => {
    const first = setup([target()], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    first.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(0);
    await stop(first.notifier);
    // The clock went back a day since.
    vi.setSystemTime(Date.now() - 86_400_000);
    const next = setup([target()], undefined, outbox());
    next.notifier.resume(() => undefined);
    expect(next.lines.find((l) => l.event === 'notify.resumed')).toMatchObject({
      retryIn: MAX_RETRY_AFTER_MS,
    });
    await vi.advanceTimersByTimeAsync(MAX_RETRY_AFTER_MS - 1);
    expect(next.attempts).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(next.attempts).toHaveLength(1);
    next.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
  });

  it('a due time past what a date can hold (a damaged entry) is cut too: a stop while it waits writes it back, and does not throw', async () => {
    const first = setup([target()], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    first.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(0);
    await stop(first.notifier);
    // A number the outbox's schema takes (a safe integer) that is no date: new Date(it).toISOString() throws.
    const file = join(stateDir, 'notify', `${RECORD.id}.json`);
    const damaged = JSON.parse(readFileSync(file, 'utf8')) as { targets: { due?: number }[] };
    for (const t of damaged.targets) t.due = 9_000_000_000_000_000;
    writeFileSync(file, JSON.stringify(damaged));
    const next = setup([target()], undefined, outbox());
    next.notifier.resume(() => undefined);
    expect(next.lines.find((l) => l.event === 'notify.resumed')).toMatchObject({
      retryIn: MAX_RETRY_AFTER_MS,
    });
    // Stopped while it waits: it is written back for the next start, as any waiting delivery is.
    await stop(next.notifier);
    const abandoned = next.lines.find((l) => l.event === 'notify.abandoned');
    expect(abandoned?.msg).toContain('the next start sends it again when its next attempt is due');
    const due = Date.now() + MAX_RETRY_AFTER_MS;
    expect(abandoned?.due).toBe(new Date(due).toISOString());
    expect(entry().targets).toMatchObject([{ made: 1, due }]);
  });

  it('an entry of an agentd before `due` with a POST made waits the backoff after it, not POSTing at once', async () => {
    const first = setup([target({ backoffMs: 4000 })], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    first.attempts[0]?.settle(new WebhookError('http_5xx', 'answered 503'));
    await vi.advanceTimersByTimeAsync(0);
    await stop(first.notifier);
    const file = join(stateDir, 'notify', `${RECORD.id}.json`);
    const old = JSON.parse(readFileSync(file, 'utf8')) as { targets: { due?: number }[] };
    for (const t of old.targets) delete t.due;
    writeFileSync(file, JSON.stringify(old));
    vi.setSystemTime(Date.now() + 3_600_000);
    const next = setup([target({ backoffMs: 4000 })], undefined, outbox());
    next.notifier.resume(() => undefined);
    await vi.advanceTimersByTimeAsync(2999);
    expect(next.attempts).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(next.attempts).toHaveLength(1);
    next.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
  });

  it('a stop leaves the notifications waiting their turn in the outbox as they were, and the next start delivers each once', async () => {
    const first = setup([target({ attempts: 3 })], 2, outbox());
    const sessions = ids(5);
    for (const id of sessions) first.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    expect([first.attempts.length, first.notifier.waiting]).toEqual([2, 3]);
    const waitingEntries = sessions
      .slice(2)
      .map((id) => readFileSync(join(stateDir, 'notify', `${id}.json`), 'utf8'));
    await stop(first.notifier);
    expect(first.attempts).toHaveLength(2);
    expect(files().sort()).toEqual(sessions.map((id) => `${id}.json`));
    // Not started, not touched: no attempt made, none due.
    expect(
      sessions.slice(2).map((id) => readFileSync(join(stateDir, 'notify', `${id}.json`), 'utf8')),
    ).toEqual(waitingEntries);
    expect(entry(sessions[2]).targets).toEqual([
      { key: expect.any(String), delivery: expect.any(String), made: 0, nth: 0 },
    ]);
    expect(first.lines.find((l) => l.event === 'notify.abandoned' && l.waiting === 3)?.msg).toContain(
      'they stay in the notification outbox and the next start sends them',
    );
    const deliveries = new Map(sessions.map((id) => [id, entry(id).targets[0]?.delivery]));

    const next = setup([target({ attempts: 3 })], 2, outbox());
    next.notifier.resume(() => undefined);
    const { taken, mostUnderWay } = await answerUntilDone(next, 0);
    expect(mostUnderWay).toBe(2);
    // Those never tried are due first; the two a stop cut short, when their retry would be.
    expect(taken).toEqual([...sessions.slice(2), ...sessions.slice(0, 2)]);
    for (const a of next.attempts) expect(deliveryOf(a)).toBe(deliveries.get(sessionOf(a) ?? ''));
    expect(next.counted.filter((c) => c.startsWith('notification:'))).toEqual(
      sessions.map(() => 'notification:delivered'),
    );
    await next.notifier.close(0);
    expect(files()).toEqual([]);
  });

  it('with the queue full, leaves a notification in the outbox and sends it once there is room, read back from there; past maxDeferred, drops it', async () => {
    const limits = { maxWaiting: 2, maxDeferred: 1 };
    const box = outbox();
    const read = vi.spyOn(box, 'read');
    const first = setup([target()], 1, box, undefined, limits);
    const sessions = ids(5);
    for (const id of sessions) first.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    expect([first.notifier.underWay, first.notifier.waiting, first.notifier.deferred]).toEqual([1, 2, 1]);
    expect(first.counted).toEqual(['notification:deferred', 'notification:dropped']);
    const dropped = first.lines.filter((l) => l.event === 'notify.dropped');
    expect(dropped.map((l) => [l.session, l.kept])).toEqual([
      [sessions[3], true],
      [sessions[4], false],
    ]);
    expect(dropped[0]?.msg).toContain(
      '(1 notifications under way and 2 waiting, the most): it is sent once there is room, in turn (a stop leaves it for the next start of agentd)',
    );
    expect(dropped[1]?.msg).toContain(
      'and 1 left in the notification outbox until there is room, the most): it is not sent',
    );
    expect(files().sort()).toEqual(sessions.slice(0, 4).map((id) => `${id}.json`));
    // Not for the next start: sent as soon as the queue has room, after those queued before it.
    const { taken } = await answerUntilDone(first, 0);
    expect(taken).toEqual(sessions.slice(0, 4));
    expect(first.notifier.deferred).toBe(0);
    // Its record came back from its entry (not kept in memory meanwhile), the same bytes.
    expect(read.mock.calls).toEqual([[sessions[3]]]);
    const resent = first.attempts.find((a) => sessionOf(a) === sessions[3]);
    expect(resent?.request.body).toContain(`"session":${JSON.stringify({ ...RECORD, id: sessions[3] })}}`);
    expect(first.lines.find((l) => l.event === 'notify.picked_up')).toMatchObject({
      level: 30,
      session: sessions[3],
      url: 'http://127.0.0.1:9/hook?…',
      deferred: 0,
    });
    expect(first.counted.filter((c) => c === 'notification:delivered')).toHaveLength(4);
    expect(files()).toEqual([]);
    await first.notifier.close(0);
  });

  it('left in the outbox behind a bigger one to its webhook, a later one waits its turn there, though it would fit the queue', async () => {
    const small = JSON.stringify(RECORD).length;
    const big = { ...RECORD, agent: 'x'.repeat(3 * small) };
    const limits = { maxWaitingChars: Math.floor(2.5 * small), maxDeferred: 10 };
    const n = setup([target()], 1, outbox(), undefined, limits);
    const sessions = ids(4);
    n.notifier.notify({ ...RECORD, id: sessions[0] as string });
    n.notifier.notify({ ...RECORD, id: sessions[1] as string });
    n.notifier.notify({ ...big, id: sessions[2] as string });
    n.notifier.notify({ ...RECORD, id: sessions[3] as string });
    await vi.advanceTimersByTimeAsync(0);
    expect([n.notifier.underWay, n.notifier.waiting, n.notifier.deferred]).toEqual([1, 1, 2]);
    expect(n.lines.filter((l) => l.event === 'notify.dropped').at(-1)?.msg).toContain(
      '(1 to http://127.0.0.1:9/hook?… there before it)',
    );
    const { taken } = await answerUntilDone(n, 0);
    expect(taken).toEqual(sessions);
    expect(files()).toEqual([]);
    await n.notifier.close(0);
  });

  it('those left in the outbox for a webhook that is down do not hold up those for a healthy one', async () => {
    const down = target({ url: 'http://127.0.0.1:9/down', attempts: 1 });
    const up = target({ url: 'http://127.0.0.1:9/up' });
    const limits = { maxPendingPerWebhook: 1, maxWaiting: 1, maxDeferred: 10 };
    const n = setup((s) => [s.agent === 'down' ? down : up], 2, outbox(), undefined, limits);
    const [d0, d1, d2, u0, u1, u2] = ids(6) as [string, string, string, string, string, string];
    for (const id of [d0, d1, d2]) n.notifier.notify({ ...RECORD, id, agent: 'down' });
    n.notifier.notify({ ...RECORD, id: u0, agent: 'up' });
    n.notifier.notify({ ...RECORD, id: u1, agent: 'up' });
    await vi.advanceTimersByTimeAsync(0);
    // d0 and u0 under way, d1 waiting (the queue full), d2 and u1 in the outbox.
    expect(n.attempts.map(sessionOf)).toEqual([d0, u0]);
    expect([n.notifier.waiting, n.notifier.deferred]).toEqual([1, 2]);
    n.attempts[1]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    // The queue is still full of the down webhook's, but the healthy one has a place: u1 goes now.
    expect(n.attempts.map(sessionOf)).toEqual([d0, u0, u1]);
    n.notifier.notify({ ...RECORD, id: u2, agent: 'up' });
    n.attempts[2]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    expect(n.attempts.map(sessionOf)).toEqual([d0, u0, u1, u2]);
    n.attempts[3]?.settle();
    // The down webhook's, in order, as its deliveries fail.
    n.attempts[0]?.settle(new WebhookError('network', 'ECONNREFUSED'));
    await vi.advanceTimersByTimeAsync(0);
    n.attempts[4]?.settle(new WebhookError('network', 'ECONNREFUSED'));
    await vi.advanceTimersByTimeAsync(0);
    expect(n.attempts.map(sessionOf)).toEqual([d0, u0, u1, u2, d1, d2]);
    n.attempts[5]?.settle(new WebhookError('network', 'ECONNREFUSED'));
    await vi.advanceTimersByTimeAsync(0);
    expect([n.notifier.underWay, n.notifier.waiting, n.notifier.deferred]).toEqual([0, 0, 0]);
    expect(files()).toEqual([]);
    await n.notifier.close(0);
  });

  it('a stop leaves those still in the outbox there as they were, and the next start sends each once', async () => {
    const limits = { maxWaiting: 1, maxDeferred: 10 };
    const first = setup([target()], 1, outbox(), undefined, limits);
    const sessions = ids(4);
    for (const id of sessions) first.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    const deliveries = new Map(sessions.map((id) => [id, entry(id).targets[0]?.delivery]));
    const last = readFileSync(join(stateDir, 'notify', `${sessions[3]}.json`), 'utf8');
    // The first taken: the waiting one starts, the first in the outbox takes its place in the queue.
    first.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    expect([first.notifier.underWay, first.notifier.waiting, first.notifier.deferred]).toEqual([1, 1, 1]);
    await stop(first.notifier);
    expect(first.lines.find((l) => l.event === 'notify.abandoned' && l.waiting === 1)).toMatchObject({
      deferred: 1,
    });
    expect(files().sort()).toEqual(sessions.slice(1).map((id) => `${id}.json`));
    expect(readFileSync(join(stateDir, 'notify', `${sessions[3]}.json`), 'utf8')).toBe(last);

    const next = setup([target()], 1, outbox(), undefined, limits);
    next.notifier.resume(() => undefined);
    const { taken } = await answerUntilDone(next, 0);
    // Never tried first; then the one a stop cut short, when its retry is due.
    expect(taken).toEqual([sessions[2], sessions[3], sessions[1]]);
    for (const a of next.attempts) expect(deliveryOf(a)).toBe(deliveries.get(sessionOf(a) ?? ''));
    expect(first.attempts.map(sessionOf)).toEqual(sessions.slice(0, 2));
    await next.notifier.close(0);
    expect(files()).toEqual([]);
  });

  it("a session's webhooks: one left in the outbox stays in its entry while another is taken, then is sent", async () => {
    const a = target({ url: 'http://127.0.0.1:9/a' });
    const b = target({ url: 'http://127.0.0.1:9/b' });
    const first = setup([a, b], 1, outbox(), undefined, { maxWaiting: 0 });
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    expect(first.counted).toEqual(['notification:deferred']);
    expect(entry().targets).toHaveLength(2);
    first.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    expect(entry().targets).toHaveLength(1);
    expect(first.attempts.map((x) => x.request.url)).toEqual([a.url, b.url]);
    expect(first.attempts[1]?.request.body).toContain(`"session":${JSON.stringify(RECORD)}}`);
    first.attempts[1]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    expect(files()).toEqual([]);
    await first.notifier.close(0);
  });

  it('resumed deliveries wait their turn too, and keep RESUME_GAP_MS between those to one webhook', async () => {
    const sessions = ids(3);
    const first = setup([target()], undefined, outbox());
    for (const id of sessions) first.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    for (const a of first.attempts) a.settle(new WebhookError('network', 'ECONNREFUSED'));
    await vi.advanceTimersByTimeAsync(0);
    await stop(first.notifier);
    vi.setSystemTime(Date.now() + 3_600_000);
    const next = setup([target()], 1, outbox());
    next.notifier.resume(() => undefined);
    const started = Date.now();
    const at: number[] = [];
    for (let step = 0; step < 40 && at.length < 3; step++) {
      await vi.advanceTimersByTimeAsync(step === 0 ? 0 : 50);
      for (const a of next.attempts.slice(at.length)) {
        at.push(Date.now() - started);
        // Taken at once: the next one gets the place at once, but not before its gap.
        a.settle();
      }
    }
    expect(at).toEqual([0, RESUME_GAP_MS, 2 * RESUME_GAP_MS]);
    expect(next.lines.filter((l) => l.event === 'notify.resumed').map((l) => l.retryIn)).toEqual([
      0,
      RESUME_GAP_MS,
      RESUME_GAP_MS,
    ]);
    await vi.advanceTimersByTimeAsync(0);
    await next.notifier.close(0);
    expect(files()).toEqual([]);
  });

  /** The outbox's dir replaced by a file: every write and removal there fails (ENOTDIR), even as root. */
  const breakOutbox = () => {
    rmSync(join(stateDir, 'notify'), { recursive: true, force: true });
    writeFileSync(join(stateDir, 'notify'), '');
  };
  const mendOutbox = () => {
    rmSync(join(stateDir, 'notify'), { force: true });
    mkdirSync(join(stateDir, 'notify'), { mode: 0o700 });
  };

  it('a state dir that takes no write: notify.unrecorded once per session, its message without the stack', async () => {
    const logged: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => logged.push(JSON.parse(line)) });
    const n = setup([target({ attempts: 3 })], undefined, new NotifyOutbox(stateDir, outboxFailureLog(log)));
    breakOutbox();
    const sessions = ids(5);
    for (const id of sessions) {
      n.notifier.prepare({ ...RECORD, id }, 'failed');
      n.notifier.notify({ ...RECORD, id });
    }
    // Each session's entry is written at prepare, at notify, as each POST goes out and after each failure.
    const { taken } = await answerUntilDone(n, Date.now() + 1000);
    expect(taken).toEqual(sessions);
    const lines = logged.filter((l) => l.event === 'notify.unrecorded');
    expect(lines.map((l) => l.session)).toEqual(sessions);
    expect(lines[0]).toMatchObject({
      level: 40,
      operation: 'record an outcome notification',
      code: 'ENOTDIR',
      reason: expect.stringContaining('ENOTDIR'),
    });
    expect(lines[0]?.msg).toContain(
      `the notification of session ${sessions[0]} is still sent by this daemon, but the notification outbox does not hold it as it is now`,
    );
    for (const line of lines) expect(line.err).toBeUndefined();
    // No stack: neither its field nor its frames (escaped newlines in the JSON).
    expect(JSON.stringify(lines)).not.toMatch(/stack|\\n\s+at /);
    await n.notifier.close(0);
    mendOutbox();
  });

  it('the outbox tells of a session failing once, and again only after one of its writes succeeded', () => {
    const told: string[] = [];
    const box = new NotifyOutbox(stateDir, (operation, _error, session) =>
      told.push(`${session} ${operation}`),
    );
    const entryOf = (session: string) => ({ version: 1 as const, session, targets: [] });
    const [a, b] = ids(2) as [string, string];
    breakOutbox();
    for (let i = 0; i < 3; i++) {
      expect(box.writeNow(entryOf(a))).toBe(false);
      box.removeNow(a);
    }
    expect(box.writeNow(entryOf(b))).toBe(false);
    expect(told).toEqual([`${a} record an outcome notification`, `${b} record an outcome notification`]);
    mendOutbox();
    expect(box.writeNow(entryOf(a))).toBe(true);
    breakOutbox();
    box.removeNow(a);
    box.writeNow(entryOf(b));
    expect(told.slice(2)).toEqual([`${a} remove a delivered notification`]);
    mendOutbox();
  });

  it('a stop writes the entry first and says what became of it: lost when the state dir took none of its writes', async () => {
    const quiet = () => new NotifyOutbox(stateDir, () => {});
    const shown = 'http://127.0.0.1:9/hook?…';
    const first = setup([target()], 1, quiet());
    // Never on disk: the state dir takes no write from before the session's outcome.
    breakOutbox();
    const [lostOne, waitingOne] = ids(2) as [string, string];
    for (const id of [lostOne, waitingOne]) {
      first.notifier.prepare({ ...RECORD, id }, 'failed');
      first.notifier.notify({ ...RECORD, id });
    }
    await vi.advanceTimersByTimeAsync(0);
    expect([first.notifier.underWay, first.notifier.waiting]).toEqual([1, 1]);
    await stop(first.notifier, 10);
    const abandoned = first.lines.filter((l) => l.event === 'notify.abandoned');
    expect(abandoned).toEqual([
      expect.objectContaining({ level: 50, waiting: 1, lost: 1 }),
      expect.objectContaining({ level: 50, session: lostOne, url: shown, written: false, lost: true }),
    ]);
    expect(abandoned[0]?.msg).toContain('but 1 of them never reached it');
    expect(abandoned[1]?.msg).toBe(
      `a notification of session ${lostOne} to ${shown} was still being delivered when agentd stopped, and it is lost: the state dir took none of its entry's writes (see notify.unrecorded), so no next start sends it; tell ${shown} of session ${lostOne}'s outcome by hand if it matters (agentd show ${lostOne} has its record)`,
    );
    mendOutbox();

    // On disk once, then the state dir stops taking writes: the next start sends the one written earlier.
    const second = setup([target()], undefined, quiet());
    second.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    breakOutbox();
    await stop(second.notifier, 10);
    expect(second.lines.find((l) => l.event === 'notify.abandoned')).toMatchObject({
      level: 40,
      session: RECORD.id,
      written: false,
      msg: expect.stringContaining(
        'could not be updated (see notify.unrecorded), so the next start sends it again from the one written earlier',
      ),
    });
    mendOutbox();
  });

  it('with the queue full and no entry holding its record on disk, a notification is not left in the outbox: dropped as lost, saying so', async () => {
    const quiet = () => new NotifyOutbox(stateDir, () => {});
    const shown = 'http://127.0.0.1:9/hook?…';
    const n = setup([target()], 1, quiet(), undefined, { maxWaiting: 0 });
    const [first, never, early] = ids(3) as [string, string, string];
    // Written before its outcome was published, without the record; then the state dir takes nothing.
    n.notifier.prepare({ ...RECORD, id: early }, 'failed');
    breakOutbox();
    for (const id of [first, never, early]) n.notifier.notify({ ...RECORD, id });
    await vi.advanceTimersByTimeAsync(0);
    expect([n.notifier.underWay, n.notifier.waiting, n.notifier.deferred]).toEqual([1, 0, 0]);
    expect(n.counted).toEqual(['notification:dropped', 'notification:dropped']);
    const dropped = n.lines.filter((l) => l.event === 'notify.dropped');
    expect(dropped).toEqual([
      expect.objectContaining({ level: 50, session: never, url: shown, kept: false, lost: true }),
      expect.objectContaining({ level: 50, session: early, kept: false, lost: true }),
    ]);
    expect(dropped[0]?.msg).toBe(
      `notification of session ${never} to ${shown} dropped (1 notifications under way and 0 waiting, the most): it cannot wait in the notification outbox, which holds no entry with its record (the state dir took none of its writes since the outcome was published: see notify.unrecorded), so this daemon does not send it; tell ${shown} of session ${never}'s outcome by hand if it matters (agentd show ${never} has its record), and free room in the state dir`,
    );
    expect(dropped[1]?.msg).toContain(
      'so this daemon does not send it (a next start may, from the entry written before the outcome was published, if that one is still there);',
    );
    // Room again: nothing is read back from entries that were never written, nor given up as unreadable.
    mendOutbox();
    n.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    expect(n.attempts.map(sessionOf)).toEqual([first]);
    expect(n.lines.filter((l) => l.event === 'notify.failed')).toEqual([]);
    await n.notifier.close(0);
  });

  it('behind others in the outbox, a notification whose record is not on disk waits in memory if the queue has room, and is sent', async () => {
    const small = JSON.stringify(RECORD).length;
    const big = { ...RECORD, agent: 'x'.repeat(3 * small) };
    const limits = { maxWaitingChars: Math.floor(2.5 * small), maxDeferred: 10 };
    const box = new NotifyOutbox(stateDir, () => {});
    const n = setup([target()], 1, box, undefined, limits);
    const sessions = ids(4) as [string, string, string, string];
    n.notifier.notify({ ...RECORD, id: sessions[0] });
    n.notifier.notify({ ...RECORD, id: sessions[1] });
    n.notifier.notify({ ...big, id: sessions[2] });
    // The state dir takes no more writes (those made stay there).
    const full = vi.spyOn(box, 'writeNow').mockReturnValue(false);
    n.notifier.notify({ ...RECORD, id: sessions[3] });
    await vi.advanceTimersByTimeAsync(0);
    // The last one out of turn, in memory: its entry would have nothing to read back.
    expect([n.notifier.underWay, n.notifier.waiting, n.notifier.deferred]).toEqual([1, 2, 1]);
    full.mockRestore();
    const { taken } = await answerUntilDone(n, 0);
    expect(taken).toEqual([sessions[0], sessions[1], sessions[3], sessions[2]]);
    expect(n.lines.filter((l) => l.event === 'notify.failed')).toEqual([]);
    expect(files()).toEqual([]);
    await n.notifier.close(0);
  });

  it('a 4xx answer ends the delivery at once, failed, with a warning naming the webhook, the session, the status and what to fix; nothing is left to resume', async () => {
    const hook = target({ attempts: 5, backoffMs: 1000 });
    const shown = 'http://127.0.0.1:9/hook?…';
    const first = setup([hook], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    first.attempts[0]?.settle(
      new WebhookError('http_4xx', `${shown} answered 404`, undefined, undefined, 404),
    );
    await vi.advanceTimersByTimeAsync(MAX_RETRY_AFTER_MS);
    // Not tried again, though 4 attempts were left.
    expect(first.attempts).toHaveLength(1);
    expect(first.counted).toEqual(['attempt:http_4xx', 'notification:failed']);
    const refused = first.lines.find((l) => l.event === 'notify.attempt_failed');
    expect(refused).toMatchObject({
      level: 40,
      session: RECORD.id,
      url: shown,
      status: 404,
      attempt: 1,
      final: true,
      permanent: true,
    });
    expect(refused?.retryIn).toBeUndefined();
    expect(refused?.msg).toBe(
      `notification of session ${RECORD.id} to ${shown} refused with 404 (attempt 1): not tried again, since a 404 answer says the request itself is wrong; check the webhook's url in notify: (its host, path and any token it carries): nothing there takes POSTs`,
    );
    expect(first.lines.find((l) => l.event === 'notify.failed')).toMatchObject({
      attempts: 1,
      permanent: true,
      status: 404,
      reason: `${shown} answered 404`,
    });
    expect(JSON.stringify(first.lines)).not.toContain('hidden');
    // Its entry is gone: a next start has nothing to send.
    expect(files()).toEqual([]);
    const next = setup([hook], undefined, outbox());
    next.notifier.resume(() => undefined);
    await vi.advanceTimersByTimeAsync(MAX_RETRY_AFTER_MS);
    expect(next.attempts).toEqual([]);
    await stop(first.notifier);
    await stop(next.notifier);
  });

  it('a redirect ends the delivery at once, failed, with a warning naming where it pointed (scheme and host) and the fix', async () => {
    const shown = 'http://127.0.0.1:9/hook?…';
    const first = setup([target({ attempts: 5, backoffMs: 1000 })], undefined, outbox());
    first.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    first.attempts[0]?.settle(
      new WebhookError(
        'redirect',
        `${shown} answered 308 (a redirect to https://hooks.example, not followed)`,
        undefined,
        undefined,
        308,
        'https://hooks.example',
      ),
    );
    await vi.advanceTimersByTimeAsync(MAX_RETRY_AFTER_MS);
    // Not tried again, though 4 attempts were left: it would be redirected again.
    expect(first.attempts).toHaveLength(1);
    expect(first.counted).toEqual(['attempt:redirect', 'notification:failed']);
    const redirected = first.lines.find((l) => l.event === 'notify.attempt_failed');
    expect(redirected).toMatchObject({
      level: 40,
      session: RECORD.id,
      url: shown,
      status: 308,
      location: 'https://hooks.example',
      final: true,
      permanent: true,
    });
    expect(redirected?.msg).toBe(
      `notification of session ${RECORD.id} to ${shown} answered 308, a redirect to https://hooks.example (attempt 1): not tried again, since agentd follows no redirect (a notification and its signature go only where notify: says); if the address on https://hooks.example it redirects to is where notifications should go, set the webhook's url in notify: to that final address (the receiver's Location header has it in full); else check the url`,
    );
    expect(first.lines.find((l) => l.event === 'notify.failed')).toMatchObject({
      level: 50,
      permanent: true,
      status: 308,
      location: 'https://hooks.example',
    });
    expect(files()).toEqual([]);
    await stop(first.notifier);
  });

  it('a 401 or 403 points at the secret; 408, 425 and 429 are tried again, a 429 after its Retry-After', async () => {
    const n = setup([target({ attempts: 2, backoffMs: 1000 })]);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    n.attempts[0]?.settle(new WebhookError('http_4xx', 'answered 403', undefined, undefined, 403));
    await vi.advanceTimersByTimeAsync(0);
    expect(n.lines.find((l) => l.event === 'notify.attempt_failed')?.msg).toContain(
      "check the webhook's secret in notify: (the receiver must check X-Agentd-Signature-256 with the same key)",
    );
    for (const status of [408, 425, 429]) {
      const m = setup([target({ attempts: 2, backoffMs: 1000 })]);
      m.notifier.notify(RECORD);
      await vi.advanceTimersByTimeAsync(0);
      const wait = status === 429 ? 60_000 : undefined;
      m.attempts[0]?.settle(new WebhookError('http_4xx', `answered ${status}`, undefined, wait, status));
      await vi.advanceTimersByTimeAsync((wait ?? 1000) - 1);
      expect(m.attempts).toHaveLength(status === 429 ? 1 : 2);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(m.attempts).toHaveLength(2);
      m.attempts[1]?.settle();
      await vi.advanceTimersByTimeAsync(0);
      expect(m.counted).toEqual(['attempt:http_4xx', 'attempt:ok', 'notification:delivered']);
      expect(m.lines.find((l) => l.event === 'notify.attempt_failed')).toMatchObject({ final: false });
      await stop(m.notifier);
    }
    expect(n.attempts).toHaveLength(1);
    await stop(n.notifier);
  });

  it('a start reads every entry a daemon can leave: under way, waiting and left for it', () => {
    expect(MAX_PENDING + MAX_WAITING + MAX_DEFERRED).toBeLessThanOrEqual(OUTBOX_MAX_ENTRIES - 1024);
  });

  it('a notification taken at once, or with no webhook that wants it, leaves nothing on disk', async () => {
    const n = setup(
      [
        target({ outcomes: ['failed'] }),
        target({ url: 'http://127.0.0.1:9/ok-only', outcomes: ['succeeded'] }),
      ],
      undefined,
      outbox(),
    );
    n.notifier.prepare(RECORD, 'failed');
    expect(entry().targets).toHaveLength(1);
    n.notifier.notify(RECORD);
    await vi.advanceTimersByTimeAsync(0);
    expect(n.attempts).toHaveLength(1);
    n.attempts[0]?.settle();
    await vi.advanceTimersByTimeAsync(0);
    const other = { ...RECORD, id: '00000000000000aa', outcome: 'cancelled' as const };
    n.notifier.prepare(other, 'cancelled');
    n.notifier.notify({ ...other, outcome: 'cancelled' });
    await n.notifier.close(0);
    expect(files()).toEqual([]);
  });
});

describe('postWebhook', () => {
  it('takes a 2xx answer, and classifies every other ending without following a redirect', async () => {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
      req.resume();
      if (req.url === '/ok') res.writeHead(204).end();
      else if (req.url === '/fail') res.writeHead(503).end('busy');
      else if (req.url === '/gone') res.writeHead(410).end();
      else if (req.url === '/moved') res.writeHead(302, { location: '/ok' }).end();
      // /slow: never answers.
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const post = (path: string, timeoutMs = 2000) =>
      postWebhook({ url: `http://127.0.0.1:${port}${path}`, body: '{}', headers: {} }, { timeoutMs });
    const failure = (path: string, timeoutMs?: number) =>
      post(path, timeoutMs).then(
        () => 'ok',
        (error: WebhookError) => error.failure,
      );
    try {
      expect(await failure('/ok')).toBe('ok');
      expect(await failure('/fail')).toBe('http_5xx');
      expect(await failure('/gone')).toBe('http_4xx');
      expect(await failure('/moved')).toBe('redirect');
      expect(await failure('/slow', 200)).toBe('timeout');
      expect(seen).toEqual([
        'POST /ok application/json',
        'POST /fail application/json',
        'POST /gone application/json',
        'POST /moved application/json',
        'POST /slow application/json',
      ]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    expect(await failure('/ok')).toBe('network');
  });

  it("reads a 429's and a 5xx's Retry-After, in seconds or as a date, and no other answer's", async () => {
    const inTwoMinutes = new Date(Date.now() + 120_000).toUTCString();
    const server = createServer((req, res) => {
      req.resume();
      if (req.url === '/429') res.writeHead(429, { 'retry-after': '7' }).end();
      else if (req.url === '/503-date') res.writeHead(503, { 'retry-after': inTwoMinutes }).end();
      else if (req.url === '/503') res.writeHead(503).end();
      else if (req.url === '/503-bad') res.writeHead(503, { 'retry-after': 'soon' }).end();
      else if (req.url === '/302') res.writeHead(302, { location: '/x', 'retry-after': '7' }).end();
      else res.writeHead(400, { 'retry-after': '7' }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const failed = (path: string) =>
      postWebhook(
        { url: `http://127.0.0.1:${port}${path}`, body: '{}', headers: {} },
        { timeoutMs: 2000 },
      ).then(
        () => undefined,
        (error: WebhookError) => error,
      );
    try {
      const tooMany = await failed('/429');
      expect(tooMany?.retryAfterMs).toBe(7000);
      expect(tooMany?.message).toBe(`http://127.0.0.1:${port}/429 answered 429 (Retry-After: 7 s)`);
      const dated = (await failed('/503-date'))?.retryAfterMs;
      // An HTTP date has whole seconds.
      expect(dated).toBeGreaterThan(118_000);
      expect(dated).toBeLessThanOrEqual(120_000);
      expect((await failed('/503'))?.retryAfterMs).toBeUndefined();
      expect((await failed('/503-bad'))?.retryAfterMs).toBeUndefined();
      expect((await failed('/302'))?.retryAfterMs).toBeUndefined();
      expect((await failed('/400'))?.retryAfterMs).toBeUndefined();
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('marks a 4xx answer permanent, with its status, but 408, 425 and 429, which ask to try later', async () => {
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(Number(req.url?.slice(1))).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const failed = async (status: number) => {
      const error = await postWebhook(
        { url: `http://127.0.0.1:${port}/${status}`, body: '{}', headers: {} },
        { timeoutMs: 2000 },
      ).then(
        () => undefined,
        (e: WebhookError) => e,
      );
      return [error?.failure, error?.status, error?.permanent];
    };
    try {
      expect(await failed(400)).toEqual(['http_4xx', 400, true]);
      expect(await failed(401)).toEqual(['http_4xx', 401, true]);
      expect(await failed(404)).toEqual(['http_4xx', 404, true]);
      expect(await failed(410)).toEqual(['http_4xx', 410, true]);
      expect(await failed(408)).toEqual(['http_4xx', 408, false]);
      expect(await failed(425)).toEqual(['http_4xx', 425, false]);
      expect(await failed(429)).toEqual(['http_4xx', 429, false]);
      expect(await failed(503)).toEqual(['http_5xx', 503, false]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    expect(permanentStatus(499)).toBe(true);
    expect([500, 200].map(permanentStatus)).toEqual([false, false]);
  });

  it('marks a redirect permanent, naming where it points by scheme and host only', async () => {
    const server = createServer((req, res) => {
      req.resume();
      const status = Number(req.url?.slice(1, 4));
      if (req.url?.endsWith('/relative'))
        res.writeHead(status, { location: '/elsewhere?token=secret1' }).end();
      else if (req.url?.endsWith('/none')) res.writeHead(status).end();
      else
        res
          .writeHead(status, {
            location: 'https://user:pw@eo2kbzmlhi8v9ld.m.example.net:8443/T0123/B0456/XSECRETx?token=secret2',
          })
          .end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const failed = (path: string) =>
      postWebhook(
        { url: `http://127.0.0.1:${port}${path}`, body: '{}', headers: {} },
        { timeoutMs: 2000 },
      ).then(
        () => undefined,
        (e: WebhookError) => e,
      );
    try {
      for (const status of [301, 302, 303, 307, 308]) {
        const error = await failed(`/${status}`);
        expect([error?.failure, error?.status, error?.permanent]).toEqual(['redirect', status, true]);
        expect(error?.redirectTo).toBe('https://….m.example.net:8443');
      }
      const absolute = await failed('/301');
      expect(absolute?.message).toBe(
        `http://127.0.0.1:${port}/301 answered 301 (a redirect to https://….m.example.net:8443, not followed)`,
      );
      expect((await failed('/302/relative'))?.redirectTo).toBe(`http://127.0.0.1:${port}`);
      const none = await failed('/307/none');
      expect([none?.permanent, none?.redirectTo]).toEqual([true, undefined]);
      expect(none?.message).toBe(`http://127.0.0.1:${port}/307/none answered 307 (a redirect, not followed)`);
      for (const error of [absolute, await failed('/302/relative')])
        expect(JSON.stringify([error?.message, error?.redirectTo])).not.toMatch(
          /secret|token|user|pw|T0123|elsewhere/,
        );
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    expect([300, 399].map(permanentStatus)).toEqual([true, true]);
  });

  it('reads Retry-After as RFC 9110 writes it, and nothing else', () => {
    const now = Date.parse('2026-06-01T10:00:00Z');
    expect(retryAfterMs('120', now)).toBe(120_000);
    expect(retryAfterMs(' 0 ', now)).toBe(0);
    expect(retryAfterMs('Mon, 01 Jun 2026 10:01:30 GMT', now)).toBe(90_000);
    expect(retryAfterMs('Monday, 01-Jun-26 10:01:30 GMT', now)).toBe(90_000);
    // A date past: no wait.
    expect(retryAfterMs('Mon, 01 Jun 2026 09:00:00 GMT', now)).toBe(0);
    for (const value of [null, '', '-5', '1.5', '2m', 'soon', '2026-06-01T10:01:30Z'])
      expect(retryAfterMs(value, now)).toBeUndefined();
  });

  it('names the URL in its errors without the query, where a service may keep a token', async () => {
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(500).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const message = (url: string, timeoutMs = 2000) =>
      postWebhook({ url, body: '{}', headers: {} }, { timeoutMs }).then(
        () => 'ok',
        (error: WebhookError) => error.message,
      );
    try {
      const answered = await message(`http://127.0.0.1:${port}/hook?token=S3CRET-QUERY-TOKEN`);
      expect(answered).toBe(`http://127.0.0.1:${port}/hook?… answered 500`);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    const unreachable = await message(`http://127.0.0.1:${port}/hook?token=S3CRET-QUERY-TOKEN`);
    expect(unreachable.startsWith(`cannot reach http://127.0.0.1:${port}/hook?…: `)).toBe(true);
    expect(unreachable).not.toContain('S3CRET');
  });

  it('says why fetch would not connect when its error has no code (a blocked port), not only "fetch failed"', async () => {
    const error = await postWebhook(
      { url: 'http://127.0.0.1:6667/hook?token=S3CRET', body: '{}', headers: {} },
      { timeoutMs: 2000 },
    ).then(
      () => undefined,
      (failed: WebhookError) => failed,
    );
    expect(error?.failure).toBe('network');
    expect(error?.message).toBe('cannot reach http://127.0.0.1:6667/hook?…: bad port');
  });

  it("does not repeat a code-less cause's words that name the host, whose name may hold a key", async () => {
    const url = 'https://eo2kbzmlhi8v9ld.m.pipedream.net/hook';
    const fetched = vi
      .spyOn(globalThis, 'fetch')
      .mockRejectedValue(
        new TypeError('fetch failed', { cause: new Error('no route to eo2kbzmlhi8v9ld.m.pipedream.net') }),
      );
    try {
      const message = await postWebhook({ url, body: '{}', headers: {} }, { timeoutMs: 2000 }).then(
        () => 'ok',
        (failed: WebhookError) => failed.message,
      );
      expect(message).toBe('cannot reach https://….m.pipedream.net/hook: fetch failed');
    } finally {
      fetched.mockRestore();
    }
  });
});

describe('shownWebhookUrl', () => {
  it('leaves out a user, a password and the query', () => {
    expect(shownWebhookUrl('https://hooks.example.com/agentd')).toBe('https://hooks.example.com/agentd');
    expect(shownWebhookUrl('https://hooks.example.com/a?token=abc#frag')).toBe(
      'https://hooks.example.com/a?…',
    );
    expect(shownWebhookUrl('https://u:HOOKPASSWORD123@hooks.example.com:8443/x')).toBe(
      'https://hooks.example.com:8443/x',
    );
    expect(shownWebhookUrl('not a url')).toBe('(not a URL)');
    // Services that put the secret in the path.
    expect(
      shownWebhookUrl('https://hooks.slack.com/services/T0000AAAA/B0000BBBB/XyZ123abcDEF456ghiJKL789'),
    ).toBe('https://hooks.slack.com/services/…/…/…');
    expect(
      shownWebhookUrl(
        'https://discord.com/api/webhooks/123456789012345678/aBcD-eFgH_iJkLmNoPqRsTuVwXyZ0123456789',
      ),
    ).toBe('https://discord.com/api/webhooks/…/…');
    expect(shownWebhookUrl('https://hooks.example.com/deploy-notifications/agentd')).toBe(
      'https://hooks.example.com/deploy-notifications/agentd',
    );
    // Services that put the secret in the host name; addresses and ordinary names stay.
    expect(shownWebhookUrl('https://eo2kbzmlhi8v9ld.m.pipedream.net/')).toBe('https://….m.pipedream.net/');
    expect(shownWebhookUrl('http://127.0.0.1:8080/hook')).toBe('http://127.0.0.1:8080/hook');
    expect(shownWebhookUrl('http://[::1]:8080/hook')).toBe('http://[::1]:8080/hook');
    expect(shownWebhookUrl('https://notifications.internal-ci.example.com:8443/a')).toBe(
      'https://notifications.internal-ci.example.com:8443/a',
    );
    expect(shownWebhookUrl('https://build01.example.com/a')).toBe('https://build01.example.com/a');
    // Keys in the path in other shapes; names stay.
    for (const [raw, shown] of [
      ['https://x.example/hooks/SECRETSECRETSECRETSECRET', 'https://x.example/hooks/…'],
      ['https://x.example/hooks/abcdefghijklmnopqrstuvwxyzabcdef', 'https://x.example/hooks/…'],
      ['https://x.example/hooks/sk_live_abcdefghijklmnop', 'https://x.example/hooks/…'],
      ['https://x.example/hook;token=abc', 'https://x.example/…'],
      [
        'https://hooks.zapier.com/hooks/catch/1234567/abc1xyz/',
        'https://hooks.zapier.com/hooks/catch/1234567/…/',
      ],
      ['https://x.example/api/v1/deploy-notifications', 'https://x.example/api/v1/deploy-notifications'],
    ])
      expect(shownWebhookUrl(raw as string)).toBe(shown);
  });
});

describe('notify: configuration', () => {
  const parse = (text: string) => parseConfig(text, '/etc/agentd/agentd.yaml', { HOME: '/home/u' }, 1000);
  const agent = '  - name: demo\n    image: i\n    command: [run]\n';

  it('reads webhooks of the daemon and of an agent, with defaults', () => {
    const settings = parse(
      `daemon:\n  notify:\n    - url: https://hooks.example.com/all\n      secret: file:keys/hook\nagents:\n${agent}    notify:\n      - url: http://127.0.0.1:8080/demo\n        secret: HOOK_KEY\n        attempts: 2\n        backoff: 500ms\n`,
    );
    expect(settings.daemon.notify).toEqual([
      {
        url: 'https://hooks.example.com/all',
        secret: { kind: 'file', path: '/etc/agentd/keys/hook', raw: 'file:keys/hook' },
        attempts: 5,
        backoffMs: 2000,
      },
    ]);
    expect(settings.agents[0]?.notify).toEqual([
      {
        url: 'http://127.0.0.1:8080/demo',
        secret: { kind: 'env', name: 'HOOK_KEY', raw: 'HOOK_KEY' },
        attempts: 2,
        backoffMs: 500,
      },
    ]);
  });

  it('rejects URLs with a user, other schemes, too many attempts, a missing secret and unknown keys', () => {
    let problems: { path: string; message: string }[] = [];
    try {
      parse(
        `agents:\n${agent}    notify:\n      - url: https://u:p@hooks.example.com/x\n        secret: env:K\n      - url: ftp://hooks.example.com/x\n        secret: env:K\n        attempts: 11\n      - url: https://hooks.example.com/x\n        secrt: env:K\n`,
      );
    } catch (error) {
      problems = (error as ConfigError).problems;
    }
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p.message]));
    expect(byPath['agents[0].notify[0].url']).toContain('must not contain a user or password');
    // The password is not repeated where the problem is shown (validate, a failed reload, the log).
    expect(byPath['agents[0].notify[0].url']).not.toContain('u:p@');
    expect(byPath['agents[0].notify[1].url']).toContain('only https:// and http://');
    expect(byPath['agents[0].notify[1].attempts']).toContain('at most 10');
    expect(byPath['agents[0].notify[2].secret']).toContain('is required');
    expect(byPath['agents[0].notify[2].secrt']).toContain('did you mean "secret"');
  });

  it("refuses a webhook on a port fetch never connects to, naming the port; this Node's fetch blocks each of them", async () => {
    let problems: { path: string; message: string }[] = [];
    try {
      parse(
        `agents:\n${agent}    notify:\n      - url: http://127.0.0.1:6667/hook?token=S3CRET\n        secret: env:K\n      - url: https://hooks.example.com:10080/x\n        secret: env:K\n      - url: http://127.0.0.1:8080/ok\n        secret: env:K\n`,
      );
    } catch (error) {
      problems = (error as ConfigError).problems;
    }
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p.message]));
    expect(byPath['agents[0].notify[0].url']).toBe(
      `"http://127.0.0.1:6667/hook?…": port 6667 is one that fetch never connects to (the Fetch standard's blocked ports: mail, IRC, SIP, X11 and the like), so every notification would fail; have the receiver listen on another port`,
    );
    expect(byPath['agents[0].notify[1].url']).toContain('port 10080 is one that fetch never connects to');
    expect(byPath['agents[0].notify[2].url']).toBeUndefined();
    // The list is fetch's own: each port on it is refused by fetch before any connection, the next one is not.
    const refusal = (port: number) =>
      fetch(`http://127.0.0.1:${port}/`, {
        method: 'POST',
        body: '{}',
        signal: AbortSignal.timeout(2000),
      }).then(
        () => undefined,
        (error: { cause?: { message?: string } }) => error.cause?.message,
      );
    for (const port of FETCH_BLOCKED_PORTS) expect(await refusal(port), `port ${port}`).toBe('bad port');
    expect(await refusal(6670)).not.toBe('bad port');
  });

  it('reads outcomes: as a filter, and names an unknown or empty one with the choices', () => {
    const settings = parse(
      `agents:\n${agent}    notify:\n      - url: https://hooks.example.com/x\n        secret: env:K\n        outcomes: [failed, timed_out, failed]\n`,
    );
    expect(settings.agents[0]?.notify[0]?.outcomes).toEqual(['failed', 'timed_out']);
    let problems: { path: string; message: string }[] = [];
    try {
      parse(
        `agents:\n${agent}    notify:\n      - url: https://hooks.example.com/x\n        secret: env:K\n        outcomes: [failure]\n      - url: https://hooks.example.com/y\n        secret: env:K\n        outcomes: []\n`,
      );
    } catch (error) {
      problems = (error as ConfigError).problems;
    }
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p.message]));
    expect(byPath['agents[0].notify[0].outcomes[0]']).toContain(
      '"failure" is not an outcome; use succeeded, failed',
    );
    expect(byPath['agents[0].notify[1].outcomes']).toContain('is empty');
  });
});
