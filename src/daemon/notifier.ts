import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { type Actor, createActor, fromPromise } from 'xstate';
import { resolveSource } from '../adapters/credentials.js';
import { postWebhook, WebhookError, type WebhookFailure } from '../adapters/webhook.js';
import type { NotifyTarget } from '../config/types.js';
import { shownWebhookUrl } from '../config/webhook-url.js';
import { errorMessage } from '../errors.js';
import { deliveryMachine } from '../machines/delivery.machine.js';
import {
  DELIVERY_HEADER,
  EVENT_HEADER,
  NOTIFICATION_EVENT,
  notificationBody,
  SIGNATURE_HEADER,
  signature,
} from '../sessions/notification.js';
import type { SessionRecord } from '../sessions/records.js';

export interface NotifierOptions {
  /** Every webhook to tell of this session's outcome: its agent's and the daemon's. */
  targets(record: SessionRecord): NotifyTarget[];
  env: NodeJS.ProcessEnv;
  log: Logger;
  metrics: {
    notification(result: 'delivered' | 'failed' | 'dropped'): void;
    notificationAttempt(result: 'ok' | WebhookFailure | 'secret'): void;
  };
  version: string;
  /** One POST (default: postWebhook). */
  post?: typeof postWebhook;
  /** Deliveries under way at most; more are dropped (and counted) rather than piling up. */
  maxPending?: number;
  /** Deadline of one POST. */
  timeoutMs?: number;
}

const MAX_PENDING = 256;
const TIMEOUT_MS = 10_000;

/**
 * Tells webhooks of outcomes: one delivery machine per notification and webhook, started and left to
 * itself, so a slow or failing receiver never holds up a session or the daemon. Bounded: beyond
 * maxPending deliveries under way, new ones are dropped and counted.
 */
export class Notifier {
  private readonly pending = new Set<Actor<typeof deliveryMachine>>();
  private readonly post: typeof postWebhook;
  private idle: (() => void) | undefined;

  constructor(private readonly options: NotifierOptions) {
    this.post = options.post ?? postWebhook;
  }

  /** Starts the deliveries of a finished session's record; returns at once. */
  notify(record: SessionRecord): void {
    for (const target of this.options.targets(record)) {
      if (wanted(target, record)) this.deliver(record, target);
    }
  }

  /** Deliveries under way. */
  get underWay(): number {
    return this.pending.size;
  }

  /** Waits up to graceMs for the deliveries under way, then stops the rest (they are not retried). */
  async close(graceMs: number): Promise<void> {
    if (this.pending.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const actor of this.pending) {
      this.options.log.warn(
        { event: 'notify.abandoned', url: shownWebhookUrl(actor.getSnapshot().context.url) },
        'a notification was still being delivered when agentd stopped; it is not sent again',
      );
      actor.stop();
    }
    this.pending.clear();
  }

  private deliver(record: SessionRecord, target: NotifyTarget): void {
    const { log, metrics } = this.options;
    const url = shownWebhookUrl(target.url);
    const delivery = randomUUID();
    const context = { event: 'notify', session: record.id, url, delivery };
    if (this.pending.size >= (this.options.maxPending ?? MAX_PENDING)) {
      metrics.notification('dropped');
      log.warn(
        { ...context, event: 'notify.dropped', pending: this.pending.size },
        `notification of session ${record.id} to ${url} dropped: too many notifications under way`,
      );
      return;
    }
    const body = notificationBody(record, delivery);
    const logic = deliveryMachine.provide({
      actors: {
        post: fromPromise(async ({ signal }) => {
          const key = await resolveSource('notify.secret', target.secret, this.options.env).catch(
            (error: unknown) => {
              throw Object.assign(new Error(errorMessage(error)), { failure: 'secret' });
            },
          );
          await this.post(
            {
              url: target.url,
              body,
              headers: {
                'user-agent': `agentd/${this.options.version}`,
                [EVENT_HEADER]: NOTIFICATION_EVENT,
                [DELIVERY_HEADER]: delivery,
                [SIGNATURE_HEADER]: signature(key.bytes(), body),
              },
            },
            { timeoutMs: this.options.timeoutMs ?? TIMEOUT_MS, signal },
          );
          metrics.notificationAttempt('ok');
        }),
      },
      actions: {
        announceFailedAttempt: (_, { attempt, error, final }) => {
          metrics.notificationAttempt(failureOf(error));
          log.warn(
            { ...context, event: 'notify.attempt_failed', attempt, final, reason: errorMessage(error) },
            `notification of session ${record.id} to ${url} failed (attempt ${attempt}): ${errorMessage(error)}${final ? '' : '; trying again'}`,
          );
        },
      },
    });
    const actor = createActor(logic, {
      input: { url: target.url, attempts: target.attempts, backoffMs: target.backoffMs },
    });
    this.pending.add(actor);
    actor.subscribe({
      complete: () => {
        this.pending.delete(actor);
        const snapshot = actor.getSnapshot();
        if (snapshot.matches('delivered')) {
          metrics.notification('delivered');
          log.info(
            { ...context, event: 'notify.delivered', attempts: snapshot.context.attempt },
            `notified ${url} of session ${record.id}`,
          );
        } else {
          metrics.notification('failed');
          log.error(
            {
              ...context,
              event: 'notify.failed',
              attempts: snapshot.context.attempt,
              reason: snapshot.context.lastError,
            },
            `could not notify ${url} of session ${record.id} after ${snapshot.context.attempt} attempt(s): ${snapshot.context.lastError}`,
          );
        }
        if (this.pending.size === 0) this.idle?.();
      },
      error: (error) => {
        this.pending.delete(actor);
        metrics.notification('failed');
        log.error({ ...context, event: 'notify.failed', err: error }, 'notification failed');
      },
    });
    actor.start();
  }
}

function failureOf(error: unknown): WebhookFailure | 'secret' {
  if (error instanceof WebhookError) return error.failure;
  if ((error as { failure?: string }).failure === 'secret') return 'secret';
  return 'network';
}

/** A target with `outcomes:` hears only of those; one without, of every outcome. */
function wanted(target: NotifyTarget, record: SessionRecord): boolean {
  return (
    target.outcomes === undefined ||
    (record.outcome !== undefined && target.outcomes.includes(record.outcome))
  );
}
