import type { Logger } from 'pino';
import { LOCAL_HOST } from '../config/hosts.js';
import { errorMessage } from '../errors.js';
import type { LeftBehind } from '../machines/runner.machine.js';

/** What removing a host's leftovers needs of its Podman. */
export interface LeftoverRemover {
  removeContainers(names: string[], signal?: AbortSignal): Promise<void>;
  removeSecrets(names: string[], signal?: AbortSignal): Promise<void>;
}

/**
 * Containers and secrets whose session's teardown could not remove them (twice), per host: removed
 * again each time the host answers a probe, and once more at shutdown, instead of staying until the next
 * start's reconciliation. One sweep per host at a time; what fails stays for the next.
 */
export class Leftovers {
  private readonly pending = new Map<string, { containers: Set<string>; secrets: Set<string> }>();
  private readonly sweeping = new Set<string>();

  constructor(private readonly log: Logger) {}

  add(left: LeftBehind): void {
    const host = left.host ?? LOCAL_HOST;
    const entry = this.pending.get(host) ?? { containers: new Set<string>(), secrets: new Set<string>() };
    for (const name of left.containers) if (name !== '') entry.containers.add(name);
    for (const name of left.secrets) entry.secrets.add(name);
    this.pending.set(host, entry);
  }

  /** Hosts with something left to remove. */
  hosts(): string[] {
    return [...this.pending.keys()];
  }

  /** Tries to remove what is left on host; never throws (what fails is logged and kept). */
  async sweep(host: string, podman: LeftoverRemover, signal?: AbortSignal): Promise<void> {
    const entry = this.pending.get(host);
    if (entry === undefined || this.sweeping.has(host)) return;
    this.sweeping.add(host);
    const containers = [...entry.containers];
    const secrets = [...entry.secrets];
    try {
      const [removedContainers, removedSecrets] = await Promise.allSettled([
        containers.length === 0 ? Promise.resolve() : podman.removeContainers(containers, signal),
        secrets.length === 0 ? Promise.resolve() : podman.removeSecrets(secrets, signal),
      ]);
      const removed: string[] = [];
      if (removedContainers.status === 'fulfilled') {
        for (const name of containers) entry.containers.delete(name);
        removed.push(...containers);
      }
      if (removedSecrets.status === 'fulfilled') {
        for (const name of secrets) entry.secrets.delete(name);
        removed.push(...secrets);
      }
      if (entry.containers.size === 0 && entry.secrets.size === 0) this.pending.delete(host);
      if (removed.length > 0) {
        this.log.info(
          { event: 'session.leftovers_removed', host, removed },
          `removed ${removed.length} object(s) an earlier session's teardown left on host ${host}`,
        );
      }
      for (const result of [removedContainers, removedSecrets]) {
        if (result.status === 'rejected') {
          this.log.warn(
            { event: 'session.leftovers_kept', host, err: result.reason },
            `could not remove what an earlier session's teardown left on host ${host} (tried again when it next answers): ${errorMessage(result.reason)}`,
          );
        }
      }
    } finally {
      this.sweeping.delete(host);
    }
  }
}
