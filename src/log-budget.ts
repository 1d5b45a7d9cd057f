/**
 * How many lines of one kind (one HTTP token's requests, refused socket connections) reach the log at
 * their level: a burst, then a steady rate. The rest are counted, and one line says how many once a
 * minute: a client that can make the daemon log per request must not fill the host's disk or drown the
 * events that matter (journald drops a service's lines past its rate limit).
 */
export class LogBudget {
  private readonly keys = new Map<
    string,
    { left: number; at: number; unlogged: number; timer?: NodeJS.Timeout }
  >();

  constructor(
    /** Told, once per summaryMs at most for a key, how many lines of it were not logged. */
    private readonly onUnlogged: (key: string, count: number) => void,
    private readonly options: { burst: number; perSecond: number; summaryMs: number } = {
      burst: 100,
      perSecond: 10,
      summaryMs: 60_000,
    },
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True when a line of `key` may be logged now; false when it is counted instead. */
  take(key: string): boolean {
    const { burst, perSecond, summaryMs } = this.options;
    const now = this.now();
    let entry = this.keys.get(key);
    if (entry === undefined) {
      entry = { left: burst, at: now, unlogged: 0 };
      this.keys.set(key, entry);
    }
    entry.left = Math.min(burst, entry.left + ((now - entry.at) / 1000) * perSecond);
    entry.at = now;
    if (entry.left >= 1) {
      entry.left -= 1;
      return true;
    }
    entry.unlogged++;
    if (entry.timer === undefined) {
      const counted = entry;
      counted.timer = setTimeout(() => this.flush(key, counted), summaryMs);
      counted.timer.unref();
    }
    return false;
  }

  private flush(key: string, entry: { unlogged: number; timer?: NodeJS.Timeout }): void {
    clearTimeout(entry.timer);
    entry.timer = undefined;
    const count = entry.unlogged;
    entry.unlogged = 0;
    if (count > 0) this.onUnlogged(key, count);
  }
}
