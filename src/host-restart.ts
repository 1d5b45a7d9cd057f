import { NEVER_STARTED_STATES } from './constants.js';

/*
 * A container whose run its host's restart ended, not its command: Podman keeps no exit code of the
 * command's for it (it says 0). Podman 4 makes such a container `configured` again (listed `created`);
 * Podman 5 makes it `exited`, with no finish time (its exit was never recorded). Podman's zero time is
 * before 1970, as a date or in Unix seconds; a field Podman did not give is not taken for it.
 */

/** As `podman container inspect` says it: a start time and, Podman 4, a never-started state again or, Podman 5, exited with no finish time. */
export function inspectedResetByRestart(state: {
  Status: string;
  StartedAt?: string | undefined;
  FinishedAt?: string | undefined;
}): boolean {
  if (!(Date.parse(state.StartedAt ?? '') > 0)) return false;
  if (NEVER_STARTED_STATES.has(state.Status)) return true;
  return EXITED_STATES.has(state.Status) && zeroTime(Date.parse(state.FinishedAt ?? ''));
}

/**
 * As `podman ps -a` lists it, Podman 5's sign only: exited with a start time and an exit time of zero.
 * (Podman 4's `created` again is told apart by the session's record, which says it ran.)
 */
export function listedExitedByRestart(container: {
  State: string;
  StartedAt?: number | undefined;
  ExitedAt?: number | undefined;
}): boolean {
  return (
    EXITED_STATES.has(container.State) &&
    (container.StartedAt ?? 0) > 0 &&
    container.ExitedAt !== undefined &&
    zeroTime(container.ExitedAt)
  );
}

const EXITED_STATES: ReadonlySet<string> = new Set(['exited', 'stopped']);

/** Podman's zero time (year 1), not a missing or unreadable value. */
function zeroTime(time: number): boolean {
  return !Number.isNaN(time) && time <= 0;
}
