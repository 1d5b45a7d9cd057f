import { assign, fromPromise, setup } from 'xstate';
import { NOTIFY_BACKOFF_MAX_MS } from '../constants.js';

/**
 * One outcome notification to one webhook: POST it, and after a failure wait and POST it again, a
 * bounded number of times; a failure that says trying again cannot help (a redirect, which is never
 * followed, or a 4xx answer) ends it at once. The wait doubles after each failed POST up to a cap, is
 * drawn at random between half of that and all of it (deliveries that failed together do not come back
 * together), and is at least what a receiver's Retry-After asks, within a bound. It runs beside the
 * daemon: nothing waits for it.
 */

export interface DeliveryInput {
  /** Who is told and of what: the notifier's business; this machine only retries. */
  url: string;
  /** POSTs at most, the first included. */
  attempts: number;
  /** Wait before the second POST at most; it doubles after each failed one, up to MAX_BACKOFF_MS. */
  backoffMs: number;
  /** POSTs an earlier daemon made of this notification (counted among `attempts`); 0 when left out. */
  made?: number;
  /** Wait before the first POST (a resumed delivery: the time its outbox entry had left); 0 when left out. */
  waitMs?: number;
}

export interface DeliveryContext extends Omit<DeliveryInput, 'waitMs'> {
  /** POSTs made so far. */
  attempt: number;
  /** Wait before the next POST: planned as a POST goes out, lengthened by the receiver's Retry-After. */
  waitMs: number;
  /** Why the last POST failed. */
  lastError?: string;
  /**
   * The last POST's failure said trying again cannot help (a redirect or a 4xx answer): it ended the
   * delivery at once.
   */
  permanent?: boolean;
}

/**
 * How many POSTs were made and why the last one failed; the final state says whether it was delivered
 * (and the context's `permanent`, whether a failure ended it before its attempts ran out).
 */
export type DeliveryOutput = { attempts: number; error?: string };

/** The longest wait between two attempts of the doubling backoff (a webhook's `backoff` is refused past it). */
export const MAX_BACKOFF_MS = NOTIFY_BACKOFF_MAX_MS;
/**
 * The longest a receiver's Retry-After is waited for: a longer one is cut to it (a receiver asking for
 * hours would otherwise hold the notification, and a place among those under way, that long).
 */
export const MAX_RETRY_AFTER_MS = 15 * 60_000;
/** The longest wait this machine ever plans: a resumed delivery's time left is cut to it. */
export const MAX_WAIT_MS = Math.max(MAX_BACKOFF_MS, MAX_RETRY_AFTER_MS);

/**
 * The wait after failed POST number `attempt` (1 the first): backoffMs doubled per earlier failure, at
 * most MAX_BACKOFF_MS, drawn (random in [0, 1)) between half of it and all of it ("equal jitter": never
 * less than half, so a failing receiver is not hammered, and spread so those that failed together do
 * not come back together).
 */
export function backoffWaitMs(backoffMs: number, attempt: number, random: number): number {
  const full = Math.min(MAX_BACKOFF_MS, backoffMs * 2 ** Math.max(0, attempt - 1));
  return Math.max(1, Math.round(full / 2 + (full / 2) * random));
}

/**
 * The wait a receiver's Retry-After asks for, at most MAX_RETRY_AFTER_MS, with up to a tenth more drawn
 * at random (within that bound): receivers send one Retry-After to every caller at once.
 */
export function retryAfterWaitMs(retryAfterMs: number, random: number): number {
  return Math.min(MAX_RETRY_AFTER_MS, Math.round(retryAfterMs * (1 + random / 10)));
}

/**
 * Whether the POST's error says the same POST later would fail the same way (webhook.ts:
 * WebhookError.permanent: a 3xx answer, a 4xx but 408, 425 and 429).
 */
function permanentOf(error: unknown): boolean {
  return (error as { permanent?: unknown } | undefined)?.permanent === true;
}

