import type { Writable } from 'node:stream';
import type { SessionRecord } from '../sessions/records.js';
import {
  DaemonClient,
  DaemonUnreachable,
  type Reply,
  refusesHeartbeat,
  SILENCE_MS,
  silenceMessage,
} from './client.js';
import { RECONNECT_MS } from './session-wait.js';
import { resolveSocketPath } from './socket-path.js';

const RETRY_EVERY_MS = 500;

export type OutputReply = Extract<Reply, { type: 'output' }>;

export type FollowResult =
  | { kind: 'outcome'; record: SessionRecord }
  /** The daemon answered with an error (unknown_session, ...). */
  | { kind: 'error'; reply: Extract<Reply, { type: 'error' }> }
  /** The daemon closed the connection because this client stopped reading; the session goes on. */
  | { kind: 'stalled' }
  /** No daemon answered within the reconnect time; the session may go on. */
  | { kind: 'lost'; reason: string }
  /** The caller gave up (`until` resolved). */
  | { kind: 'stopped' };

export interface FollowOptions {
  socket?: string | undefined;
  sessionId: string;
  /** The last line already shown: the output resumes after it (0: from the first). */
  afterSeq: number;
  /** A connection to use first (the follow sends its `logs` request on it); when it is lost, the follow reconnects. */
  client?: DaemonClient;
  /** Each line of output (and each marker for lines not sent), in order, each once. */
  onOutput: (reply: OutputReply) => void;
  /** The connection was lost; the follow looks for the daemon again. */
  onLost?: () => void;
  /** A daemon answers again; the output goes on after `afterSeq`. */
  onResumed?: (afterSeq: number) => void;
  /** Stops the follow when it resolves (a second Ctrl-C, a reader that went away). */
  until?: Promise<unknown>;
  reconnectMs?: number;
  /** Where onOutput writes: while one of them is full, the daemon is not read (see DaemonClient.paceBy). */
  pace?: readonly Writable[];
  /** How long the daemon may send nothing, not even a heartbeat, before it is taken for hung (SILENCE_MS). */
  silenceMs?: number;
}

/**
 * Follows a session's output to its outcome (`logs --follow` after a sequence number). A daemon that
 * goes away (a restart, or a crash: the next start adopts the session) is waited for, up to
 * RECONNECT_MS at a time, and the output resumes after the last line shown: no line twice, and lines
 * the daemon no longer has come as one `skipped` marker. A daemon that stays connected and sends nothing,
 * not even its heartbeat, for silenceMs is hung: the follow ends with a `no_answer` error.
 */
export async function followSession(options: FollowOptions): Promise<FollowResult> {
  const path = resolveSocketPath(options.socket);
  const reconnectMs = options.reconnectMs ?? RECONNECT_MS;
  let client = options.client;
  let afterSeq = options.afterSeq;
  let lostSince: number | undefined;
  /** When the current connection was made, and whether it brought anything: one that did not is no return. */
  let connectedAt = performance.now();
  let answered = false;
  /** onLost was said and onResumed not yet. */
  let saidLost = false;
  let reason = 'the daemon closed the connection';
  let stop = false;
  // Closing the connection wakes the read that waits on it. Not a race of every read against `until`:
  // each race leaves a reaction on `until`, held (with the reply it carried) until the follow ends.
  void options.until?.then(() => {
    stop = true;
    client?.close();
  });
  const silenceMs = options.silenceMs ?? SILENCE_MS;
  const request = (heartbeat: boolean) => ({
    type: 'logs' as const,
    sessionId: options.sessionId,
    follow: true,
    ...(afterSeq > 0 ? { after: afterSeq } : {}),
    ...(heartbeat ? { heartbeat: true } : {}),
  });
  try {
    for (;;) {
      if (stop) return { kind: 'stopped' };
      if (!client) {
        try {
          client = await DaemonClient.connect(path);
        } catch (error) {
          if (!(error instanceof DaemonUnreachable)) throw error;
          reason = error.message.split('\n')[0] ?? error.message;
          lostSince ??= performance.now();
          // A daemon that answers again after this is said to be back.
          saidLost = true;
          if (performance.now() - lostSince >= reconnectMs) return { kind: 'lost', reason };
          await sleep(RETRY_EVERY_MS);
          continue;
        }
        connectedAt = performance.now();
        answered = false;
        if (saidLost) options.onResumed?.(afterSeq);
        saidLost = false;
      }
      client.send(request(true));
      client.paceBy(options.pace ?? []);
      client.expectWithin(silenceMs, () =>
        silenceMessage(
          silenceMs,
          `session ${options.sessionId} may still be running: \`agentd logs ${options.sessionId} --follow --after ${afterSeq}\` or \`agentd wait ${options.sessionId}\` once the daemon answers`,
        ),
      );
      let closing = false;
      for (;;) {
        if (stop) return { kind: 'stopped' };
        const reply = await client.next();
        if (stop) return { kind: 'stopped' };
        if (reply === undefined) break;
        if (refusesHeartbeat(reply)) {
          // A daemon older than heartbeats: followed without them, as before.
          client.expectWithin(undefined);
          client.send(request(false));
          continue;
        }
        if (reply.type !== 'error') answered = true;
        if (reply.type === 'heartbeat') continue;
        if (reply.type === 'output') {
          if (typeof reply.seq === 'number') {
            // A line shown already (a daemon that came back may send it again) is not shown twice.
            if (reply.seq <= afterSeq) continue;
            afterSeq = reply.seq;
          } else if (reply.skipped) {
            afterSeq = Math.max(afterSeq, reply.skipped.toSeq);
          }
          options.onOutput(reply);
        } else if (reply.type === 'outcome' && reply.record.outcome !== undefined) {
          return { kind: 'outcome', record: reply.record };
        } else if (reply.type === 'closing') {
          closing = true;
        } else if (reply.type === 'error') {
          if (!('retryable' in reply && reply.retryable)) return { kind: 'error', reply };
          break;
        }
      }
      client.close();
      client = undefined;
      if (closing) return { kind: 'stalled' };
      if (stop) return { kind: 'stopped' };
      // A connection that answered, or held a while, was a daemon that came back: a new loss gets the full
      // time; one that a daemon (or something else on its socket) only took and closed does not.
      if (lostSince === undefined || answered || performance.now() - connectedAt > 5 * RETRY_EVERY_MS) {
        lostSince = performance.now();
        options.onLost?.();
        saidLost = true;
      } else if (performance.now() - lostSince >= reconnectMs) {
        return { kind: 'lost', reason };
      }
      await sleep(RETRY_EVERY_MS);
    }
  } finally {
    client?.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
