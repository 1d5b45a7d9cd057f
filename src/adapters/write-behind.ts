/**
 * Writes that need not hold the event loop: one queue per key (a file), its tasks run one at a time
 * and in order. A task scheduled while another waits replaces it: only the newest content of a file
 * matters, so updates that come faster than the disk takes them are written once. The first task of a
 * queue starts on the next turn of the event loop, so the updates of one turn are written once too.
 * Tasks report their own errors; a task that throws anyway does not stop its queue.
 */
export class WriteBehind<K = string> {
  private readonly queues = new Map<K, { waiting: (() => Promise<void>) | undefined; done: Promise<void> }>();

  schedule(key: K, task: () => Promise<void>): void {
    const queue = this.queues.get(key);
    if (queue) {
      queue.waiting = task;
      return;
    }
    const entry = { waiting: task as (() => Promise<void>) | undefined, done: Promise.resolve() };
    this.queues.set(key, entry);
    entry.done = this.drain(key, entry);
  }

  /** Resolves once key's queue is empty (at once when it is). */
  settled(key: K): Promise<void> {
    return this.queues.get(key)?.done ?? Promise.resolve();
  }

  /** Resolves once every queue is empty, including queues started meanwhile. */
  async settledAll(): Promise<void> {
    while (this.queues.size > 0) await Promise.all([...this.queues.values()].map((q) => q.done));
  }

  private async drain(key: K, entry: { waiting: (() => Promise<void>) | undefined }): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (entry.waiting) {
      const task = entry.waiting;
      entry.waiting = undefined;
      try {
        await task();
      } catch {
        // A task reports its own failure (see the callers); the next one still runs.
      }
    }
    this.queues.delete(key);
  }
}