/** The receiver's Retry-After, when the POST's error carries one (webhook.ts: WebhookError.retryAfterMs). */
function retryAfterOf(error: unknown): number | undefined {
  const value = (error as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** What the actions of a failed POST see: the machine's context and the post actor's error. */
interface FailedPost {
  context: DeliveryContext;
  event: { error: unknown };
}

/**
 * The actions every failed POST ends with: keep its error, and tell of it; `final`: no attempt follows
 * (else the next comes after the wait planned, Retry-After heeded).
 */
function failedAttempt(final: boolean) {
  return [
    { type: 'storeError', params: ({ event }: FailedPost) => messageOf(event.error) },
    {
      type: 'announceFailedAttempt',
      params: ({ context, event }: FailedPost) => ({
        attempt: context.attempt,
        error: event.error,
        final,
        retryInMs: final ? 0 : context.waitMs,
      }),
    },
  ] as const;
}

export const deliveryMachine = setup({
  types: {
    context: {} as DeliveryContext,
    input: {} as DeliveryInput,
    output: {} as DeliveryOutput,
  },
  actors: {
    /**
     * One POST (provided): resolves on a 2xx answer, rejects otherwise (with `retryAfterMs` when the
     * receiver sent a Retry-After); honours its signal. `retryInMs`: the wait before the next POST
     * should this one fail or be cut short (its caller keeps it on disk before the POST goes out).
     */
    post: fromPromise<void, { attempt: number; retryInMs: number }>(async () => {
      throw new Error('delivery machine: actor post must be provided');
    }),
  },
  guards: {
    attemptsLeft: ({ context }) => context.attempt < context.attempts,
    /**
     * The POST failed so that trying again cannot help: the receiver refused the request itself, or
     * redirected it (never followed).
     */
    refused: (_, { error }: { error: unknown }) => permanentOf(error),
    noWaitLeft: ({ context }) => context.waitMs <= 0,
  },
  delays: {
    backoff: ({ context }) => context.waitMs,
  },
  actions: {
    countAttempt: assign({ attempt: ({ context }) => context.attempt + 1 }),
    planWait: assign({
      waitMs: ({ context }) => backoffWaitMs(context.backoffMs, context.attempt, Math.random()),
    }),
    heedRetryAfter: assign({
      waitMs: ({ context }, retryAfterMs: number | undefined) =>
        retryAfterMs === undefined
          ? context.waitMs
          : Math.max(context.waitMs, retryAfterWaitMs(retryAfterMs, Math.random())),
    }),
    storeError: assign({ lastError: (_, message: string) => message }),
    markPermanent: assign({ permanent: true }),
    /**
     * Side effect (provided): one POST failed; `final` when no attempt is left, else the next comes after
     * `retryInMs`.
     */
    announceFailedAttempt: (
      _,
      _params: { attempt: number; error: unknown; final: boolean; retryInMs: number },
    ) => {},
  },
}).createMachine({
  id: 'delivery',
  description:
    'One outcome notification to one webhook (`notify:`): POSTed until it is taken, at most `attempts` times, waiting between attempts `backoff` doubled per failure (at most 5 minutes), drawn between half of it and all of it, and at least what a Retry-After asks (at most 15 minutes); a redirect (3xx, never followed) or a 4xx answer (but 408, 425 and 429) ends it at once.',
  context: ({ input: { waitMs, ...input } }) => ({
    ...input,
    attempt: input.made ?? 0,
    waitMs: Math.max(0, waitMs ?? 0),
  }),
  initial: 'waiting',
  states: {
    waiting: {
      description:
        'Wait before the next attempt: the wait planned when the last one went out (or, resumed after a restart, the time its outbox entry had left); none: POST now.',
      always: { guard: 'noWaitLeft', target: 'posting' },
      after: { backoff: 'posting' },
    },
    posting: {
      description:
        'POST the signed session record; a 2xx answer delivers it. The wait should it fail is planned as it goes out.',
      entry: ['countAttempt', 'planWait'],
      invoke: {
        src: 'post',
        input: ({ context }) => ({ attempt: context.attempt, retryInMs: context.waitMs }),
        onDone: 'delivered',
        onError: [
          {
            // Before attemptsLeft: the attempts left would only get the same answer.
            guard: { type: 'refused', params: ({ event }) => ({ error: event.error }) },
            target: 'failed',
            actions: ['markPermanent', ...failedAttempt(true)],
          },
          {
            guard: 'attemptsLeft',
            target: 'waiting',
            actions: [
              { type: 'heedRetryAfter', params: ({ event }) => retryAfterOf(event.error) },
              ...failedAttempt(false),
            ],
          },
          {
            target: 'failed',
            actions: failedAttempt(true),
          },
        ],
      },
    },
    delivered: { description: 'The webhook took the notification.', type: 'final' },
    failed: {
      description:
        'Every attempt failed, or one was answered so that trying again cannot help (a redirect, or a 4xx answer but 408, 425 and 429); the failure is logged and counted.',
      type: 'final',
    },
  },
  output: ({ context }) => ({
    attempts: context.attempt,
    ...(context.lastError === undefined ? {} : { error: context.lastError }),
  }),
});

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
