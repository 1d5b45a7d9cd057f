import type { SessionRecord } from '../sessions/records.js';
import type { Outcome } from '../sessions/types.js';

/** Exit codes of the client commands. Documented in the README (Outcomes and exit codes). */
export const EXIT = {
  succeeded: 0,
  failed: 1,
  usage: 2,
  /** The daemon refused, and will refuse again: unknown agent, bad repository, ... */
  rejected: 3,
  infrastructure: 4,
  cancelled: 5,
  /** No such session (wait, show, logs, cancel). */
  unknownSession: 6,
  /**
   * `wait --timeout` ran out before the session finished; it goes on. `stop --timeout` ran out before the
   * daemon exited; it goes on shutting down. `stop` gave up because nothing went toward the daemon's exit
   * for STOP_STUCK_MS (`not_stopping`).
   */
  stillRunning: 7,
  /**
   * The daemon closed the connection of a follower (`trigger`, `logs --follow`) that stopped reading; the
   * session goes on. Not a retry: the session was accepted.
   */
  connectionLost: 8,
  /**
   * `status`: the daemon answers but is `degraded` (its state dir takes no writes): it supervises what
   * runs and rejects triggers until the state dir takes writes again. Also a `ready` daemon whose own log
   * cannot be written (its `degraded` says so): it runs sessions, but nothing it does is logged.
   */
  degraded: 10,
  /**
   * `status`: the daemon is not ready yet (`opening`, or a state this CLI does not know). `stop`: it is
   * starting and has no socket yet to be asked over.
   */
  notReady: 11,
  /** `status`: the daemon is shutting down (`shutdown.draining`): it takes no triggers and will exit. */
  shuttingDown: 12,
  /**
   * `status`: the daemon machine failed (`failed`): it takes no triggers and is exiting; restart it. Also
   * any command the daemon answered `error` `failed` for that reason (`cancel`, `hosts drain`/`undrain`).
   */
  daemonFailed: 13,
  /**
   * `status`: the daemon is `ready` but no Podman host answers its probes: it accepts triggers, and their
   * sessions wait in the queue until a host answers (what /readyz answers 503 for).
   */
  noHost: 14,
  /**
   * `status`: the daemon is `ready` but it stopped supervising a schedule (it fires no more) or a host (no
   * new sessions go there) after an exception in it: `agentd reload` or a restart starts it again.
   */
  supervisionFailed: 15,
  unreachable: 69,
  /** The daemon's socket is there but this user may not connect to it (sysexits EX_NOPERM). */
  permissionDenied: 77,
  /** Not now, try again: the daemon is busy, shutting down or its state dir is full (sysexits EX_TEMPFAIL). */
  retry: 75,
  timedOut: 124,
  interrupted: 130,
} as const;

/** What `--exit-code` makes of a `failed` session: the outcome's code (1), or the command's own. */
export const EXIT_CODE_MODES = ['outcome', 'command'] as const;
export type ExitCodeMode = (typeof EXIT_CODE_MODES)[number];

export function exitCodeForOutcome(outcome: Outcome): number {
  switch (outcome) {
    case 'succeeded':
      return EXIT.succeeded;
    case 'failed':
      return EXIT.failed;
    case 'cancelled':
      return EXIT.cancelled;
    case 'timed_out':
      return EXIT.timedOut;
    default:
      // error, abandoned: something around the agent failed, not the agent.
      return EXIT.infrastructure;
  }
}

/**
 * The exit code of a finished session. With `command`, a `failed` session whose command ran exits with
 * the command's own code (1 to 255) as `podman run` does; one whose clone or setup failed exits 1, and
 * every other outcome keeps its code. A `blocked` or
 * `nothing_ready` session succeeded (0), unless `strict`: then it counts as failed.
 */
export function exitCodeForRecord(
  record: SessionRecord,
  mode: ExitCodeMode = 'outcome',
  strict = false,
): number {
  const notDone = record.kind !== undefined && record.kind !== 'success';
  const outcome =
    strict && record.outcome === 'succeeded' && notDone ? 'failed' : (record.outcome ?? 'error');
  const own = record.exitCode;
  // The command's own code only when the command ran and ended by itself: a record has a `kind` then.
  // A failed clone or setup has git's or the setup step's code (git's 128, the step's 126 for a missing
  // setpriv), which a script reading `--exit-code command` would take for the agent's.
  const ran = record.kind !== undefined;
  if (mode === 'command' && outcome === 'failed' && ran && own !== undefined && own > 0 && own < 256)
    return own;
  return exitCodeForOutcome(outcome);
}

/**
 * The exit code of `agentd status` for the state the daemon reported, so that a health check or a
 * systemd/cron script tells a sick daemon from a healthy one without reading the JSON: 0 only when it
 * is `ready`, not degraded, a Podman host answers and no schedule or host has failed. `--json` prints
 * the whole status whatever the code. Documented in the README (Outcomes and exit codes).
 */
export function exitCodeForStatus(status: {
  state: string;
  degraded?: string | undefined;
  failed?: string | undefined;
  noHost?: string | undefined;
  failedHosts?: readonly unknown[] | undefined;
  schedules?: readonly { failed?: string | undefined }[] | undefined;
}): number {
  if (status.failed !== undefined || status.state === 'failed') return EXIT.daemonFailed;
  if (status.degraded !== undefined || status.state === 'degraded') return EXIT.degraded;
  if (status.state === 'ready') {
    if (status.noHost !== undefined) return EXIT.noHost;
    const stopped =
      (status.failedHosts?.length ?? 0) > 0 || (status.schedules ?? []).some((s) => s.failed !== undefined);
    return stopped ? EXIT.supervisionFailed : EXIT.succeeded;
  }
  if (status.state === 'shutdown' || status.state.startsWith('shutdown.')) return EXIT.shuttingDown;
  // opening, and reconciling (which no client is told): not something to rely on. A state a newer daemon
  // adds never gets here: the client refuses the reply (reply-check.ts, docs/protocol.md Compatibility).
  return EXIT.notReady;
}

/** A refusal of the daemon: 75 when it says "not now" (retryable), 3 when it says "never". */
export function exitCodeForRefusal(retryable: boolean | undefined): number {
  return retryable ? EXIT.retry : EXIT.rejected;
}
