import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import { WebhookError } from '../../src/adapters/webhook.js';
import {
  backoffWaitMs,
  type DeliveryInput,
  deliveryMachine,
  MAX_BACKOFF_MS,
  MAX_RETRY_AFTER_MS,
  retryAfterWaitMs,
} from '../../src/machines/delivery.machine.js';

/** One POST the test answers: `retryInMs` is the wait the machine planned should it fail. */
interface Post {
  at: number;
  attempt: number;
  retryInMs: number;
  answer(error?: Error & { retryAfterMs?: number }): void;
}

function start(input: DeliveryInput) {
  const posts: Post[] = [];
  const failed: { attempt: number; final: boolean; retryInMs: number }[] = [];
  const logic = deliveryMachine.provide({
    actors: {
      post: fromPromise<void, { attempt: number; retryInMs: number }>(
        ({ input: { attempt, retryInMs } }) =>
          new Promise<void>((resolve, reject) => {
            posts.push({
              at: Date.now(),
              attempt,
              retryInMs,
              answer: (error) => (error ? reject(error) : resolve()),
            });
          }),
      ),
    },
    actions: {
      announceFailedAttempt: (_, { attempt, final, retryInMs }) => failed.push({ attempt, final, retryInMs }),
    },
  });
  const actor = createActor(logic, { input }).start();
  return { actor, posts, failed };
}

const refused = () => new Error('ECONNREFUSED');

describe('delivery machine', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] }));
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('POSTs at once when nothing is left to wait, and plans the wait should the POST fail', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const { actor, posts } = start({ url: 'u', attempts: 3, backoffMs: 1000 });
    expect(posts.map((p) => [p.attempt, p.retryInMs])).toEqual([[1, 750]]);
    posts[0]?.answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(actor.getSnapshot().value).toBe('delivered');
    expect(actor.getSnapshot().output).toEqual({ attempts: 1 });
  });

  it('a resumed delivery waits the time its entry had left before its first POST', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const t0 = Date.now();
    const { actor, posts } = start({ url: 'u', attempts: 3, backoffMs: 1000, made: 1, waitMs: 5000 });
    await vi.advanceTimersByTimeAsync(4999);
    expect(posts).toEqual([]);
    expect(actor.getSnapshot().value).toBe('waiting');
    await vi.advanceTimersByTimeAsync(1);
    // Attempt 2: the wait it plans is the doubled one.
    expect(posts.map((p) => [p.at - t0, p.attempt, p.retryInMs])).toEqual([[5000, 2, 1500]]);
  });

  it('spreads the waits: the same failure, drawn differently, comes back at different times', async () => {
    const at: number[] = [];
    for (const value of [0, 0.5, 0.99]) {
      vi.spyOn(Math, 'random').mockReturnValue(value);
      const t0 = Date.now();
      const { posts } = start({ url: 'u', attempts: 2, backoffMs: 2000 });
      posts[0]?.answer(refused());
      await vi.advanceTimersByTimeAsync(2000);
      at.push((posts[1]?.at ?? Number.NaN) - t0);
      posts[1]?.answer();
      await vi.advanceTimersByTimeAsync(0);
    }
    expect(at).toEqual([1000, 1500, 1990]);
  });

  it('waits for a Retry-After longer than the planned wait, and tells the wait it chose', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const { posts, failed } = start({ url: 'u', attempts: 3, backoffMs: 1000 });
    posts[0]?.answer(Object.assign(new Error('answered 429'), { retryAfterMs: 60_000 }));
    await vi.advanceTimersByTimeAsync(59_999);
    expect(posts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(posts).toHaveLength(2);
    posts[1]?.answer(refused());
    await vi.advanceTimersByTimeAsync(0);
    expect(failed).toEqual([
      { attempt: 1, final: false, retryInMs: 60_000 },
      { attempt: 2, final: false, retryInMs: 1000 },
    ]);
  });

  it('a failure that says trying again cannot help (a 4xx answer) ends it at once, failed, with attempts left', async () => {
    const { actor, posts, failed } = start({ url: 'u', attempts: 5, backoffMs: 10 });
    posts[0]?.answer(Object.assign(new Error('u answered 404'), { permanent: true }));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(posts).toHaveLength(1);
    expect(actor.getSnapshot().value).toBe('failed');
    expect(actor.getSnapshot().output).toEqual({ attempts: 1, error: 'u answered 404' });
    // What the notifier reads to tell a refusal from attempts run out.
    expect(actor.getSnapshot().context.permanent).toBe(true);
    expect(failed).toEqual([{ attempt: 1, final: true, retryInMs: 0 }]);
  });

  it('a redirect (never followed) ends it at once too, failed, with attempts left', async () => {
    const { actor, posts } = start({ url: 'u', attempts: 5, backoffMs: 1000 });
    posts[0]?.answer(
      new WebhookError('redirect', 'u answered 301', undefined, undefined, 301, 'https://b.example'),
    );
    await vi.advanceTimersByTimeAsync(MAX_RETRY_AFTER_MS);
    expect(posts).toHaveLength(1);
    expect(actor.getSnapshot().value).toBe('failed');
    expect(actor.getSnapshot().output).toEqual({ attempts: 1, error: 'u answered 301' });
    // What the notifier reads to tell a refusal from attempts run out.
    expect(actor.getSnapshot().context.permanent).toBe(true);
  });

  it('a failure that asks to try later (a 429, with its Retry-After) is tried again', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const { actor, posts } = start({ url: 'u', attempts: 2, backoffMs: 10 });
    posts[0]?.answer(Object.assign(new Error('u answered 429'), { permanent: false, retryAfterMs: 5000 }));
    await vi.advanceTimersByTimeAsync(5000);
    expect(posts).toHaveLength(2);
    posts[1]?.answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(actor.getSnapshot().value).toBe('delivered');
    expect(actor.getSnapshot().output).toMatchObject({ attempts: 2 });
  });

  it('its last attempt failed: failed, with no wait', async () => {
    const { actor, posts, failed } = start({ url: 'u', attempts: 2, backoffMs: 10, made: 1 });
    posts[0]?.answer(refused());
    await vi.advanceTimersByTimeAsync(0);
    expect(actor.getSnapshot().value).toBe('failed');
    expect(actor.getSnapshot().output).toEqual({ attempts: 2, error: 'ECONNREFUSED' });
    expect(actor.getSnapshot().context.permanent).toBeUndefined();
    expect(failed).toEqual([{ attempt: 2, final: true, retryInMs: 0 }]);
  });
});

