import { AgentdError } from '../errors.js';
import type { AttachedRun, PodmanPort } from './podman.js';

/** One podman operation as the daemon called it: which PodmanPort method, how long, how it ended. */
export interface PodmanCall {
  /** The PodmanPort method, e.g. `createContainer`. */
  operation: string;
  durationMs: number;
  /** Set when it failed: the error's code (`PODMAN_TIMEOUT`...), `ABORTED`, or `UNKNOWN`. */
  error?: string;
  /** An attached run or a log follow: it lasts as long as its container, not a call's latency. */
  streaming: boolean;
}

const STREAMING = new Set<string>(['runAttached', 'startAttached', 'followLogs']);

/**
 * The same PodmanPort, telling `observe` about every call it makes: where podman calls are counted and
 * timed (the metrics), in one place and for every operation, present and future.
 */
export function observePodman(port: PodmanPort, observe: (call: PodmanCall) => void): PodmanPort {
  return new Proxy(port, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      const operation = property;
      return (...args: unknown[]) => {
        const started = performance.now();
        const done = (error?: unknown) =>
          observe({
            operation,
            durationMs: performance.now() - started,
            streaming: STREAMING.has(operation),
            ...(error === undefined ? {} : { error: errorCode(error, args) }),
          });
        let result: unknown;
        try {
          result = (value as (...a: unknown[]) => unknown).apply(target, args);
        } catch (error) {
          done(error);
          throw error;
        }
        const pending = result instanceof Promise ? result : (result as AttachedRun | undefined)?.exitCode;
        if (pending instanceof Promise) {
          pending.then(
            () => done(),
            (error: unknown) => done(error ?? 'UNKNOWN'),
          );
        } else done();
        return result;
      };
    },
  });
}

function errorCode(error: unknown, args: unknown[]): string {
  // A call the daemon cut short (a cancel, a shutdown) did not fail: podman was told to stop.
  const aborted = (a: unknown) =>
    (a instanceof AbortSignal && a.aborted) ||
    (typeof a === 'object' && a !== null && (a as { signal?: AbortSignal }).signal?.aborted === true);
  if (args.some(aborted)) return 'ABORTED';
  return error instanceof AgentdError ? error.code : 'UNKNOWN';
}
