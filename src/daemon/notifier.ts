import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { type Actor, createActor, fromPromise } from 'xstate';
import { resolveSource } from '../adapters/credentials.js';
import type { NotifyOutbox, OutboxEntry, OutboxFailure } from '../adapters/notify-outbox.js';
import { postWebhook, WebhookError, type WebhookFailure } from '../adapters/webhook.js';
import type { NotifyTarget } from '../config/types.js';
import { shownWebhookUrl } from '../config/webhook-url.js';
import { formatDuration } from '../duration.js';
import { errorFields, errorMessage } from '../errors.js';
import { backoffWaitMs, deliveryMachine, MAX_WAIT_MS } from '../machines/delivery.machine.js';
import {
  DELIVERY_HEADER,
  EMPTY_SECRET,
  EVENT_HEADER,
  NOTIFICATION_EVENT,
  notificationBodyOf,
  SIGNATURE_HEADER,
  signature,
  webhookKey,
} from '../sessions/notification.js';
import { type SessionRecord, sessionRecordSchema } from '../sessions/records.js';
import type { Outcome } from '../sessions/types.js';
import type { NotificationResult } from './metrics-recorder.js';

/** A session, as far as choosing its webhooks goes. */
export type NotifiedSession = Pick<SessionRecord, 'id' | 'agent'>;

/** The outbox as the notifier uses it (NotifyOutbox; a fake in tests). */
export type Outbox = Pick<NotifyOutbox, 'writeNow' | 'removeNow' | 'load' | 'read'>;

export interface NotifierOptions {
  /** Every webhook to tell of this session's outcome: its agent's and the daemon's. */
  targets(session: NotifiedSession): NotifyTarget[];
  env: NodeJS.ProcessEnv;
  log: Logger;
  metrics: {
    notification(result: NotificationResult): void;
    notificationAttempt(result: 'ok' | WebhookFailure | 'secret'): void;
  };
  version: string;
  /** One POST (default: postWebhook). */
  post?: typeof postWebhook;
  /** Deliveries under way at most; more wait their turn (see maxWaiting). */
  maxPending?: number;
  /** Deliveries under way to one webhook (one URL) at most (MAX_PENDING_PER_WEBHOOK); more to it wait. */
  maxPendingPerWebhook?: number;
  /** Deliveries waiting for a place among those under way at most (MAX_WAITING). */
  maxWaiting?: number;
  /** Record text the waiting deliveries refer to at most, counted per delivery (MAX_WAITING_CHARS). */
  maxWaitingChars?: number;
  /** Deliveries left in the outbox until there is room at most (MAX_DEFERRED). */
  maxDeferred?: number;
  /** Deadline of one POST. */
  timeoutMs?: number;
  /**
   * Where notifications not yet taken are kept across a stop or a crash; without one they are sent at
   * most once (unit tests).
   */
  outbox?: Outbox;
}

/** One webhook to tell of one session's outcome. */
interface Pending {
  target: NotifyTarget;
  key: string;
  /** Which of the wanted webhooks with this URL it is (see wantedWebhooks). */
  nth: number;
  delivery: string;
  /** POSTs made so far, by this daemon and earlier ones. */
  made: number;
  /** When the next POST may go out (ms since the epoch); none before a first POST. */
  due?: number;
}

/** A session's notifications not yet taken: what its outbox entry holds. */
interface Notification {
  session: string;
  /**
   * The record's JSON text, set once the outcome is published: what is POSTed, the same bytes each time.
   * Let go while only deliveries left in the outbox remain (see held), and read back from there (only
   * once recordStored).
   */
  record?: string;
  pending: Pending[];
  /** Its deliveries waiting their turn or under way: none, and those left are in the outbox only. */
  held: number;
  /**
   * Some version of its entry is in the outbox (one write of it took, or an earlier daemon's is there):
   * a stop that cannot write it again leaves that one to the next start; none, and a stop loses it.
   */
  stored: boolean;
  /**
   * Some version of its entry holding its record is in the outbox (writes replace an entry whole, so a
   * later one that fails leaves it): only then may a delivery of it be left there and its record let go
   * of, to be read back. The entry written before the outcome is published has no record.
   */
  recordStored: boolean;
}

/** A delivery under way: its notification and webhook. */
interface UnderWay {
  notification: Notification;
  pending: Pending;
}

/** A delivery waiting for a place among those under way. */
interface Waiting extends UnderWay {
  /**
   * Its first POST not before this, by the steady clock (performance.now(), never stepped): a resumed one
   * keeps its schedule in the queue, and a wall clock set back while it waits does not hold it longer.
   */
  notBefore: number;
  /** Sent again from an earlier daemon's entry: spaced RESUME_GAP_MS from the others to its webhook. */
  resumed: boolean;
}

/** A delivery left in the outbox while too many wait: picked up again, first left first, when there is room. */
interface Deferred {
  waiting: Waiting;
  /** What it counts against MAX_WAITING_CHARS once back in the queue (its record is not in memory). */
  chars: number;
}

/** Deliveries under way at most: each holds a delivery machine, its timers and at most one POST. */
export const MAX_PENDING = 256;
/**
 * Deliveries under way to one webhook (one URL) at most: one that is down, whose deliveries wait minutes
 * between attempts, leaves the other places to the other webhooks instead of holding them all.
 */
export const MAX_PENDING_PER_WEBHOOK = 64;
/**
 * Deliveries waiting for a place at most. A waiting one is a few hundred bytes (ids, counts, its
 * webhook's key) and a reference to its session's record text, which MAX_WAITING_CHARS bounds: a
 * webhook down for hours while a busy daemon finishes 20 sessions a minute (1,200 an hour) fits.
 */
export const MAX_WAITING = 10_000;
/**
 * The record text the waiting deliveries refer to at most (a record is a few KB; one with many input
 * files, tens): counted once per delivery, so a session's text shared by two webhooks counts twice.
 */
