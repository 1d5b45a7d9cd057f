import type { SessionRecord } from '../sessions/records.js';
import {
  DaemonClient,
  DaemonUnreachable,
  type Reply,
  refusesHeartbeat,
  SILENCE_MS,
  silenceMessage,
  steadyMs,
} from './client.js';
import { resolveSocketPath } from './socket-path.js';

/** How long a client waits for a daemon that went away (a restart) before it gives up. */
export const RECONNECT_MS = 60_000;
const RETRY_EVERY_MS = 500;

export type WaitResult =
  | { kind: 'outcome'; record: SessionRecord }
  /** The daemon answered with an error (unknown_session, ...). */
  | { kind: 'error'; reply: Extract<Reply, { type: 'error' }> }
  /** The caller's deadline passed first; the session goes on. */
  | { kind: 'timeout' }
  /** No daemon answered within RECONNECT_MS; the session may go on. */
  | { kind: 'lost'; reason: string };

export interface WaitOptions {
  socket?: string | undefined;
  sessionId: string;
  /**
   * When to stop waiting, by the steady clock (a steadyMs() time, not the wall clock, which may be
   * set back meanwhile); none: until the outcome.
   */
  deadline?: number | undefined;
  /** A connection to use first (trigger's own, when it was lost the wait reconnects). */
  client?: DaemonClient | undefined;
  /** Called when the connection is lost and the wait looks for the daemon again. */
  onLost?: () => void;
  reconnectMs?: number;
  /** How long the daemon may send nothing, not even a heartbeat, before it is taken for hung (SILENCE_MS). */
  silenceMs?: number;
}

/**
 * Waits for a session's outcome with the `wait` request. A daemon that goes away (a restart, which
 * adopts the session) is waited for, up to RECONNECT_MS at a time; a session's record outlives the
 * daemon, so the wait resumes where it was. The wait asks for heartbeats: a daemon that sends nothing for
 * silenceMs is hung, and the wait ends with a `no_answer` error instead of lasting for ever.
 */
export async function waitForSession(options: WaitOptions): Promise<WaitResult> {
  const { sessionId } = options;
  const path = resolveSocketPath(options.socket);
  const reconnectMs = options.reconnectMs ?? RECONNECT_MS;
  let client = options.client;
  let lostSince: number | undefined;
  let connectedAt = steadyMs();
  let reason = 'the daemon closed the connection';
  try {
    for (;;) {
      if (options.deadline !== undefined && steadyMs() >= options.deadline) return { kind: 'timeout' };
      if (!client) {
        try {
          client = await DaemonClient.connect(path);
          connectedAt = steadyMs();
        } catch (error) {
          if (!(error instanceof DaemonUnreachable)) throw error;
          reason = error.message.split('\n')[0] ?? error.message;
          if (lostSince !== undefined && steadyMs() - lostSince >= reconnectMs)
            return { kind: 'lost', reason };
          lostSince ??= steadyMs();
          await sleep(RETRY_EVERY_MS);
          continue;
        }
      }
      const reply = await waitOn(client, options);
      if (reply === 'timeout') return { kind: 'timeout' };
      // The client checked it against its table (reply-check.ts): a bare {"type":"outcome"}, or one of an
      // outcome this agentd does not know, came as a `bad_reply` error, which ends the wait below.
      if (reply?.type === 'outcome') {
        if (reply.record.outcome !== undefined) return { kind: 'outcome', record: reply.record };
        // The protocol allows it (`logs` of a running session), but `wait` is answered only at the end:
        // not a lost connection to look for the daemon again for a minute, but a reply to refuse.
        return {
          kind: 'error',
          reply: {
            type: 'error',
            code: 'bad_reply',
            message: `the daemon sent an outcome reply whose record has no outcome (session ${sessionId}, phase ${reply.record.phase}); is something other than agentd listening on the socket?`,
          },
        };
      }
      const retry =
        reply === undefined || (reply.type === 'error' && 'retryable' in reply && reply.retryable);
      if (reply?.type === 'error' && !retry) return { kind: 'error', reply };
      // Gone (or busy): look for the daemon again.
      client.close();
      client = undefined;
      // A connection that held for a while was a daemon that came back: a new loss gets the full time.
      if (lostSince === undefined || steadyMs() - connectedAt > 5 * RETRY_EVERY_MS) {
        lostSince = steadyMs();
        options.onLost?.();
      } else if (steadyMs() - lostSince >= reconnectMs) {
        return { kind: 'lost', reason };
      }
      await sleep(RETRY_EVERY_MS);
    }
  } finally {
    client?.close();
  }
}

/** Sends `wait` on the connection and reads its answer: the outcome, an error, the end, or the deadline. */
async function waitOn(client: DaemonClient, options: WaitOptions): Promise<Reply | undefined | 'timeout'> {
  const { sessionId } = options;
  const silenceMs = options.silenceMs ?? SILENCE_MS;
  client.send({ type: 'wait', sessionId, heartbeat: true });
  client.expectWithin(silenceMs, () =>
    silenceMessage(
      silenceMs,
      `session ${sessionId} may still be running: \`agentd wait ${sessionId}\` once the daemon answers`,
    ),
  );
  for (;;) {
    const reply = await (options.deadline === undefined
      ? client.next()
      : client.nextWithin(Math.max(1, options.deadline - steadyMs())));
    if (reply !== 'timeout' && reply?.type === 'heartbeat') continue;
    if (reply !== 'timeout' && refusesHeartbeat(reply)) {
      // A daemon older than heartbeats: it is waited for without them, as before.
      client.expectWithin(undefined);
      client.send({ type: 'wait', sessionId });
      continue;
    }
    return reply;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
