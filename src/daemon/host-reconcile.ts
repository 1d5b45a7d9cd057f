import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { markNothingToSearch, wasSearched } from '../adapters/output-archive.js';
import type { PodmanPort } from '../adapters/podman.js';
import type { WorkPaths } from '../adapters/session-files.js';
import { hostAllowed } from '../config/hosts.js';
import type { AgentConfig, HostConfig } from '../config/types.js';
import { LABEL_SECRETS, LABEL_SESSION, LIVE_CONTAINER_STATES } from '../constants.js';
import { errorFields, errorMessage } from '../errors.js';
import type { HostReconciled, SettledSession } from '../machines/host.machine.js';
import { readContainerValues, screenOutputArchive } from '../runner/actors.js';
import type { SessionRecord } from '../sessions/records.js';
import { keptDeadContainers, staleContainers } from './host-recovery.js';
import { reconcile } from './reconcile.js';
import { planRecovery, recordsFromLabels } from './recovery.js';

/**
 * Records rebuilt from one host's labels at most (four per slot, at least this many): a daemon that lost
 * its records had no more sessions there than its slots, and their dead containers are removed each time.
 */
const REBUILT_RECORDS_MIN = 64;

/** What reconciling one host needs of the daemon. */
export interface HostReconcileDeps {
  instanceId: string;
  log: Logger;
  ports: (host: string) => PodmanPort;
  /** The started sessions of an earlier daemon that wait for their host's reconciliation, by host. */
  waiting: Map<string, SessionRecord[]>;
  /** Sessions with a live session actor on the host: reconciliation leaves their objects alone. */
  supervisedOn: (host: string) => ReadonlySet<string>;
  /** The agents as configured now. */
  agents: () => readonly AgentConfig[];
  hosts: readonly HostConfig[];
  journal: {
    used(sessionId: string): boolean;
    rebuilt(record: SessionRecord): void;
    /** Its record says queued again, with no start and no host. */
    requeued(sessionId: string): void;
  };
  files: { paths(sessionId: string): WorkPaths };
  /**
   * Records the outcomes of sessions settled from what their host holds (an exited container's exit
   * code), before the containers are removed; resolves once they are recorded (a failure is logged).
   */
  record: (sessions: readonly SettledSession[]) => Promise<void>;
  /** How long reconciliation waits for `secret create` commands a killed daemon left running (see reconcile). */
  leftCreatesMs?: number;
  /** Removes the files of bounded caches whose volume is gone (housekeeping: never throws but on abort). */
  pruneCacheImages: (host: string, signal: AbortSignal) => Promise<void>;
}