export const MAX_WAITING_CHARS = 32 * 1024 * 1024;
/**
 * Deliveries left in the outbox at most, once the queue is full, until there is room again (or for the
 * next start); past it, one is dropped with its place in the outbox: the outbox, which a start reads
 * whole, stays within OUTBOX_MAX_ENTRIES (under way, waiting and these, plus sessions being recorded)
 * across restarts. In memory each is a few ids: its record is read back from the outbox.
 */
export const MAX_DEFERRED = 4096;
/** A `notify.waiting` line at most this often: a queue that fills and empties does not flood the log. */
const WAITING_LOG_MS = 60_000;
const TIMEOUT_MS = 10_000;
/**
 * At a start, the deliveries resumed to one webhook go out at least this far apart, not all at once
 * (after a long stop, all are overdue): a receiver that is just back, or still down, is not flooded.
 */
export const RESUME_GAP_MS = 250;

/**
 * Tells webhooks of outcomes: one delivery machine per notification and webhook, started and left to
 * itself, so a slow or failing receiver never holds up a session or the daemon. Bounded: beyond
 * maxPending deliveries under way, or maxPendingPerWebhook to one webhook, new ones wait in a FIFO queue
 * per webhook (maxWaiting across all) and start as those under way end, in order within a webhook and
 * taking turns between webhooks, so that one down does not hold up the others; beyond that too, one is
 * left in the outbox (maxDeferred) and read back from it, first left first, once the queue has room
 * again (a stop leaves the rest for the next start), and past that dropped. With an outbox, what is
 * not taken yet is on disk from before the session's record says it finished until the last attempt: a
 * next start sends it again (resume), through the same queues, with the same delivery id and the attempts left, when its next attempt is due (kept on disk),
 * those to one webhook at least RESUME_GAP_MS apart.
 */
export class Notifier {
  private readonly pending = new Map<Actor<typeof deliveryMachine>, UnderWay>();
  /** Deliveries under way per webhook key (none: no entry). */
  private readonly underWayTo = new Map<string, number>();
  /**
   * Deliveries waiting for a place, per webhook key, first come first started within one; only webhooks
   * with some waiting, in the order they take turns (the one served last goes to the end).
   */
  private readonly queues = new Map<string, Fifo<Waiting>>();
  /** Deliveries in the queues, all webhooks together (see MAX_WAITING). */
  private queued = 0;
  /** The record text the queues refer to, per delivery (see MAX_WAITING_CHARS). */
  private queuedChars = 0;
  /**
   * Deliveries left in the outbox until there is room, per webhook key, first left first within one
   * (a later one to that webhook goes behind them); only webhooks with some, in the order they take
   * turns, as in `queues`.
   */
  private readonly deferrals = new Map<string, Fifo<Deferred>>();
  /** Deliveries in `deferrals`, all webhooks together (see MAX_DEFERRED). */
  private deferredCount = 0;
  private waitingLoggedAt = Number.NEGATIVE_INFINITY;
  /**
   * The last `notify.waiting` line per webhook key at its own bound, within the last WAITING_LOG_MS; this
   * and waitingLoggedAt by the steady clock.
   */
  private readonly webhookWaitingLoggedAt = new Map<string, number>();
  /**
   * The first POST planned last, per webhook, of a resumed delivery (steady clock): the next is
   * RESUME_GAP_MS later.
   */
  private readonly resumedAt = new Map<string, number>();
  private readonly post: typeof postWebhook;
  private idle: (() => void) | undefined;
  /** Set by close: deliveries tell it when no POST is in flight any more. */
  private closing = false;
  /** Sessions whose outcome is being recorded: their webhooks and delivery ids, until it is published. */
  private readonly prepared = new Map<string, Notification>();
  /** Entries an earlier daemon left for sessions not finished yet: their delivery ids are used again. */
  private readonly earlier = new Map<string, OutboxEntry>();

  constructor(private readonly options: NotifierOptions) {
    this.post = options.post ?? postWebhook;
  }

  /**
   * Chooses a session's webhooks and delivery ids as its outcome is about to be recorded, and keeps them
   * on disk before the record says it finished. Synchronous: called just before that record is written.
   */
  prepare(session: NotifiedSession, outcome: Outcome): void {
    const before = this.earlier.get(session.id);
    this.earlier.delete(session.id);
    const earlier = [...(before?.targets ?? [])];
    const pending = wantedWebhooks(this.options.targets(session), outcome).map(
      ({ target, key, nth }): Pending => {
        // A URL configured twice (the agent's and the daemon's) keeps each its own delivery.
        const at = earlier.findIndex((kept) => sameWebhook(kept, { key, nth }));
        const [kept] = at === -1 ? [] : earlier.splice(at, 1);
        return {
          target,
          key,
          nth,
          delivery: kept?.delivery ?? randomUUID(),
          made: kept?.made ?? 0,
          ...(kept?.due === undefined ? {} : { due: kept.due }),
        };
      },
    );
    for (const left of earlier) this.givenUp(session.id, left.delivery, 'no webhook wants this outcome now');
    const notification: Notification = {
      session: session.id,
      pending,
      held: 0,
      stored: before !== undefined,
      recordStored: false,
    };
    this.prepared.set(session.id, notification);
    if (pending.length > 0) this.write(notification);
    else if (before !== undefined) this.options.outbox?.removeNow(session.id);
  }

  /** Starts the deliveries of a finished session's record; returns at once. */
  notify(record: SessionRecord): void {
    if (!this.prepared.has(record.id) && record.outcome !== undefined) this.prepare(record, record.outcome);
    const notification = this.prepared.get(record.id);
    this.prepared.delete(record.id);
    if (notification === undefined || notification.pending.length === 0) return;
    notification.record = JSON.stringify(record);
    // On disk with its record before any POST: what a next start sends again is what this one sent.
    this.write(notification);
    const now = performance.now();
    const wall = Date.now();
    for (const pending of [...notification.pending])
      this.admit({ notification, pending, notBefore: now + waitLeft(pending, wall), resumed: false });
    this.letGoOfRecord(notification);
  }

