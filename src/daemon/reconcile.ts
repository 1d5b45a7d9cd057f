import type { Logger } from 'pino';
import type { ContainerSummary, PodmanPort } from '../adapters/podman.js';
import { LABEL_INSTANCE, LABEL_SESSION } from '../constants.js';
import type { ReconcileSummary } from '../machines/daemon.machine.js';
import { instanceSecretPrefix, sessionOfSecret } from '../runner/names.js';

/** States in which a container still has a process that someone may supervise. */
const LIVE_STATES = new Set(['running', 'paused', 'stopping']);

/**
 * Removes what earlier runs of this instance left behind: its dead containers and its secrets (a
 * running container holds its own copy of its secrets, so none is still needed). Objects of other
 * instances, and objects that are not agentd's, are never touched. Batched: at most five podman calls
 * whatever the number of objects. Returns the containers as they were, for crash recovery.
 */
export async function reconcile(
  podman: PodmanPort,
  instanceId: string,
  log: Logger,
  signal?: AbortSignal,
): Promise<{ summary: ReconcileSummary; containers: ContainerSummary[] }> {
  const containers = await podman.listContainers({ [LABEL_INSTANCE]: instanceId }, signal);
  const live = containers.filter((c) => LIVE_STATES.has(c.State));
  const dead = containers.filter((c) => !LIVE_STATES.has(c.State));

  const prefix = instanceSecretPrefix(instanceId);
  const candidates = (await podman.listSecretNames(signal)).filter(
    (name) => name.startsWith(prefix) && sessionOfSecret(instanceId, name) !== undefined,
  );
  // The name carries only 8 characters of the instance id: confirm ownership by label.
  const labels = await podman.secretLabels(candidates, signal).catch(async () => {
    // A secret removed between the list and the inspect fails the whole call: look again, once.
    const still = new Set(await podman.listSecretNames(signal));
    return podman.secretLabels(
      candidates.filter((name) => still.has(name)),
      signal,
    );
  });
  const orphans = candidates.filter((name) => labels.get(name)?.[LABEL_INSTANCE] === instanceId);

  const deadNames = dead.map((c) => c.Names[0] ?? c.Id);
  await podman.removeContainers(deadNames, signal);
  await podman.removeSecrets(orphans, signal);

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
    { event: 'daemon.reconciled', ...summary, containers: deadNames, secrets: orphans },
    'reconciled Podman state',
  );
  return { summary, containers };
}
