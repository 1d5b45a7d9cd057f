import type { Logger } from 'pino';
import { errorFields } from '../errors.js';

/**
 * Logs an exception nobody caught (or a promise rejection nobody handled) as `daemon.crashed` before
 * Node ends the process as it always does: the stack on stderr, exit code 1. It changes nothing of that
 * end (a monitor, not a handler): the daemon's state is unknown after such an exception, and the next
 * start recovers its sessions and removes what it left. Without it a JSON log (journald, a log
 * collector) had only Node's plain-text stack, or nothing where stderr is parsed as JSON lines. The log
 * writes synchronously, so the line is out before the exit. Returns how to remove it (in-process tests
 * run several daemons).
 */
export function logUncaught(log: Logger): () => void {
  const monitor = (error: unknown, origin: NodeJS.UncaughtExceptionOrigin) => {
    const fields = errorFields(error);
    log.fatal(
      { event: 'daemon.crashed', origin, ...fields, err: error },
      `the daemon failed: ${origin === 'unhandledRejection' ? 'a promise rejection' : 'an exception'} nobody handled: ${fields.reason}; it exits now: restart it (the next start recovers its sessions)`,
    );
  };
  process.on('uncaughtExceptionMonitor', monitor);
  return () => process.off('uncaughtExceptionMonitor', monitor);
}
