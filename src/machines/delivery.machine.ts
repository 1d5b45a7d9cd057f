import { assign, fromPromise, setup } from 'xstate';

/**
 * One outcome notification to one webhook: POST it, and after a failure wait and POST it again, a
 * bounded number of times with a doubling wait. It runs beside the daemon: nothing waits for it.
 */

export interface DeliveryInput {
  /** Who is told and of what: the notifier's business; this machine only retries. */
  url: string;
  /** POSTs at most, the first included. */
  attempts: number;
  /** Wait before the second POST; it doubles after each failed one, up to MAX_BACKOFF_MS. */
  backoffMs: number;
  /** POSTs an earlier daemon made of this notification (counted among `attempts`); 0 when left out. */
  made?: number;
}

export interface DeliveryContext extends DeliveryInput {
  /** POSTs made so far. */
  attempt: number;
  /** Why the last POST failed. */
  lastError?: string;
}

/** How many POSTs were made and why the last one failed; the final state says whether it was delivered. */
export type DeliveryOutput = { attempts: number; error?: string };

/** The longest wait between two attempts. */
export const MAX_BACKOFF_MS = 5 * 60_000;

export const deliveryMachine = setup({
  types: {
    context: {} as DeliveryContext,
    input: {} as DeliveryInput,
    output: {} as DeliveryOutput,
  },
  actors: {
    /** One POST (provided): resolves on a 2xx answer, rejects otherwise; honours its signal. */
    post: fromPromise<void, { attempt: number }>(async () => {
      throw new Error('delivery machine: actor post must be provided');
    }),
  },
  guards: {
    attemptsLeft: ({ context }) => context.attempt < context.attempts,
  },
  delays: {
    backoff: ({ context }) => Math.min(MAX_BACKOFF_MS, context.backoffMs * 2 ** (context.attempt - 1)),
  },
  actions: {
    countAttempt: assign({ attempt: ({ context }) => context.attempt + 1 }),
    storeError: assign({ lastError: (_, message: string) => message }),
    /** Side effect (provided): one POST failed; `final` when no attempt is left. */
    announceFailedAttempt: (_, _params: { attempt: number; error: unknown; final: boolean }) => {},
  },
}).createMachine({
  id: 'delivery',
  description:
    'One outcome notification to one webhook (`notify:`): POSTed until it is taken, at most `attempts` times, waiting `backoff` (doubling) between attempts.',
  context: ({ input }) => ({ ...input, attempt: input.made ?? 0 }),
  initial: 'posting',
  states: {
    posting: {
      description: 'POST the signed session record; a 2xx answer delivers it.',
      entry: 'countAttempt',
      invoke: {
        src: 'post',
        input: ({ context }) => ({ attempt: context.attempt }),
        onDone: 'delivered',
        onError: [
          {
            guard: 'attemptsLeft',
            target: 'waiting',
            actions: [
              { type: 'storeError', params: ({ event }) => messageOf(event.error) },
              {
                type: 'announceFailedAttempt',
                params: ({ context, event }) => ({
                  attempt: context.attempt,
                  error: event.error,
                  final: false,
                }),
              },
            ],
          },
          {
            target: 'failed',
            actions: [
              { type: 'storeError', params: ({ event }) => messageOf(event.error) },
              {
                type: 'announceFailedAttempt',
                params: ({ context, event }) => ({
                  attempt: context.attempt,
                  error: event.error,
                  final: true,
                }),
              },
            ],
          },
        ],
      },
    },
    waiting: {
      description: 'Wait before the next attempt: backoff, doubled after each failed attempt.',
      after: { backoff: 'posting' },
    },
    delivered: { description: 'The webhook took the notification.', type: 'final' },
    failed: { description: 'Every attempt failed; the failure is logged and counted.', type: 'final' },
  },
  output: ({ context }) => ({
    attempts: context.attempt,
    ...(context.lastError === undefined ? {} : { error: context.lastError }),
  }),
});

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