  /**
   * At start, before any session runs: sends again what an earlier daemon did not get taken. The
   * webhooks are found by their URL in the configuration as it is now (the outbox keeps neither URLs
   * nor secrets); one no longer configured is given up. A session whose outcome was being recorded when
   * that daemon was killed (or whose record was being sealed) is told once recovery has recorded it (or
   * sealed it), with the delivery ids chosen then.
   */
  resume(recordOf: (sessionId: string) => SessionRecord | undefined): void {
    const { outbox } = this.options;
    if (!outbox) return;
    const { entries, unreadable, unread } = outbox.load();
    for (const bad of unreadable) this.unreadable(bad.file, bad.reason, bad.removed);
    if (unread !== undefined)
      // One line for them all: a start short of file descriptors may fail every file.
      this.options.log.warn(
        { event: 'notify.unreadable', left: unread.count, files: unread.files, reason: unread.reason },
        `${unread.count === 1 ? `${unread.files[0]} in the notification outbox` : `${unread.count} files of the notification outbox`} could not be read now (${unread.reason}${unread.count > 1 ? ', the first' : ''}): left in place, not sent by this daemon; the next start reads ${unread.count === 1 ? 'it' : 'them'} again (check the filesystem and the daemon's open file limit)`,
      );
    // No later than any planned wait from now (waitLeft's bound): a due time further off (a clock set
    // back, a damaged entry) would be kept and written back as it is, and one past what a date holds made
    // the notify.abandoned line of a stop throw (new Date(due).toISOString()), ending the stop half-way.
    const latest = Date.now() + MAX_WAIT_MS;
    for (const target of entries.flatMap((entry) => entry.targets))
      if (target.due !== undefined && target.due > latest) target.due = latest;
    const resumed: UnderWay[] = [];
    for (const entry of entries) {
      try {
        resumed.push(...this.resumeEntry(entry, recordOf));
      } catch (error) {
        outbox.removeNow(entry.session);
        this.unreadable(`${entry.session}.json`, errorMessage(error), true);
      }
    }
    // Each on its schedule, the earliest first (the queue keeps the order); to one webhook, at least
    // RESUME_GAP_MS apart (start applies it, as each gets its place). The wall clock only reads the due
    // times kept on disk (waitLeft bounds what they leave); the waits themselves are steady.
    const now = performance.now();
    const wall = Date.now();
    const timed = resumed
      .map(
        (underWay): Waiting => ({
          ...underWay,
          notBefore: now + waitLeft(underWay.pending, wall),
          resumed: true,
        }),
      )
      .sort((a, b) => a.notBefore - b.notBefore);
    for (const waiting of timed) this.admit(waiting);
    for (const { notification } of timed) this.letGoOfRecord(notification);
  }

  /** The webhooks of an earlier daemon's entry to send again now (none: recovery tells the session). */
  private resumeEntry(
    entry: OutboxEntry,
    recordOf: (sessionId: string) => SessionRecord | undefined,
  ): UnderWay[] {
    const { outbox } = this.options;
    if (!outbox) return [];
    // The record as kept (its JSON text) is what is POSTed again, byte for byte; it must be this session's.
    const kept = entry.record === undefined ? undefined : sessionRecordSchema.parse(JSON.parse(entry.record));
    if (kept !== undefined && kept.id !== entry.session)
      throw new Error(`it holds session ${kept.id}'s record`);
    const record = kept ?? recordOf(entry.session);
    if (record?.outcome === undefined) {
      if (record !== undefined) {
        // Recovery records its outcome (prepare takes these delivery ids again).
        this.earlier.set(entry.session, entry);
        return [];
      }
      for (const target of entry.targets) this.givenUp(entry.session, target.delivery, 'its record is gone');
      outbox.removeNow(entry.session);
      return [];
    }
    if (kept === undefined && record.recordDir !== undefined && record.output === undefined) {
      // Stopped while its record was sealed (its output unpacked), before the outcome was published:
      // recovery completes the seal, writes the output summary into the record and publishes the outcome,
      // which is sent then, with these delivery ids (notify prepares it, taking them).
      this.earlier.set(entry.session, entry);
      return [];
    }
    // The webhooks prepare chose from: a URL configured twice, once for other outcomes only, must not
    // take the place of the one that wanted this outcome.
    const { outcome } = record;
    const targets = wantedWebhooks(this.options.targets(record), outcome);
    const notification: Notification = {
      session: entry.session,
      record: entry.record ?? JSON.stringify(record),
      pending: [],
      held: 0,
      stored: true,
      // Written by an earlier daemon with its record, or only before its outcome was published.
      recordStored: entry.record !== undefined,
    };
    for (const left of entry.targets) {
      // The same webhook again: its URL and which of those with that URL it is (an entry of an agentd
      // before `nth`: the first left). One taken already is not in the entry, so this is not the order.
      const at = targets.findIndex((webhook) => sameWebhook(left, webhook));
      const [found] = at === -1 ? [] : targets.splice(at, 1);
      const target = found?.target;
      if (target === undefined || left.made >= target.attempts) {
        this.givenUp(
          entry.session,
          left.delivery,
          target === undefined
            ? 'its webhook is no longer configured for this outcome'
            : `all ${target.attempts} attempt(s) were made (a POST a stop or a crash cut short counts)`,
        );
        continue;
      }
      notification.pending.push({ target, ...left, nth: found?.nth ?? 0 });
    }
    if (notification.pending.length === 0) {
      outbox.removeNow(entry.session);
      return [];
    }
    this.write(notification);
    return notification.pending.map((pending) => ({ notification, pending }));
  }

  private unreadable(file: string, reason: string, removed: boolean): void {
    this.options.log.warn(
      { event: 'notify.unreadable', file, reason },
      `${removed ? 'removed' : 'ignored'} ${file} in the notification outbox (${reason}): nothing is sent from it${removed ? '' : '; remove it'}`,
    );
  }

  /** A notification an earlier daemon left that is not sent: logged and counted as failed. */
  private givenUp(session: string, delivery: string, reason: string): void {
    this.options.metrics.notification('failed');
    this.options.log.warn(
      { event: 'notify.failed', session, delivery, reason },
      `a notification of session ${session} an earlier daemon did not deliver is given up: ${reason}`,
    );
  }

