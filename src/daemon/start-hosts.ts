import { formatDuration } from '../duration.js';
import { errorMessage } from '../errors.js';

/**
 * How long the start waits for one host's reconciliation, in probe timeouts. A host that answers its
 * probe but whose Podman then stalls (a wedged lock: `version` answers, `ps` does not) would otherwise
 * hold the whole start, every other host's sessions with it, for a podman_timeout per call (measured:
 * ready after 61 s with one such host among two; past systemd's 90 s start timeout the service is
 * killed and restarted, again and again).
 */
export const START_WAIT_PROBE_TIMEOUTS = 3;

/** One host at start: reconciled, or down (why), with the version its probe read. */
export interface HostAtStart<T> {
  host: string;
  reconciled?: T;
  down?: string;
  version?: string;
}

/**
 * Reaches and reconciles every host side by side. Without `hosts:` (`required`) the local Podman is
 * the daemon's only one: its failure is the start's, and the start waits for it. Otherwise a host
 * whose probe fails is down, and one whose reconciliation is not done within `waitMs` is down too
 * while that reconciliation goes on (see StartReconciliations): neither holds back the others.
 */
export function reconcileAtStart<T>(
  hosts: readonly string[],
  options: {
    required: boolean;
    waitMs: number;
    probe: (host: string) => Promise<string>;
    reconcile: (host: string) => Promise<T>;
    late: StartReconciliations<T>;
  },
): Promise<HostAtStart<T>[]> {
  return Promise.all(
    hosts.map(async (host): Promise<HostAtStart<T>> => {
      try {
        if (options.required) {
          // The local Podman's version is only shown by status: asked beside its reconciliation, not
          // after it (a podman call is 100 ms or more on a loaded machine).
          const version = options.probe(host).catch(() => undefined);
          const reconciled = await options.reconcile(host);
          return { host, reconciled, version: await version };
        }
        const version = await options.probe(host);
        return { ...(await options.late.wait(host, options.reconcile(host), options.waitMs)), version };
      } catch (error) {
        if (options.required) throw error;
        return { host, down: errorMessage(error) };
      }
    }),
  );
}

/**
 * The reconciliations the start stopped waiting for, by host. A host past the wait is down at start;
 * its reconciliation is not cut short (a host with many objects to remove may just be slow, and one
 * cut short loses the outcomes it read from the containers it removed): its host's actor takes it over
 * (`take`) when it next reconciles, so there is never a second one beside it.
 */
export class StartReconciliations<T> {
  private readonly late = new Map<string, Promise<T>>();

  /** The reconciliation's result within waitMs, or the host down while it goes on; its failure in time is thrown. */
  async wait(host: string, reconciling: Promise<T>, waitMs: number): Promise<HostAtStart<T>> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), waitMs);
    });
    try {
      const first = await Promise.race([reconciling.then((reconciled) => ({ reconciled })), waited]);
      if (first !== 'late') return { host, reconciled: first.reconciled };
    } finally {
      clearTimeout(timer);
    }
    this.late.set(host, reconciling);
    // One that fails is forgotten (the host's next try is a fresh one); nobody may await it for a while,
    // so its failure is no unhandled rejection.
    reconciling.catch(() => {
      if (this.late.get(host) === reconciling) this.late.delete(host);
    });
    return {
      host,
      down: `it answered, but its reconciliation was not done within ${formatDuration(waitMs)} (${START_WAIT_PROBE_TIMEOUTS} x daemon.host_probe_timeout); it goes on, and the host takes sessions once it is done`,
    };
  }

  /**
   * Resolves once the reconciliation the start left going for the host has ended, taken over or not;
   * undefined when there is none. What waits for the host is abandoned only then, as the host's actor
   * abandons nothing while it reconciles: else a session it recovers would have two outcomes.
   */
  settled(host: string): Promise<void> | undefined {
    return this.late.get(host)?.then(
      () => {},
      () => {},
    );
  }

  /**
   * At the daemon's end: the results of the reconciliations the start left going that no host's actor
   * took over, once they have ended (each podman call within its deadline), by host. What they settled
   * from exited containers they recorded before removing them; it is logged and counted from here.
   */
  async untaken(): Promise<Map<string, T>> {
    const left = [...this.late.entries()];
    this.late.clear();
    const ended = await Promise.allSettled(left.map(([, reconciling]) => reconciling));
    const results = new Map<string, T>();
    ended.forEach((result, i) => {
      if (result.status === 'fulfilled') results.set((left[i] as [string, Promise<T>])[0], result.value);
    });
    return results;
  }

  /**
   * A reconciliation of the host by its actor: the one the start left going (its result), else a
   * fresh one. The signal stops the waiting, not the reconciliation taken over.
   */
  take(host: string, fresh: () => Promise<T>, signal: AbortSignal): Promise<T> {
    const late = this.late.get(host);
    if (late === undefined) return fresh();
    this.late.delete(host);
    return new Promise<T>((resolve, reject) => {
      const stop = () => reject(signal.reason);
      if (signal.aborted) return stop();
      signal.addEventListener('abort', stop, { once: true });
      late.then(resolve, reject).finally(() => signal.removeEventListener('abort', stop));
    });
  }
}
