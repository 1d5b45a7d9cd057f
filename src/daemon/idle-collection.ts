import type { Logger } from 'pino';

/** How long the daemon has had no session running or queued before it collects its heap. */
export const IDLE_COLLECT_MS = 10_000;

export interface IdleCollectionOptions {
  /** Whether nothing runs or waits now (no session actor, an empty queue). */
  idle: () => boolean;
  /** Calls the listener after each of the daemon machine's steps; returns how to stop. */
  subscribe: (listener: () => void) => () => void;
  /** The collection itself (young-generation.ts's collectStartGarbage). */
  collect: () => void;
  log: Logger;
  delayMs?: number;
  /** RSS in bytes, for the debug line; tests give their own. */
  rss?: () => number;
}

/**
 * One full, compacting collection of the daemon's heap once it has been idle IDLE_COLLECT_MS after a
 * busy spell. Sessions' output fills V8's old generation with what a flood left alive for a moment, and
 * V8 gives those pages back only when its memory reducer runs, which it does only if its own
 * collections armed it and the allocation rate is low at its timer: a daemon left idle after a flood
 * could hold some 145 MB for good against its 75 MB at the start (bench/findings.md, "The daemon's RSS
 * after a mix"). Once per busy spell, never while anything runs: the collection stops the event loop
 * for some tens of milliseconds. Its timer never holds the process up; stop it at shutdown.
 */
export function collectWhenIdle(options: IdleCollectionOptions): { stop: () => void } {
  const {
    idle,
    subscribe,
    collect,
    log,
    delayMs = IDLE_COLLECT_MS,
    rss = () => process.memoryUsage.rss(),
  } = options;
  let timer: NodeJS.Timeout | undefined;
  // The start collected already (announceUp): the first spell to end is the first session's.
  let wasIdle = true;
  const fire = () => {
    timer = undefined;
    const before = rss();
    const started = performance.now();
    collect();
    log.debug(
      {
        event: 'daemon.idle_collected',
        ms: Math.round(performance.now() - started),
        rssBeforeMb: mb(before),
        rssAfterMb: mb(rss()),
      },
      'idle: collected the heap a busy spell left',
    );
  };
  const unsubscribe = subscribe(() => {
    const now = idle();
    if (now === wasIdle) return;
    wasIdle = now;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (now) {
      timer = setTimeout(fire, delayMs);
      timer.unref();
    }
  });
  return {
    stop: () => {
      unsubscribe();
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}

const mb = (bytes: number) => Math.round(bytes / 1024 / 102.4) / 10;