  /** Deliveries under way. */
  get underWay(): number {
    return this.pending.size;
  }

  /** Deliveries waiting for a place among those under way. */
  get waiting(): number {
    return this.queued;
  }

  /** Deliveries left in the outbox until there is room. */
  get deferred(): number {
    return this.deferredCount;
  }

  /**
   * Waits up to graceMs for the POSTs in flight, then stops every delivery: with an outbox, a next start
   * sends them again when their next attempt is due; without one they are not sent. One waiting to be
   * tried again does not hold the stop up: its next attempt is on disk. Those waiting for a place are
   * not started: their entries stay in the outbox as they are.
   */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    const { log, outbox } = this.options;
    const kept = outbox !== undefined;
    const waiting = this.queued;
    const deferred = this.deferredCount;
    // Those whose entry never reached the outbox (a state dir that took none of its writes) are lost.
    let lost = 0;
    for (const queue of this.queues.values())
      for (const { notification } of queue.values()) if (!notification.stored) lost += 1;
    for (const fifo of this.deferrals.values())
      for (const { waiting: left } of fifo.values()) if (!left.notification.stored) lost += 1;
    this.queues.clear();
    this.queued = 0;
    this.queuedChars = 0;
    this.deferrals.clear();
    this.deferredCount = 0;
    const lostNote =
      lost > 0
        ? `; but ${lost} of them never reached it (the state dir took none of their writes: see notify.unrecorded) and are lost`
        : '';
    const level = lost > 0 ? 'error' : 'warn';
    if (waiting > 0)
      log[level](
        {
          event: 'notify.abandoned',
          waiting,
          ...(deferred > 0 ? { deferred } : {}),
          ...(lost > 0 ? { lost } : {}),
        },
        kept
          ? `${waiting} notification(s) waiting for their turn${deferred > 0 ? ` (and ${deferred} left in the notification outbox until there was room)` : ''} were not sent when agentd stopped; they stay in the notification outbox and the next start sends them${lostNote}`
          : `${waiting} notification(s) waiting for their turn were not sent when agentd stopped; they are not sent again`,
      );
    else if (deferred > 0)
      log[level](
        { event: 'notify.abandoned', waiting, deferred, ...(lost > 0 ? { lost } : {}) },
        `${deferred} notification(s) left in the notification outbox until there was room were not sent when agentd stopped; they stay there and the next start sends them${lostNote}`,
      );
    // No POST starts once the stop has begun: those waiting (to try again, or for their first POST's
    // time) are stopped now, their next attempt on disk for the next start, rather than POSTing during
    // the grace to be cut short and counted.
    for (const actor of [...this.pending.keys()])
      if (!actor.getSnapshot().matches('posting')) this.abandon(actor);
    if (this.posting()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const actor of [...this.pending.keys()]) this.abandon(actor);
    this.pending.clear();
    this.underWayTo.clear();
  }

  /**
   * Stops one delivery at a stop: its entry written with the attempts made (a POST cut short counts),
   * for the next start; or, its last attempt cut short, given up now.
   */
  private abandon(actor: Actor<typeof deliveryMachine>): void {
    const underWay = this.pending.get(actor);
    if (underWay === undefined) return;
    const { notification, pending } = underWay;
    const { log, metrics, outbox } = this.options;
    const kept = outbox !== undefined;
    const snapshot = actor.getSnapshot();
    // A POST cut short counts as made: a daemon that keeps restarting still runs out of attempts. Its
    // next attempt stays when it was planned (when the POST went out, or failed). Written before the
    // line below says what becomes of it, which depends on whether the write took.
    pending.made = snapshot.context.attempt;
    const session = notification.session;
    const url = shownWebhookUrl(snapshot.context.url);
    if (pending.made >= pending.target.attempts) {
      // Its last POST was cut short: no attempt is left for a next start, which would only give it up.
      actor.stop();
      this.settle(notification, pending);
      metrics.notification('failed');
      log.error(
        {
          event: 'notify.failed',
          session,
          url,
          delivery: pending.delivery,
          attempts: pending.made,
          reason: 'its last attempt was cut short by the stop',
        },
        `could not notify ${url} of session ${session}: its last attempt (${pending.made} of ${pending.target.attempts}) was still under way when agentd stopped, and was cut short; it is not sent again (the receiver may have taken it: X-Agentd-Delivery ${pending.delivery})`,
      );
      return;
    }
    const written = this.write(notification);
    actor.stop();
    const context = {
      event: 'notify.abandoned',
      session,
      url,
      delivery: pending.delivery,
      attempts: snapshot.context.attempt,
      ...(pending.due === undefined ? {} : { due: new Date(pending.due).toISOString() }),
    };
    const stopped = `a notification of session ${session} to ${url} was still being delivered when agentd stopped`;
    if (!kept) log.warn(context, `${stopped}; it is not sent again`);
    else if (written)
      log.warn(context, `${stopped}; the next start sends it again when its next attempt is due`);
    else if (notification.stored)
      log.warn(
        { ...context, written: false },
        `${stopped}; its entry in the notification outbox could not be updated (see notify.unrecorded), so the next start sends it again from the one written earlier, which may not count the last attempt`,
      );
    else
      log.error(
        { ...context, written: false, lost: true },
        `${stopped}, and it is lost: the state dir took none of its entry's writes (see notify.unrecorded), so no next start sends it; tell ${url} of session ${session}'s outcome by hand if it matters (agentd show ${session} has its record)`,
      );
  }

  /** Whether a POST is in flight (a delivery waiting to try again is not). */
  private posting(): boolean {
    for (const actor of this.pending.keys()) if (actor.getSnapshot().matches('posting')) return true;
    return false;
  }

  /** A webhook is done with (taken, given up or dropped): its session's entry says so. */
  private settle(notification: Notification, pending: Pending): void {
    notification.pending = notification.pending.filter((p) => p !== pending);
    if (notification.pending.length === 0) this.options.outbox?.removeNow(notification.session);
    else this.write(notification);
  }

  /** Writes a session's entry now: whether the outbox took it (none: false). */
  private write(notification: Notification): boolean {
    const written = this.options.outbox?.writeNow(entryOf(notification)) ?? false;
    if (written) {
      notification.stored = true;
      if (notification.record !== undefined) notification.recordStored = true;
    }
    return written;
  }

  /**
   * Starts a delivery when there is a place for it and none to its webhook waits before it (in the queue
   * or in the outbox); else it waits its turn; with the queues full, or behind others to its webhook left
   * in the outbox, it is left in the outbox until there is room, or, past maxDeferred, dropped.
   */
  private admit(waiting: Waiting, fromOutbox = false): void {
    const { key } = waiting.pending;
    const ahead = this.queues.get(key);
    const full = this.pending.size >= this.maxPending();
    const webhookFull = (this.underWayTo.get(key) ?? 0) >= this.maxPendingPerWebhook();
    // Within one webhook, first come first started: those left in the outbox came first (but for the
    // one taken back from there, the first of them).
    const behindDeferred = !fromOutbox && this.deferrals.has(key);
    if (!full && !webhookFull && ahead === undefined && !behindDeferred) {
      waiting.notification.held += 1;
      this.start(waiting);
      return;
    }
    const chars = charsOf(waiting);
    // Behind those in the outbox it goes there too, unless that is full: sent out of turn, not dropped.
    if (this.queueHasRoom(chars) && !(behindDeferred && this.canDefer(waiting.notification))) {
      this.logWaiting(waiting, full, ahead === undefined);
      const queue = ahead ?? new Fifo<Waiting>();
      if (ahead === undefined) this.queues.set(key, queue);
      queue.push(waiting);
      this.queued += 1;
      this.queuedChars += chars;
      waiting.notification.held += 1;
      return;
    }
    this.drop(waiting, behindDeferred);
  }

  /** Whether one more delivery, its record text this long, may wait in the queue. */
  private queueHasRoom(chars: number): boolean {
    return (
      this.queued < (this.options.maxWaiting ?? MAX_WAITING) &&
      this.queuedChars + chars <= (this.options.maxWaitingChars ?? MAX_WAITING_CHARS)
    );
  }

  /**
   * Whether a delivery of this notification may be left in the outbox until there is room: there is
   * one, its entry there holds the record to read back, and fewer than MAX_DEFERRED are left there.
   */
  private canDefer(notification: Notification): boolean {
    return (
      this.options.outbox !== undefined &&
      notification.recordStored &&
      this.deferredCount < (this.options.maxDeferred ?? MAX_DEFERRED)
    );
  }

  /**
   * A `notify.waiting` line as deliveries to a webhook start to wait (none waited for it): all places
   * taken, at most once a minute; the webhook's own places taken, at most once a minute for each.
   */
  private logWaiting({ pending }: Waiting, full: boolean, firstToIt: boolean): void {
    const { log } = this.options;
    // Steady: a wall clock set back must not silence these for as long as it stepped.
    const now = performance.now();
    const most = this.options.maxWaiting ?? MAX_WAITING;
    if (!firstToIt) return;
    if (full) {
      if (now - this.waitingLoggedAt < WAITING_LOG_MS) return;
      this.waitingLoggedAt = now;
      log.warn(
        { event: 'notify.waiting', pending: this.pending.size },
        `${this.pending.size} notifications are under way, the most at once (a webhook slow or down?): more wait their turn, in order for each webhook, up to ${most}`,
      );
      return;
    }
    const last = this.webhookWaitingLoggedAt.get(pending.key) ?? Number.NEGATIVE_INFINITY;
    if (now - last < WAITING_LOG_MS) return;
    // Only the webhooks logged within the minute are kept.
    for (const [key, at] of this.webhookWaitingLoggedAt)
      if (now - at >= WAITING_LOG_MS) this.webhookWaitingLoggedAt.delete(key);
    this.webhookWaitingLoggedAt.set(pending.key, now);
    const url = shownWebhookUrl(pending.target.url);
    const toIt = this.underWayTo.get(pending.key) ?? 0;
    log.warn(
      { event: 'notify.waiting', pending: this.pending.size, url, webhookPending: toIt },
      `${toIt} notifications to ${url} are under way, the most to one webhook (slow or down?): more to it wait their turn, in order, up to ${most} waiting in all; those to other webhooks are not held up`,
    );
  }

  private maxPending(): number {
    return this.options.maxPending ?? MAX_PENDING;
  }

  private maxPendingPerWebhook(): number {
    return this.options.maxPendingPerWebhook ?? MAX_PENDING_PER_WEBHOOK;
  }

  /**
   * The queue is full too (or others to its webhook are in the outbox): left in the outbox until there
   * is room, or, past maxDeferred or when no entry there holds its record (a full or read-only state
   * dir), dropped.
   */
  private drop(waiting: Waiting, behindDeferred: boolean): void {
    const { notification, pending } = waiting;
    const { log, metrics, outbox } = this.options;
    const session = notification.session;
    const url = shownWebhookUrl(pending.target.url);
    const context = {
      event: 'notify.dropped',
      session,
      url,
      delivery: pending.delivery,
      pending: this.pending.size,
      waiting: this.queued,
    };
    const full = `${this.pending.size} notifications under way and ${this.queued} waiting, the most`;
    if (this.canDefer(notification)) {
      // Its entry stays as it is (a sibling's changes keep it: it stays in notification.pending).
      const ahead = this.deferrals.get(pending.key);
      const why = behindDeferred ? `${ahead?.length ?? 0} to ${url} there before it` : full;
      const fifo = ahead ?? new Fifo<Deferred>();
      if (ahead === undefined) this.deferrals.set(pending.key, fifo);
      fifo.push({ waiting, chars: charsOf(waiting) });
      this.deferredCount += 1;
      metrics.notification('deferred');
      log.warn(
        { ...context, kept: true, deferred: this.deferredCount },
        `notification of session ${session} to ${url} waits in the notification outbox (${why}): it is sent once there is room, in turn (a stop leaves it for the next start of agentd)`,
      );
      return;
    }
    metrics.notification('dropped');
    if (outbox !== undefined && !notification.recordStored) {
      // It could have waited there, but the record it would be read back with never reached the disk.
      log.error(
        { ...context, kept: false, lost: true },
        `notification of session ${session} to ${url} dropped (${full}): it cannot wait in the notification outbox, which holds no entry with its record (the state dir took none of its writes since the outcome was published: see notify.unrecorded), so this daemon does not send it${notification.stored ? ' (a next start may, from the entry written before the outcome was published, if that one is still there)' : ''}; tell ${url} of session ${session}'s outcome by hand if it matters (agentd show ${session} has its record), and free room in the state dir`,
      );
      this.settle(notification, pending);
      return;
    }
    log.warn(
      { ...context, kept: false },
      outbox === undefined
        ? `notification of session ${session} to ${url} dropped (${full}): it is not sent`
        : `notification of session ${session} to ${url} dropped (${full}, and ${this.deferredCount} left in the notification outbox until there is room, the most): it is not sent`,
    );
    this.settle(notification, pending);
  }

  /**
   * Takes back the deliveries left in the outbox while there is room for one: a place to start it at
   * once, or room in the queue. Within a webhook, first left first; the webhooks with some left take
   * turns, as in the queue (one whose next does not fit does not hold up the others). Its record is read
   * back from its entry when no other delivery of its session kept it in memory.
   */
  private pickUpDeferred(): void {
    while (!this.closing) {
      const next = takeTurn(this.deferrals, (key, head) => {
        const startsNow =
          this.pending.size < this.maxPending() &&
          (this.underWayTo.get(key) ?? 0) < this.maxPendingPerWebhook() &&
          !this.queues.has(key);
        return startsNow || this.queueHasRoom(head.chars);
      });
      if (next === undefined) return;
      this.deferredCount -= 1;
      const { notification, pending } = next.waiting;
      if (!this.readBack(notification, pending)) continue;
      this.options.log.info(
        {
          event: 'notify.picked_up',
          session: notification.session,
          url: shownWebhookUrl(pending.target.url),
          delivery: pending.delivery,
          deferred: this.deferredCount,
        },
        `the notification of session ${notification.session} left in the notification outbox goes to ${shownWebhookUrl(pending.target.url)} now that there is room (${this.deferredCount} more left there)`,
      );
      // Its schedule as planned when it was left there (steady: see Waiting.notBefore).
      this.admit(next.waiting, true);
      this.letGoOfRecord(notification);
    }
  }

  /**
   * Reads a deferred delivery's record back from its session's entry, when nothing kept it in memory;
   * false, with the delivery given up, when the entry is gone or not as written.
   */
  private readBack(notification: Notification, pending: Pending): boolean {
    const { outbox } = this.options;
    if (notification.record !== undefined) return true;
    let reason = 'there is no notification outbox';
    if (outbox !== undefined) {
      try {
        const entry = outbox.read(notification.session);
        if (entry.record === undefined) throw new Error('it holds no session record');
        if (!entry.targets.some((kept) => kept.delivery === pending.delivery))
          throw new Error(`it holds no delivery ${pending.delivery}`);
        notification.record = entry.record;
        return true;
      } catch (error) {
        reason = errorMessage(error);
      }
    }
    this.options.metrics.notification('failed');
    this.options.log.warn(
      {
        event: 'notify.failed',
        session: notification.session,
        url: shownWebhookUrl(pending.target.url),
        delivery: pending.delivery,
        reason,
      },
      `a notification of session ${notification.session} left in the notification outbox is given up: its entry there cannot be read back (${reason})`,
    );
    notification.pending = notification.pending.filter((p) => p !== pending);
    if (notification.pending.length === 0) outbox?.removeNow(notification.session);
    return false;
  }

  /**
   * Lets go of a session's record text once none of its deliveries waits in memory or is under way: those
   * left are in the outbox, whose entry holds it (see MAX_DEFERRED), and read it back from there. Kept
   * while no entry holding it reached the outbox (none is left there then: see canDefer).
   */
  private letGoOfRecord(notification: Notification): void {
    if (
      this.options.outbox === undefined ||
      !notification.recordStored ||
      notification.held > 0 ||
      notification.pending.length === 0
    )
      return;
    notification.record = undefined;
  }

  /**
   * Starts the deliveries waiting while there is a place (none once closing): the webhooks under their
   * own bound take turns, the one served going to the end; within one, first come first started. Then
   * those left in the outbox come back, as far as there is room.
   */
  private startWaiting(): void {
    const maxPending = this.maxPending();
    const maxPerWebhook = this.maxPendingPerWebhook();
    while (!this.closing && this.pending.size < maxPending) {
      const next = takeTurn(this.queues, (key) => (this.underWayTo.get(key) ?? 0) < maxPerWebhook);
      if (next === undefined) break;
      this.queued -= 1;
      this.queuedChars -= charsOf(next);
      this.start(next);
    }
    this.pickUpDeferred();
  }

  /** Starts one webhook's delivery: its first POST when due (a resumed one, spaced from the others). */
  private start({ notification, pending, notBefore, resumed }: Waiting): void {
    const now = performance.now();
    let at = Math.max(now, notBefore);
    if (resumed) {
      const last = this.resumedAt.get(pending.key);
      if (last !== undefined) at = Math.max(at, last + RESUME_GAP_MS);
      this.resumedAt.set(pending.key, at);
      const wait = Math.max(0, Math.round(at - now));
      this.options.log.info(
        {
          event: 'notify.resumed',
          session: notification.session,
          url: shownWebhookUrl(pending.target.url),
          delivery: pending.delivery,
          attempt: pending.made + 1,
          retryIn: wait,
        },
        `sending again a notification of session ${notification.session} an earlier daemon did not deliver (attempt ${pending.made + 1} of ${pending.target.attempts}) ${wait === 0 ? 'now' : `in ${formatDuration(wait)}`}`,
      );
    }
    this.deliver(notification, pending, at - now);
  }

  /** Runs one webhook's delivery machine, its first POST after waitMs. */
  private deliver(notification: Notification, pending: Pending, waitMs: number): void {
    const { log, metrics } = this.options;
    const { target, delivery } = pending;
    const session = notification.session;
    const url = shownWebhookUrl(target.url);
    const context = { event: 'notify', session, url, delivery };
    const body = notificationBodyOf(notification.record ?? '{}', delivery);
    /** The status of the answer that ended it at once (a 3xx, a 4xx but 408, 425 and 429). */
    let refusedWith: number | undefined;
    /** Where that answer redirected to, as shown (scheme and host only). */
    let redirectedTo: string | undefined;
    const logic = deliveryMachine.provide({
      actors: {
        post: fromPromise<void, { attempt: number; retryInMs: number }>(async ({ input, signal }) => {
          const key = await resolveSource('notify.secret', target.secret, this.options.env).catch(
            (error: unknown) => {
              throw Object.assign(new Error(errorMessage(error)), { failure: 'secret' });
            },
          );
          // Stopped (close) while the secret was read: nothing goes out, and the entry close settled stays.
          signal.throwIfAborted();
          // Read at each attempt: a key written into the file (or the environment) later is used then.
          if (key.byteLength === 0)
            throw Object.assign(
              new Error(
                `credential notify.secret: ${target.secret.raw} ${EMPTY_SECRET}; put the key there (it is read again at the next attempt)`,
              ),
              { failure: 'secret' },
            );
          // Counted as made before it goes out: a daemon killed during POSTs, again and again, still
          // runs out of attempts (a stop counts one it cut short too, in close), and its next start waits
          // as for a failed one, not POSTing again at once.
          pending.made = input.attempt;
          pending.due = Date.now() + input.retryInMs;
          this.write(notification);
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
        announceFailedAttempt: (_, { attempt, error, final, retryInMs }) => {
          metrics.notificationAttempt(failureOf(error));
          pending.made = attempt;
          if (!final) {
            // The wait as planned now (a Retry-After may have lengthened it): a next start keeps to it.
            pending.due = Date.now() + retryInMs;
            this.write(notification);
          }
          if (error instanceof WebhookError && error.permanent && error.status !== undefined) {
            // The delivery ends here (the machine's `refused`): trying again would get the same answer.
            refusedWith = error.status;
            redirectedTo = error.redirectTo;
            const redirect = error.failure === 'redirect';
            log.warn(
              {
                ...context,
                event: 'notify.attempt_failed',
                attempt,
                final: true,
                permanent: true,
                status: error.status,
                ...(redirect && error.redirectTo !== undefined ? { location: error.redirectTo } : {}),
                reason: errorMessage(error),
              },
              redirect
                ? `notification of session ${session} to ${url} answered ${error.status}, a redirect${error.redirectTo === undefined ? '' : ` to ${error.redirectTo}`} (attempt ${attempt}): not tried again, since agentd follows no redirect (a notification and its signature go only where notify: says); ${fixFor(error.status, error.redirectTo)}`
                : `notification of session ${session} to ${url} refused with ${error.status} (attempt ${attempt}): not tried again, since a ${error.status} answer says the request itself is wrong; ${fixFor(error.status)}`,
            );
            return;
          }
          log.warn(
            {
              ...context,
              event: 'notify.attempt_failed',
              attempt,
              final,
              reason: errorMessage(error),
              ...(final ? {} : { retryIn: retryInMs }),
            },
            `notification of session ${session} to ${url} failed (attempt ${attempt}): ${errorMessage(error)}${final ? '' : `; trying again in ${formatDuration(retryInMs)}`}`,
          );
        },
      },
    });
    const actor = createActor(logic, {
      input: {
        url: target.url,
        attempts: target.attempts,
        backoffMs: target.backoffMs,
        made: pending.made,
        waitMs,
      },
    });
    this.pending.set(actor, { notification, pending });
    this.underWayTo.set(pending.key, (this.underWayTo.get(pending.key) ?? 0) + 1);
    const ended = () => {
      this.pending.delete(actor);
      notification.held -= 1;
      const left = (this.underWayTo.get(pending.key) ?? 1) - 1;
      if (left > 0) this.underWayTo.set(pending.key, left);
      else this.underWayTo.delete(pending.key);
    };
    actor.subscribe({
      // A stop waits for POSTs in flight only: one that failed and now waits ends that wait, and is
      // stopped (out of its own notification: a microtask later) before its next POST can start.
      next: (snapshot) => {
        if (!this.closing) return;
        if (snapshot.matches('waiting')) queueMicrotask(() => this.abandon(actor));
        if (!this.posting()) this.idle?.();
      },
      complete: () => {
        ended();
        const snapshot = actor.getSnapshot();
        // Stopped by close: neither taken nor given up, so its entry stays for the next start.
        if (snapshot.status !== 'done') return;
        this.settle(notification, pending);
        if (snapshot.matches('delivered')) {
          metrics.notification('delivered');
          log.info(
            { ...context, event: 'notify.delivered', attempts: snapshot.context.attempt },
            `notified ${url} of session ${session}`,
          );
        } else {
          const { attempt, lastError, permanent } = snapshot.context;
          const refused = permanent === true && refusedWith !== undefined;
          metrics.notification('failed');
          log.error(
            {
              ...context,
              event: 'notify.failed',
              attempts: attempt,
              reason: lastError,
              ...(refused ? { permanent: true, status: refusedWith } : {}),
              ...(refused && redirectedTo !== undefined ? { location: redirectedTo } : {}),
            },
            `could not notify ${url} of session ${session} after ${attempt} attempt(s): ${lastError}${refused ? `; not tried again: ${fixFor(refusedWith ?? 400, redirectedTo)}` : ''}`,
          );
        }
        if (this.closing && !this.posting()) this.idle?.();
        // Its siblings left in the outbox may come back now, with the record still in memory.
        this.startWaiting();
        this.letGoOfRecord(notification);
      },
      error: (error) => {
        ended();
        this.settle(notification, pending);
        metrics.notification('failed');
        log.error({ ...context, event: 'notify.failed', err: error }, 'notification failed');
        if (this.closing && !this.posting()) this.idle?.();
        this.startWaiting();
        this.letGoOfRecord(notification);
      },
    });
    actor.start();
  }
}

/** What a waiting delivery counts against MAX_WAITING_CHARS: its session's record text. */
function charsOf({ notification }: Waiting): number {
  return notification.record?.length ?? 0;
}

/**
 * The next in turn of the webhooks taking turns (a map in turn order, each with a FIFO: the queues, the
 * deferrals): the first of the first webhook whose first may go now (`ready`), taken out, and that
 * webhook to the end of the turns, or gone with none left; none when no webhook's first may go. One
 * whose first may not go does not hold up the others.
 */
function takeTurn<T>(turns: Map<string, Fifo<T>>, ready: (key: string, first: T) => boolean): T | undefined {
  for (const [key, fifo] of turns) {
    const first = fifo.peek();
    if (first === undefined || !ready(key, first)) continue;
    fifo.shift();
    turns.delete(key);
    if (fifo.length > 0) turns.set(key, fifo);
    return first;
  }
  return undefined;
}

/**
 * How the daemon logs the outbox's failures (`notify.unrecorded`): once per session until its entry is
 * written again (NotifyOutbox tells only those), with the error's message, not its stack: a full state
 * dir fails every write of every notification, and each line would repeat the same few hundred bytes.
 */
export function outboxFailureLog(log: Logger): OutboxFailure {
  return (operation, error, session) => {
    // The error's message and code (StateDirError's errno, 'ENOSPC'); the outbox's own operation.
    const { reason, code } = errorFields(error);
    log.warn(
      { event: 'notify.unrecorded', session, operation, reason, ...(code === undefined ? {} : { code }) },
      operation.startsWith('remove')
        ? `${reason}: the notification of session ${session} is done with, but its entry stays in the notification outbox, so a next start may send it again (receivers drop repeats by ${DELIVERY_HEADER}); not said again for this session until the state dir takes its entry`
        : `${reason}: the notification of session ${session} is still sent by this daemon, but the notification outbox does not hold it as it is now: a stop or a crash before it is taken may lose it or cost an attempt; not said again for this session until the state dir takes its entry`,
    );
  };
}

/**
 * A first-in, first-out queue whose shift does not move every element (Array.prototype.shift does: the
 * queue may hold thousands).
 */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  /** Its items, first first. */
  *values(): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i] as T;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    // The slots taken out are let go once they are half of the array.
    if (this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

/**
 * What the operator should change for a webhook that refused a notification with this 4xx status (the
 * request itself was wrong, so only a change on one side or the other gets it taken), or redirected it
 * with this 3xx (to `redirectTo`, as shown).
 */
function fixFor(status: number, redirectTo?: string): string {
  if (status >= 300 && status < 400)
    return `if ${redirectTo === undefined ? 'the address it redirects to' : `the address on ${redirectTo} it redirects to`} is where notifications should go, set the webhook's url in notify: to that final address (the receiver's Location header has it in full); else check the url`;
  if (status === 401 || status === 403)
    return `check the webhook's secret in notify: (the receiver must check ${SIGNATURE_HEADER} with the same key) and any token its url carries`;
  if (status === 404 || status === 405 || status === 410)
    return `check the webhook's url in notify: (its host, path and any token it carries): nothing there takes POSTs`;
  if (status === 413)
    return 'the receiver takes no body this large (a session record is a few KB, tens with many input files): raise its limit';
  return `check the webhook's url and secret in notify:, and that the receiver takes agentd's ${NOTIFICATION_EVENT} POSTs (JSON, signed in ${SIGNATURE_HEADER})`;
}

function failureOf(error: unknown): WebhookFailure | 'secret' {
  if (error instanceof WebhookError) return error.failure;
  if ((error as { failure?: string }).failure === 'secret') return 'secret';
  return 'network';
}

/** A target with `outcomes:` hears only of those; one without, of every outcome. */
function wanted(target: NotifyTarget, outcome: Outcome): boolean {
  return target.outcomes === undefined || target.outcomes.includes(outcome);
}

/**
 * The webhooks that want the outcome, in the order configured, each with its URL's key and which of
 * those with that URL it is: how an outbox entry names the webhook it is kept for.
 */
function wantedWebhooks(
  targets: readonly NotifyTarget[],
  outcome: Outcome,
): { target: NotifyTarget; key: string; nth: number }[] {
  const seen = new Map<string, number>();
  return targets
    .filter((target) => wanted(target, outcome))
    .map((target) => {
      const key = webhookKey(target.url);
      const nth = seen.get(key) ?? 0;
      seen.set(key, nth + 1);
      return { target, key, nth };
    });
}

/** An outbox entry's webhook is this one: its URL, and which of those (any, for an agentd before `nth`). */
function sameWebhook(
  kept: { key: string; nth?: number | undefined },
  webhook: { key: string; nth: number },
): boolean {
  return kept.key === webhook.key && (kept.nth === undefined || kept.nth === webhook.nth);
}

/**
 * How long before a webhook's next POST, from now: until its `due`, at most MAX_WAIT_MS (a clock set
 * back, or an entry not written by this agentd, does not hold it longer than any planned wait); a first
 * POST at once; an entry of an agentd before `due` with POSTs made, the wait after its last one.
 */
function waitLeft(pending: Pending, now: number): number {
  if (pending.due !== undefined) return Math.min(MAX_WAIT_MS, Math.max(0, pending.due - now));
  if (pending.made === 0) return 0;
  return backoffWaitMs(pending.target.backoffMs, pending.made, Math.random());
}

function entryOf(notification: Notification): OutboxEntry {
  return {
    version: 1,
    session: notification.session,
    ...(notification.record === undefined ? {} : { record: notification.record }),
    targets: notification.pending.map(({ key, delivery, made, nth, due }) => ({
      key,
      delivery,
      made,
      nth,
      ...(due === undefined ? {} : { due }),
    })),
  };
}
