import type { PodmanCall } from '../adapters/podman-observed.js';
import type { ReconcileResult } from '../machines/daemon.machine.js';
import type { BusEvent } from '../sessions/session-bus.js';

export type FiringResult = 'triggered' | 'skipped' | 'missed' | 'rejected';
export type DroppedReason = 'withheld' | 'log_full';
/** How a session of an earlier daemon was recovered (agentd_recovered_sessions_total). */
export type RecoveredHow = 'requeued' | 'adopted' | 'settled';
/**
 * What became of an outcome notification: `deferred` waits in the outbox (too many waiting) until there
 * is room, or for the next start, and is counted again when it is settled; `dropped` is not sent at all.
 */
export type NotificationResult = 'delivered' | 'failed' | 'deferred' | 'dropped';

/**
 * What the daemon counts, without the Prometheus registry behind it: the registry (prom-client, about
 * 11 MB of RSS) is loaded only when `daemon.http` serves it (metrics.ts); otherwise nothing reads the
 * counts and `noMetrics` drops them. `daemon.http` waits for a restart, so the choice holds for the
 * daemon's whole life.
 */
export interface MetricsRecorder {
  session(event: BusEvent): void;
  acceptedSession(sessionId: string): void;
  rejectedTrigger(code: string): void;
  droppedOutput(sessionId: string, lines: number, reason: DroppedReason): void;
  podmanCall(call: PodmanCall, host: string): void;
  /** The start's reconciliation: what it removed, and the sessions it recovered. */
  reconciled(result: ReconcileResult): void;
  /** Sessions of an earlier daemon recovered later: by a host that was down at start, once it is back. */
  recovered(how: RecoveredHow, count: number): void;
  firing(agent: string, result: FiringResult): void;
  /** A failed host or schedule started again after its backoff (agentd_host_restarts_total, agentd_schedule_restarts_total). */
  restarted(kind: 'host' | 'schedule', name: string): void;
  notification(result: NotificationResult): void;
  notificationAttempt(result: string): void;
}

/** The recorder of a daemon without the HTTP API: nobody can scrape, so nothing is counted. */
export const noMetrics: MetricsRecorder = {
  session() {},
  acceptedSession() {},
  rejectedTrigger() {},
  droppedOutput() {},
  podmanCall() {},
  reconciled() {},
  recovered() {},
  firing() {},
  restarted() {},
  notification() {},
  notificationAttempt() {},
};

/** The gauges' view of the records that wait to be sealed (see RecordKeeper.waitingToSeal). */
export function unsealedGauge(
  waiting: { count: number; oldest: { finishedAt?: string } | undefined },
  now: number,
): { count: number; oldestSeconds: number } {
  const ended = waiting.oldest?.finishedAt === undefined ? Number.NaN : Date.parse(waiting.oldest.finishedAt);
  return {
    count: waiting.count,
    oldestSeconds: waiting.count === 0 || Number.isNaN(ended) ? 0 : Math.max(0, (now - ended) / 1000),
  };
}
