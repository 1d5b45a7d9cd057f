import type { ContainerSummary } from '../adapters/podman.js';
import { LOCAL_HOST } from '../config/hosts.js';
import { LABEL_SESSION, LIVE_CONTAINER_STATES } from '../constants.js';
import { durationSetting } from '../duration.js';
import type { SettledSession } from '../machines/host.machine.js';
import type { SessionRecord } from '../sessions/records.js';
import { abandoned, requestOf } from './recovery.js';

/** The unfinished sessions of an earlier daemon, sorted by where they are recovered. */
export interface RecordsByHost {
  /** Never started (queued, or resolving credentials): they wait in the daemon's queue, wherever they would have run. */
  queued: SessionRecord[];
  /** Started on a configured host: recovered when that host is reconciled. */
  byHost: Map<string, SessionRecord[]>;
  /** Started on a host that is no longer configured: settled at once. */
  lost: SettledSession[];
}

/**
 * Sorts the unfinished records at start. A record without a host is from before hosts existed: it ran
 * on the local Podman, which is the `local` host.
 */
export function sortByHost(unfinished: readonly SessionRecord[], hosts: readonly string[]): RecordsByHost {
  const sorted: RecordsByHost = { queued: [], byHost: new Map(), lost: [] };
  for (const record of unfinished) {
    // One whose credentials were being resolved never had a container (its record says creating first):
    // it runs again as a queued one does.
    if (record.phase === 'queued' || record.phase === 'resolving') {
      sorted.queued.push(record);
      continue;
    }
    const host = record.host ?? LOCAL_HOST;
    if (hosts.includes(host)) {
      const onHost = sorted.byHost.get(host);
      if (onHost) onHost.push(record);
      else sorted.byHost.set(host, [record]);
      continue;
    }
    sorted.lost.push(
      abandon(
        record,
        `its host ${host} is no longer configured, so what became of it is unknown; its container, if it still exists, is left on that host`,
      ),
    );
  }
  return sorted;
}

/**
 * Sessions of an earlier daemon that wait for a host which was down at start and stayed down for the
 * grace period: abandoned (if the host comes back, its reconciliation removes their containers).
 */
export function abandonedWaiting(
  records: readonly SessionRecord[],
  host: string,
  graceMs: number,
  /** Set when the host's actor failed: why (the host was not waited for until the grace ended). */
  failure?: string,
): SettledSession[] {
  return records.map((record) =>
    abandon(
      record,
      failure === undefined
        ? `the daemon restarted while it was ${record.phase}, and its host ${host} did not answer within ${durationSetting(graceMs)} (daemon.host_down_grace); its container, if it still runs, is removed when the host is reconciled`
        : `the daemon restarted while it was ${record.phase}, and the daemon's supervision of its host ${host} failed before the host was reconciled (${failure}); its container, if it still runs, is removed when the host is reconciled`,
    ),
  );
}

function abandon(record: SessionRecord, message: string): SettledSession {
  return { request: requestOf(record), outcome: abandoned(record, message) };
}

/**
 * Running containers that nobody will supervise, so reconciliation stops them: of sessions that are over
 * (settled while their host was away, say), and of sessions that could not have run there and were not
 * rebuilt (see recordsFromLabels). `planned` are the sessions recovery decides about; the containers of
 * sessions this daemon supervises are not among `containers` (see reconcile).
 */
export function staleContainers(
  containers: readonly ContainerSummary[],
  planned: ReadonlySet<string>,
): string[] {
  return containers
    .filter((c) => {
      const session = c.Labels?.[LABEL_SESSION];
      return LIVE_CONTAINER_STATES.has(c.State) && session !== undefined && !planned.has(session);
    })
    .map((c) => c.Names[0] ?? c.Id);
}

/**
 * Dead containers reconciliation kept for the plan (their records said creating or cloning) that the
 * plan did not adopt: too late, their agent gone, never started. Removed with the stale ones.
 */
export function keptDeadContainers(
  containers: readonly ContainerSummary[],
  kept: ReadonlySet<string>,
  adopted: ReadonlySet<string>,
): string[] {
  return containers
    .filter((c) => {
      const session = c.Labels?.[LABEL_SESSION] ?? '';
      return kept.has(session) && !adopted.has(session) && !LIVE_CONTAINER_STATES.has(c.State);
    })
    .map((c) => c.Names[0] ?? c.Id);
}
