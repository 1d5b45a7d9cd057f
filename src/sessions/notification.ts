import { createHash, createHmac } from 'node:crypto';

/**
 * An outcome notification (`notify:`): a POST of the session record, signed with HMAC-SHA256 like a
 * forge's webhook, so the receiver can check it came from this daemon and was not changed.
 */

/** The signature of the body: `sha256=` and the hex HMAC-SHA256 of the exact body bytes. */
export const SIGNATURE_HEADER = 'X-Agentd-Signature-256';
/** The same for every attempt of one notification: a receiver can drop repeats. */
export const DELIVERY_HEADER = 'X-Agentd-Delivery';
export const EVENT_HEADER = 'X-Agentd-Event';
export const NOTIFICATION_EVENT = 'session.finished';

/**
 * What is POSTed: the event, the delivery id and the session record (which never holds a secret), from
 * the record's JSON text as the outbox keeps it: a notification sent again is the same bytes (a record
 * parsed again may have its keys in another order).
 */
export function notificationBodyOf(recordJson: string, delivery: string): string {
  return `{"event":${JSON.stringify(NOTIFICATION_EVENT)},"delivery":${JSON.stringify(delivery)},"session":${recordJson}}`;
}

/**
 * Why a webhook's secret that resolves to nothing (an empty file, a variable set to '') signs nothing:
 * anyone can make a signature keyed with no bytes, so a receiver checking it would take a forged
 * notification. Read after the source (`env:HOOK_KEY resolves to ...`) by the notifier and doctor.
 */
export const EMPTY_SECRET =
  'resolves to an empty value: a signature keyed with nothing can be made by anyone, so no notification is sent to this webhook';

export function signature(key: Uint8Array, body: string): string {
  return `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
}

/**
 * How the outbox names a webhook (src/adapters/notify-outbox.ts): a hash of its URL, which may hold a
 * key; a next start finds the webhook by it in the configuration it then has.
 */
export function webhookKey(url: string): string {
  return createHash('sha256').update(url).digest('hex');
}