describe('delivery waits', () => {
  it('the backoff doubles per failure, up to MAX_BACKOFF_MS, drawn between half of it and all of it', () => {
    expect([1, 2, 3].map((attempt) => backoffWaitMs(2000, attempt, 0))).toEqual([1000, 2000, 4000]);
    expect([1, 2, 3].map((attempt) => backoffWaitMs(2000, attempt, 0.999_999))).toEqual([2000, 4000, 8000]);
    for (const random of [0, 0.3, 0.999_999]) {
      const wait = backoffWaitMs(2000, 30, random);
      expect(wait).toBeGreaterThanOrEqual(MAX_BACKOFF_MS / 2);
      expect(wait).toBeLessThanOrEqual(MAX_BACKOFF_MS);
    }
    // Never no wait at all.
    expect(backoffWaitMs(1, 1, 0)).toBe(1);
  });

  it('a Retry-After is waited for with up to a tenth more, within MAX_RETRY_AFTER_MS', () => {
    expect(retryAfterWaitMs(10_000, 0)).toBe(10_000);
    expect(retryAfterWaitMs(10_000, 0.5)).toBe(10_500);
    expect(retryAfterWaitMs(86_400_000, 0)).toBe(MAX_RETRY_AFTER_MS);
    expect(retryAfterWaitMs(MAX_RETRY_AFTER_MS - 1000, 0.9)).toBe(MAX_RETRY_AFTER_MS);
  });
});
