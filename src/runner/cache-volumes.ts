import type { CreateContainerOptions, PodmanPort } from '../adapters/podman.js';
import { compareText } from '../compare.js';

/**
 * The cache volumes of a daemon's sessions: each is made (labelled, and for a bounded cache its
 * filesystem made) before the first container that mounts it. A plain one is made sure of once, not
 * every session; a bounded one at every session (one `volume inspect`): Podman makes a volume that a
 * container names and that is missing, and one removed while the daemon runs would come back plain,
 * without its bound. The making is shared by the sessions that need it at once and is not cut short by
 * one session's stop (it is short, and a bounded cache's filesystem must not be made twice at once): a
 * session that stops only stops waiting for it. A making that fails fails each of them, and the next
 * session tries again.
 */
export class CacheVolumes {
  /** Makings under way, by `HOST/NAME`. */
  private readonly making = new Map<string, Promise<void>>();
  /**
   * Plain volumes this daemon has made sure of, by `HOST/NAME` and the labels they were made sure of
   * with: two agents' caches can share a name (agent `a` with cache `b-npm`, and `a-b` with `npm`, after
   * a reload), and the second must meet ensureVolume's check of the owner labels, not be taken as made.
   */
  private readonly made = new Set<string>();

  async ensure(
    port: PodmanPort,
    host: string | undefined,
    list: CreateContainerOptions['volumes'],
    signal?: AbortSignal,
  ): Promise<void> {
    for (const volume of list ?? []) {
      const labels = Object.entries(volume.labels ?? {}).sort(([a], [b]) => compareText(a, b));
      const key = `${host ?? ''}/${volume.name}/${JSON.stringify(labels)}`;
      if (volume.bound === undefined && this.made.has(key)) continue;
      let making = this.making.get(key);
      if (making === undefined) {
        making = port
          .ensureVolume(volume.name, volume.labels ?? {}, undefined, volume.bound)
          .then(() => {
            if (volume.bound === undefined) this.made.add(key);
          })
          .finally(() => this.making.delete(key));
        this.making.set(key, making);
      }
      await untilAborted(making, signal);
    }
  }
}

/** The promise, or its signal's abort, whichever comes first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
