import { constants as osConstants } from 'node:os';
import { classifyPodmanFailure } from '../adapters/podman-errors.js';
import { durationSetting } from '../duration.js';
import { errorMessage } from '../errors.js';
import { isNotFailedKind, kindOfExitCode, type OutcomeKind } from '../outcome-kinds.js';
import type { Phase, RunResult } from './types.js';

/**
 * How a run ends, decided from what happened: pure functions the runner machine's actions call once
 * per run (its first decision stands).
 */
export type RunFate = Omit<RunResult, 'timings'>;

export type StopReason = 'cancel' | 'timeout';

/**
 * The container's command ran and exited. `oom` says it (or something in the container) was killed
 * for memory: the setup step saw it (outOfMemoryReason), since Podman does not say so.
 */
export function commandExited(
  exitCode: number,
  command: string,
  oom?: string,
  exitCodes: Readonly<Record<number, OutcomeKind>> = {},
  /**
   * The setup step reported the command's end, so it started it: a 126 or 127 is then the command's own
   * (a tool it ran was not found), not the setup step's finding that the command is missing.
   */
  started = false,
): RunFate {
  const kind = kindOfExitCode(exitCode, exitCodes);
  const signalName = signalOfExit(exitCode);
  // The kind decides: `blocked` and `nothing_ready` are not failures (a scheduler tries again later).
  const outcome = isNotFailedKind(kind) && oom === undefined ? 'succeeded' : 'failed';
  const why = describeExit(exitCode, command, kind, started);
  return {
    outcome,
    kind,
    exitCode,
    ...(signalName ? { signal: signalName } : {}),
    phase: 'running',
    // A failed session always says why: after an OOM kill, a command that exited 0 (a child of it
    // killed, the command going on) is failed for the memory limit, and the message says so.
    ...(oom !== undefined
      ? { message: `${oom}: ${why ?? `command exited with code ${exitCode} after the OOM killer struck`}` }
      : why === undefined
        ? {}
        : { message: why }),
  };
}

/** The setup step ended before the command started: the clone or the setup itself failed. */
export function setupFailed(
  phase: 'creating' | 'cloning',
  exitCode: number,
  setupOutput: readonly string[],
  repoUrl: string,
  oom?: string,
): RunFate {
  const output = setupOutput.slice(-5).join(' | ') || `setup exited with code ${exitCode}`;
  const why = oom === undefined ? output : `${oom}: ${output}`;
  return {
    outcome: 'failed',
    exitCode,
    phase,
    message: phase === 'cloning' ? `git clone of ${repoUrl} failed: ${why}` : `setup failed: ${why}`,
  };
}

/**
 * An adopted container exited with no daemon watching, and its log no longer holds the setup step's
 * first lines: whether the clone failed or the command ran is not known.
 */
export function setupUnknown(exitCode: number): RunFate {
  return {
    outcome: 'error',
    exitCode,
    phase: 'cloning',
    message: `the container exited with code ${exitCode} while no daemon watched, and its log no longer holds the setup step's first lines (Podman empties a container's log past its bound): whether the clone failed or the command ran is not known`,
  };
}

/**
 * The container exited 0, which the setup step does only after reporting how the command ended, yet
 * neither Podman's attached output nor its log of the container held that report (nor, with `phase`
 * creating, more than the step's first lines): the output was lost on its way, so how far the session
 * got is not known. Not the setup's failure: something around the agent failed.
 */
export function outputIncomplete(phase: 'creating' | 'cloning', exitCode: number): RunFate {
  return {
    outcome: 'error',
    exitCode,
    phase,
    message: `the session's output is incomplete: the container exited with code ${exitCode}, which its setup step does only after reporting how the command ended, but neither Podman's attached output nor Podman's log of the container holds that report (Podman lost it); whether the command ran is not known`,
  };
}

/** The container never ran the setup step: podman or the runtime failed to start it. */
export function startFailed(
  container: string,
  exitCode: number,
  stderr: string,
  /** The image, when one `podman run` also created the container (a missing image shows here then). */
  image?: string,
): RunFate {
  const failure = classifyPodmanFailure(
    {
      operation: `${image === undefined ? 'start' : 'run'} container ${container}`,
      argv: image === undefined ? ['start', '--attach', container] : ['run', '--name', container, image],
      exitCode,
      stderr,
    },
    image,
  );
  return { outcome: 'error', phase: 'creating', message: failure.message };
}

/** A cancel or the session's timeout stopped the run. */
export function stopped(reason: StopReason, phase: Phase, timeoutMs: number | undefined): RunFate {
  if (reason === 'timeout') {
    return {
      outcome: 'timed_out',
      phase,
      message: `session exceeded its timeout of ${durationSetting(timeoutMs ?? 0)} while ${phase}`,
    };
  }
  return { outcome: 'cancelled', phase, message: `session cancelled while ${phase}` };
}

/** Something around the agent failed (a podman call, a credential Podman refuses). */
export function failed(phase: Phase, error: unknown): RunFate {
  return { outcome: 'error', phase, message: typeof error === 'string' ? error : errorMessage(error) };
}

/** Why a command's exit is what it is, in the operator's words; undefined for a plain success. */
function describeExit(
  code: number,
  command: string,
  kind: OutcomeKind,
  started: boolean,
): string | undefined {
  if (kind === 'success')
    return code === 0 ? undefined : `command exited with code ${code}, success for this agent`;
  if (kind === 'blocked') return `command reported it is blocked (exit ${code})`;
  if (kind === 'nothing_ready') return `command reported nothing ready to work on (exit ${code})`;
  if (started && code === 127)
    return `command ${command} was started and exited with code 127: its interpreter or something it ran was not found`;
  if (started && code === 126)
    return `command ${command} was started and exited with code 126: its interpreter or something it ran could not be executed`;
  if (code === 127)
    return `command not found: ${command} (exit 127); check the agent's command and the image`;
  if (code === 126) return `command cannot be executed: ${command} (exit 126); check its permissions`;
  if (code > 128 && code < 160)
    return `command killed by ${signalOf(code - 128) ?? `signal ${code - 128}`} (exit ${code})`;
  const words: Partial<Record<OutcomeKind, string>> = {
    usage_error: 'a usage error',
    work_failed: 'its work failed',
    infrastructure_failure: 'an infrastructure failure',
  };
  const said = words[kind];
  return said === undefined
    ? `command exited with code ${code}`
    : `command exited with code ${code}: ${said}`;
}

/**
 * The signal that ended a command, from the status the setup step saw (128 + N for signal N, as a shell
 * reports it); undefined for an ordinary exit.
 */
export function signalOfExit(exitCode: number): string | undefined {
  return exitCode > 128 && exitCode < 160 ? signalOf(exitCode - 128) : undefined;
}

function signalOf(n: number): string | undefined {
  return Object.entries(osConstants.signals).find(([, value]) => value === n)?.[0];
}

/**
 * The connection to the session's host dropped and did not come back within the grace period (or its
 * container was gone when it did): nobody knows how the command ended.
 */
export function hostLost(phase: Phase, host: string | undefined, why: string): RunFate {
  return {
    outcome: 'abandoned',
    phase,
    message: `lost the connection to host ${host ?? 'local'} while ${phase}: ${why}`,
  };
}
