import type { Logger } from '../adapters/logger.js';

/**
 * How long the process may go on after the daemon has stopped: what is left then (a podman call, a file
 * read, a connection, a timer something forgot) would otherwise hold it, and under systemd the stop would
 * hang until TimeoutStopSec and end in SIGKILL.
 */
export const EXIT_HELD_MS = 10_000;

export interface ExitWithinOptions {
  ms?: number;
  exit?: (code: number) => void;
  resources?: () => string[];
}

/**
 * Ends the process with `code` if it is still there `ms` after now, saying what held it (its active
 * handles and requests, counted by kind: process.getActiveResourcesInfo). The timer does not itself keep
 * the process: one whose event loop empties ends at once, as it did.
 */
export function exitWithin(code: number, log: Logger, options: ExitWithinOptions = {}): void {
  const ms = options.ms ?? EXIT_HELD_MS;
  const timer = setTimeout(() => {
    const counts = new Map<string, number>();
    for (const kind of (options.resources ?? process.getActiveResourcesInfo)()) {
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    const resources = Object.fromEntries(counts);
    const held = [...counts].map(([kind, n]) => `${n} ${kind}`).join(', ') || 'nothing Node can name';
    log.error(
      { event: 'daemon.exit_held', resources, code },
      `the daemon stopped ${ms / 1000}s ago but the process did not end (still open: ${held}); exiting with code ${code}`,
    );
    (options.exit ?? process.exit)(code);
  }, ms);
  timer.unref();
}