/** Reconciles one host and plans the recovery of its sessions that nobody supervises. */
export async function reconcileHost(
  deps: HostReconcileDeps,
  host: string,
  signal: AbortSignal,
): Promise<HostReconciled> {
  const { instanceId, log, ports, waiting, journal, files, hosts } = deps;
  const supervised = deps.supervisedOn(host);
  const engine = { remote: ports(host).remote === true };
  // The dead container of every session that waits for this host stays until the plan below has said
  // what became of it, and what it says is recorded: one whose record says creating, cloning or running
  // may have run its command, or printed, since (its log is read: adopted); the values one torn down
  // with its outcome decided was given are read back from it to search its output archive; and the exit
  // code of the others is their outcome. Removed first, a try that failed after (a host that stopped
  // answering, its actor failed) left the next one only "its container is gone": `abandoned`.
  const keepDead = new Set((waiting.get(host) ?? []).map((r) => r.id));
  const { summary, containers } = await reconcile(ports(host), instanceId, log, signal, {
    host,
    supervised,
    keepDead,
    ...(deps.leftCreatesMs === undefined ? {} : { leftCreatesMs: deps.leftCreatesMs }),
  });
  if (supervised.size === 0) await deps.pruneCacheImages(host, signal);
  // A container without a readable record still belongs to a session: rebuild it from the labels, if
  // it could have run there (a remote host's answer is not to be trusted).
  const agents = deps.agents();
  const where = hosts.find((h) => h.name === host);
  const slots = where?.maxSessions ?? 1;
  const orphans = recordsFromLabels(containers, journal, {
    allowed: (name) => {
      const agent = agents.find((a) => a.name === name);
      // An agent no longer configured: its session is settled `abandoned`, its container stopped.
      return agent === undefined || (where !== undefined && hostAllowed(agent, where));
    },
    maxLive: slots,
    maxRecords: Math.max(REBUILT_RECORDS_MIN, 4 * slots),
  }).map((record) => ({ ...record, host }));
  for (const record of orphans) {
    journal.rebuilt(record);
    log.warn(
      { event: 'daemon.record_rebuilt', session: record.id, container: record.container, host },
      `session ${record.id} had no readable record; rebuilt it from the labels of container ${record.container}`,
    );
  }
  const records = [...(waiting.get(host) ?? []), ...orphans];
  // Rebuilt, their ids are used: should what follows fail, the next try plans them with the waiting.
  if (orphans.length > 0) waiting.set(host, records);
  const { remove, ...recovery } = planRecovery(records, containers, agents, Date.now(), engine);
  // A session settled from its exited container's exit code left its output archive unsearched; one
  // given no secret (its label says) has no value to search for, and keeps it. Any other is withheld.
  for (const { request } of recovery.finished) {
    const container = containers.find((c) => c.Labels?.[LABEL_SESSION] === request.sessionId);
    if (container === undefined) continue;
    const paths = files.paths(request.sessionId);
    if (container.Labels?.[LABEL_SECRETS] === '0') {
      markNothingToSearch(paths.archive, paths.searched);
      continue;
    }
    // One whose daemon died while its teardown searched the archive (a large one takes seconds): its
    // exited container still holds the values it was given, so the search is made now, as it would
    // have been, instead of withholding the whole output for want of it.
    if (engine.remote || LIVE_CONTAINER_STATES.has(container.State)) continue;
    if (
      !existsSync(paths.archive) ||
      existsSync(paths.withheld) ||
      wasSearched(paths.archive, paths.searched)
    )
      continue;
    const name = container.Names[0] ?? container.Id;
    try {
      const values = await readContainerValues(ports(host), name, signal);
      await screenOutputArchive({ ...paths, values }, signal);
      log.info(
        { event: 'daemon.output_searched', session: request.sessionId, container: name, host },
        `searched the output archive of session ${request.sessionId}, which its teardown had left unsearched, with the values read back from its container ${name}`,
      );
    } catch (error) {
      // Unmarked, the seal withholds it, as before.
      if (signal.aborted) throw error;
      log.warn(
        {
          event: 'daemon.output_unsearched',
          session: request.sessionId,
          container: name,
          host,
          ...errorFields(error),
        },
        `could not search the output archive of session ${request.sessionId} left unsearched: ${errorMessage(error)}; it is withheld`,
      );
    }
  }
  // What the plan settled is recorded before any container is removed, and waits no more: neither a
  // next try nor the failure of the host's actor (abandonWaiting) settles it a second time.
  const settled = new Set(recovery.finished.map((s) => s.request.sessionId));
  const recording = deps.record(recovery.finished);
  waiting.set(
    host,
    records.filter((r) => !settled.has(r.id)),
  );
  await recording;
  if (signal.aborted) throw signal.reason;
  // Running containers that nobody will supervise (their agent is gone, their session is over or could
  // not have run there) stop now.
  const stale = staleContainers(containers, new Set(records.map((r) => r.id)));
  const adopted = new Set(recovery.adopted.map((a) => a.request.sessionId));
  const keptDead = keptDeadContainers(containers, keepDead, adopted);
  await ports(host).removeContainers([...remove, ...stale, ...keptDead], signal);
  if (keptDead.length > 0) {
    log.info(
      { event: 'daemon.recovery_removed', host, containers: keptDead },
      `removed ${keptDead.length} dead container(s) of sessions settled without adoption, or run again since their container never started`,
    );
  }
  // Those whose container never started run again: their container is gone now (keptDead), and their
  // records say queued, so a daemon that stops before it runs them leaves them to the next start.
  for (const { request } of recovery.queued) journal.requeued(request.sessionId);
  waiting.delete(host);
  return {
    // The kept ones removed after the plan count with the rest (agentd_reconcile_removed_total).
    summary: { ...summary, removedContainers: summary.removedContainers + keptDead.length },
    adopted: recovery.adopted.map((session) => ({ ...session, host })),
    finished: recovery.finished.map((s) => ({ ...s, recorded: true as const })),
    queued: recovery.queued,
  };
}
