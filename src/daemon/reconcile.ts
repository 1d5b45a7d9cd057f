import type { Logger } from 'pino';
import type { ContainerSummary, PodmanPort } from '../adapters/podman.js';
import { settleLeftSecretCreates } from '../adapters/secret-writers.js';
import { AGENT_NAME_RE } from '../config/schema.js';
import {
  AGENT_NAME_MAX,
  LABEL_AGENT,
  LABEL_HOST,
  LABEL_INSTANCE,
  LABEL_SESSION,
  LIVE_CONTAINER_STATES,
  SESSION_ID_PATTERN,
} from '../constants.js';
import type { ReconcileSummary } from '../machines/daemon.machine.js';
import { containerName, instanceSecretPrefix, sessionOfSecret } from '../runner/names.js';

/**
 * Whether a listed container is one agentd made: its name is exactly the one its labels give
 * (containerName of this instance, its agent and its session). A remote host answers `ps` with what it
 * likes; a name that is not agentd's (`--cidfile=/proc/self/environ`, another session's) is never
 * passed to podman, adopted or made a record of.
 */
export function madeByAgentd(container: ContainerSummary, instanceId: string): boolean {
  const agent = container.Labels?.[LABEL_AGENT];
  const session = container.Labels?.[LABEL_SESSION];
  return (
    agent !== undefined &&
    session !== undefined &&
    AGENT_NAME_RE.test(agent) &&
    agent.length <= AGENT_NAME_MAX &&
    SESSION_ID_PATTERN.test(session) &&
    container.Names[0] === containerName(instanceId, agent, session)
  );
}

/** Which objects of this instance on a host reconciliation may touch. */
export interface ReconcileScope {
  /** The host's name: objects labelled with another host (two hosts on one engine) are left alone. */
  host?: string;
  /** Sessions this daemon supervises right now: their containers and secrets are theirs to remove. */
  supervised?: ReadonlySet<string>;
  /**
   * Sessions whose dead containers are left for the caller: their records say `creating` or `cloning`,
   * so whether the command ran is in the container's log (recovery adopts them, or removes them).
   */
  keepDead?: ReadonlySet<string>;
  /**
   * How long to wait, before the secrets are listed, for `podman secret create` commands of this instance
   * that a killed daemon left running (settleLeftSecretCreates); without, they are not waited for.
   */
  leftCreatesMs?: number;
}

/**
 * Removes what earlier runs of this instance left behind on one host: its dead containers and its
 * secrets (a running container holds its own copy of its secrets, so none is still needed). Objects of
 * other instances, of another host, of a session this daemon supervises, and objects that are not
 * agentd's, are never touched. Batched: five podman calls up to 500 orphan secrets and 500 dead
 * containers, one more per further batch (see PodmanClient). Containers (list, remove) and secrets (list,
 * inspect, remove) go side by side: removing a secret a container was made with is safe, the container
 * keeps its own copy (the runner does the same as soon as a container has started). When one side
 * fails, the other still runs to its end, then the first failure is thrown.
 * Returns the containers as they were (without the supervised ones), for crash recovery.
 */
export async function reconcile(
  podman: PodmanPort,
  instanceId: string,
  log: Logger,
  signal?: AbortSignal,
  scope: ReconcileScope = {},
): Promise<{ summary: ReconcileSummary; containers: ContainerSummary[] }> {
  const supervised = scope.supervised ?? new Set<string>();
  const ours = (labels: Record<string, string> | undefined | null) =>
    (scope.host === undefined || labels?.[LABEL_HOST] === undefined || labels[LABEL_HOST] === scope.host) &&
    !supervised.has(labels?.[LABEL_SESSION] ?? '');
  const containerSide = async () => {
    const listed = (await podman.listContainers({ [LABEL_INSTANCE]: instanceId }, signal)).filter((c) =>
      ours(c.Labels),
    );
    const containers: ContainerSummary[] = [];
    for (const c of listed) {
      if (madeByAgentd(c, instanceId)) {
        containers.push(c);
        continue;
      }
      // What the host says is not to be trusted: a name is passed to podman and goes into records.
      log.warn(
        { event: 'daemon.container_ignored', host: scope.host, name: String(c.Names[0] ?? '').slice(0, 200) },
        `ignored a container labelled with this daemon's instance whose name is not one agentd makes (${scope.host ?? 'local'}): it is neither removed nor adopted`,
      );
    }
    const keepDead = scope.keepDead ?? new Set<string>();
    const deadNames = containers
      .filter((c) => !LIVE_CONTAINER_STATES.has(c.State) && !keepDead.has(c.Labels?.[LABEL_SESSION] ?? ''))
      .map((c) => c.Names[0] as string);
    await podman.removeContainers(deadNames, signal);
    return { containers, deadNames };
  };
  const secretSide = async () => {
    const prefix = instanceSecretPrefix(instanceId);
    // One that made its secret after the list would leave it (and the value in it) until the next start.
    if (scope.leftCreatesMs !== undefined) {
      const left = await settleLeftSecretCreates(prefix, scope.leftCreatesMs, signal);
      if (left > 0)
        log.info(
          { event: 'daemon.secret_creates_waited', host: scope.host, count: left },
          `waited for the podman secret create command(s) an earlier daemon of this instance left running (${left} process(es)), so that what they make is removed with the rest`,
        );
    }
    const candidates = (await podman.listSecretNames(signal)).filter((name) => {
      const session = name.startsWith(prefix) ? sessionOfSecret(instanceId, name) : undefined;
      return session !== undefined && !supervised.has(session);
    });
    // The name carries only 8 characters of the instance id: confirm ownership by label.
    const labels = await podman.secretLabels(candidates, signal).catch(async () => {
      // A secret removed between the list and the inspect fails the whole call: look again, once.
      const still = new Set(await podman.listSecretNames(signal));
      return podman.secretLabels(
        candidates.filter((name) => still.has(name)),
        signal,
      );
    });
    const orphans = candidates.filter((name) => {
      const own = labels.get(name);
      return own?.[LABEL_INSTANCE] === instanceId && ours(own);
    });
    await podman.removeSecrets(orphans, signal);
    return orphans;
  };
  const [containerResult, secretResult] = await Promise.allSettled([containerSide(), secretSide()]);
  if (containerResult.status === 'rejected') throw containerResult.reason;
  if (secretResult.status === 'rejected') throw secretResult.reason;
  const { containers, deadNames } = containerResult.value;
  const orphans = secretResult.value;
  const live = containers.filter((c) => LIVE_CONTAINER_STATES.has(c.State));

  for (const c of live) {
    log.warn(
      { event: 'daemon.running_container', container: c.Names[0], session: c.Labels?.[LABEL_SESSION] },
      'a container of this instance is still running from an earlier daemon',
    );
  }
  const summary = {
    removedContainers: deadNames.length,
    removedSecrets: orphans.length,
    runningContainers: live.length,
  };
  log.info(
    {
      event: 'daemon.reconciled',
      ...(scope.host === undefined ? {} : { host: scope.host }),
      ...summary,
      containers: deadNames,
      secrets: orphans,
    },
    scope.host === undefined ? 'reconciled Podman state' : `reconciled Podman state on host ${scope.host}`,
  );
  return { summary, containers };
}
