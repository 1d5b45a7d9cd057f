import type { ContainerSummary } from '../adapters/podman.js';
import { compareText } from '../compare.js';
import type { AgentConfig } from '../config/types.js';
import {
  LABEL_AGENT,
  LABEL_SESSION,
  LIVE_CONTAINER_STATES,
  NEVER_STARTED_STATES,
  SESSION_ID_PATTERN,
} from '../constants.js';
import { durationSetting } from '../duration.js';
import { listedExitedByRestart } from '../host-restart.js';
import type { RecoveryPlan } from '../machines/daemon.machine.js';
import type { AdoptedSession } from '../machines/session.machine.js';
import { isNotFailedKind, kindOfExitCode } from '../outcome-kinds.js';
import type { SessionRecord } from '../sessions/records.js';
import { signalOfExit } from '../sessions/run-outcome.js';
import type { SessionRequest } from '../sessions/types.js';

/**
 * Decides the fate of every session an earlier daemon of this instance accepted but did not finish:
 * queued ones run again, one whose container still runs is adopted, one whose container exited while
 * no daemon watched is adopted too where its log can be read (readWhenExited), one whose container
 * exited otherwise gets the outcome its exit code says, and the rest are abandoned with a reason.
 */
export function planRecovery(
  unfinished: readonly SessionRecord[],
  containers: readonly ContainerSummary[],
  agents: readonly AgentConfig[],
  now: number = Date.now(),
  where: { remote?: boolean } = {},
): RecoveryPlan & { remove: string[] } {
  const plan: RecoveryPlan & { remove: string[] } = { queued: [], adopted: [], finished: [], remove: [] };
  const bySession = new Map(containers.map((c) => [c.Labels?.[LABEL_SESSION] ?? '', c]));
  const ordered = [...unfinished].sort((a, b) => compareText(a.acceptedAt, b.acceptedAt));
  for (const record of ordered) {
    const request = requestOf(record);
    const agent = agents.find((a) => a.name === record.agent);
    const container = bySession.get(record.id);
    // The session's timeout as assembleSession applies it: the trigger's, else the agent's.
    const timeoutMs = record.timeoutMs ?? agent?.timeoutMs;
    const deadline =
      timeoutMs === undefined || !record.startedAt ? undefined : Date.parse(record.startedAt) + timeoutMs;
    if (record.repo === LOST_REPO) {
      // Rebuilt from a container's labels: too little is known to run or judge it, only to supervise it.
      const name = container?.Names[0] ?? container?.Id ?? record.container ?? '?';
      const live = container !== undefined && LIVE_CONTAINER_STATES.has(container.State);
      if (live && agent) {
        // Its start is the container's creation, as its host tells it: never more than a whole timeout.
        const remainingMs =
          deadline === undefined || timeoutMs === undefined
            ? undefined
            : Math.min(timeoutMs, Math.max(0, deadline - now));
        plan.adopted.push({
          request,
          agent,
          adopted: {
            container: name,
            phase: 'running',
            ...(remainingMs === undefined ? {} : { remainingMs }),
          },
        });
        continue;
      }
      if (live) plan.remove.push(name);
      const what = live
        ? `was still running, but agent ${record.agent} is no longer configured, so it was stopped`
        : `had ${container?.State ?? 'gone'}${container?.ExitCode === undefined ? '' : ` with exit code ${container.ExitCode}`}, so its outcome is unknown`;
      plan.finished.push({
        request,
        outcome: abandoned(
          record,
          `the session's record could not be read (moved to sessions/quarantine); its container ${name} ${what}`,
        ),
      });
      continue;
    }
    if (record.phase === 'tearing_down' && record.decided !== undefined) {
      // Its outcome was decided before its teardown began; the container's exit code does not say it (a
      // stop's 143, a cut-short run's 0, a failed clone's code). One still running is stopped and removed.
      if (container && LIVE_CONTAINER_STATES.has(container.State))
        plan.remove.push(container.Names[0] ?? container.Id);
      const { message, ...decided } = record.decided;
      const recovered = 'recovered after a daemon restart while it tore down';
      plan.finished.push({
        request,
        outcome: { ...decided, message: message === undefined ? recovered : `${message} (${recovered})` },
      });
      continue;
    }
    if (container && LIVE_CONTAINER_STATES.has(container.State)) {
      if (!agent) {
        // Nobody will supervise it: it is stopped and removed.
        plan.remove.push(container.Names[0] ?? container.Id);
        plan.finished.push({
          request,
          outcome: abandoned(
            record,
            `agent ${record.agent} is no longer configured; its container was stopped`,
          ),
        });
        continue;
      }
      const adopted: AdoptedSession = {
        container: container.Names[0] ?? container.Id,
        phase: record.phase === 'cloning' ? 'cloning' : 'running',
        // Never more than a whole timeout: a clock set back since the start would otherwise lengthen it
        // (past setTimeout's bound, a timer fires at once).
        ...(deadline === undefined || timeoutMs === undefined
          ? {}
          : { remainingMs: Math.min(timeoutMs, Math.max(0, deadline - now)) }),
      };
      plan.adopted.push({ request, agent, adopted });
      continue;
    }
    // Killed while it resolved its credentials: its secret and container are made after its record says
    // creating, so it never ran, and runs again as a queued one does. So does one killed at creating
    // before the call that makes its container was spawned (while it made its secrets): its record says
    // so (containerCallStarted false, written before that call), and no container of it is listed.
    if (
      record.phase === 'queued' ||
      (record.phase === 'resolving' && container === undefined) ||
      (record.phase === 'creating' && record.containerCallStarted === false && container === undefined)
    ) {
      if (agent) plan.queued.push({ request, agent });
      else
        plan.finished.push({
          request,
          outcome: abandoned(record, `agent ${record.agent} is no longer configured`),
        });
      continue;
    }
    // Killed while `podman run` made its container, before the container started (the run killed with
    // the daemon, as a service manager does): neither the setup step nor the command ran, so it runs
    // again, as one killed while it resolved its credentials does; its container is removed first
    // (keptDeadContainers). One that Podman 4 made `created` again at its host's restart has a start
    // time, and one whose start time Podman did not list may have run: neither is run again.
    if (
      record.phase === 'creating' &&
      agent &&
      container !== undefined &&
      NEVER_STARTED_STATES.has(container.State) &&
      container.StartedAt !== undefined &&
      container.StartedAt <= 0
    ) {
      plan.queued.push({ request, agent });
      continue;
    }
    const exitCode = container?.ExitCode;
    if (
      pastDeadline(container, deadline, timeoutMs) &&
      (record.phase === 'cloning' || record.phase === 'running')
    ) {
      // It ran past its deadline with no daemon to stop it: Podman's own --timeout did.
      plan.finished.push({
        request,
        outcome: {
          outcome: 'timed_out',
          phase: record.phase,
          // As a live session's: the exit code (and the stop's signal) only once the command ran, never
          // the setup step's while it cloned.
          ...(exitCode === undefined || exitCode < 0 || record.phase !== 'running'
            ? {}
            : { exitCode, ...signalField(exitCode) }),
          message: `session exceeded its timeout of ${durationSetting(timeoutMs ?? 0)} while ${record.phase}; recovered after a daemon restart: its container was stopped at the deadline`,
        },
      });
      continue;
    }
    // A container Podman 5 made `exited` at its host's restart exited with no command's exit: never
    // adopted (no marker says how it ended) nor settled by its exit code (0).
    const exitedByRestart = container !== undefined && listedExitedByRestart(container);
    if (
      container &&
      agent &&
      readWhenExited(record, where) &&
      !NEVER_STARTED_STATES.has(container.State) &&
      !exitedByRestart
    ) {
      // It exited with no daemon watching. Adopted, its log is read from where the last daemon's copy
      // ends to the setup step's last marker: what the command printed meanwhile goes into the session's
      // log (masked with the values it was given, withheld when they can no longer be read), and the
      // marker says how it ended (for a record still at creating or cloning, whether the clone failed or
      // the command ran: the record's phase moves on only while a daemon reads the markers).
      // No timeout: it exited before its deadline (or when is not known), and the restart may come after
      // it; reading its log must not be taken for the session running late.
      plan.adopted.push({
        request,
        agent,
        adopted: {
          container: container.Names[0] ?? container.Id,
          phase: record.phase === 'running' ? 'running' : 'cloning',
          exited: true,
        },
      });
      continue;
    }
    // A container the record says ran but Podman says never started was reset by a restart of its host
    // (Podman 4 makes every container that had not exited `configured` again), as is one Podman 5 says
    // exited at no time: its exit code is no exit code (0), never a success.
    // Tearing down after a stop or a failed setup before the command ran (a record of a daemon that kept
    // no decided outcome): the container's exit code is the setup step's or podman's, never the command's.
    const before = record.phase === 'tearing_down' ? lastRunPhase(record) : undefined;
    const commandNeverRan = before === 'creating' || before === 'cloning';
    const reset =
      exitedByRestart ||
      (container !== undefined &&
        NEVER_STARTED_STATES.has(container.State) &&
        (record.phase === 'running' || record.phase === 'tearing_down'));
    if (
      container &&
      !reset &&
      !commandNeverRan &&
      exitCode !== undefined &&
      (record.phase === 'running' || record.phase === 'tearing_down')
    ) {
      const kind = kindOfExitCode(exitCode, agent?.exitCodes);
      plan.finished.push({
        request,
        outcome: {
          outcome: isNotFailedKind(kind) ? 'succeeded' : 'failed',
          kind,
          phase: 'running',
          exitCode,
          ...signalField(exitCode),
          // Its container is removed with what Podman kept of its output: the session's log ends where
          // the daemon that died last read it.
          message: `recovered after a daemon restart: the container had exited with code ${exitCode} (${kind}); what it printed while no daemon watched, if anything, is not in the session's log`,
        },
      });
      continue;
    }
    // A container that never started never ran the command. One that started and exited while no
    // daemon watched may have: the clone and the command run in one container, and the record's phase
    // moves on only while a daemon reads the setup step's markers.
    const never = container !== undefined && NEVER_STARTED_STATES.has(container.State);
    plan.finished.push({
      request,
      outcome: abandoned(
        record,
        container === undefined
          ? record.phase === 'creating' && record.containerCallStarted === true
            ? `the daemon stopped while the session was creating, after it had started the podman call that makes its container, and no container of it is left, so whether its command ran is not known (a container torn down before its record said so leaves none either): it is not run again, trigger it again if it should run`
            : `the daemon stopped while the session was ${record.phase} and its container is gone`
          : reset
            ? `the daemon stopped while the session was ${record.phase}; its container is ${exitedByRestart ? `${container.State} with no exit time` : `${container.State} again`}, as Podman leaves a container that was running when its host restarted, so how the agent's command ended is not known`
            : never
              ? `the daemon stopped while the session was ${record.phase}; its container never ran the command`
              : commandNeverRan
                ? `the daemon stopped while the session was ${record.phase}, before its command ran (it had got to ${before}); its container ${container.State === 'exited' ? `exited${exitCode === undefined ? '' : ` with code ${exitCode}`}` : `was ${container.State}`}, which is not the command's exit, and whether a cancel, a timeout or a failed setup ended it is not known`
                : `the daemon stopped while the session was ${record.phase}; its container ${container.State === 'exited' ? `exited${exitCode === undefined ? '' : ` with code ${exitCode}`}` : `was ${container.State}`} with no daemon watching, ${agent ? 'so' : `and agent ${record.agent} is no longer configured, so its log, which says how far the setup step got, was not read and`} whether the agent's command ran is not known`,
      ),
    });
  }
  return plan;
}

/** The signal a command's exit code says ended it (128 + N), as a live session's outcome names it. */
function signalField(exitCode: number): { signal?: string } {
  const signal = signalOfExit(exitCode);
  return signal === undefined ? {} : { signal };
}

/**
 * The last phase of the run a record reached before its teardown; undefined when its phases do not say
 * (the command may have run).
 */
function lastRunPhase(record: SessionRecord): 'creating' | 'cloning' | 'running' | undefined {
  for (let i = record.phases.length - 1; i >= 0; i--) {
    const phase = record.phases[i]?.phase;
    if (phase === 'creating' || phase === 'cloning' || phase === 'running') return phase;
  }
  return undefined;
}

/**
 * How much earlier than a whole timeout a container's run may end, by a signal, and still count as
 * stopped at its deadline: the daemon stops it at the session's deadline, and the session started a little before the
 * container (the secret, podman's own start), so a container stopped on time ran a little less than
 * the timeout.
 */
const DEADLINE_SLACK_MS = 2_000;

/**
 * Whether an exited container ran to its session's deadline. Its own life, from its creation to its
 * exit, all told by its host's clock, is measured against the timeout: the host's exit time against
 * the deadline by this daemon's clock would take a skew or a step between the clocks for a timeout.
 * Only without those times is the exit time compared with the deadline.
 */
function pastDeadline(
  container: ContainerSummary | undefined,
  deadline: number | undefined,
  timeoutMs: number | undefined,
): boolean {
  if (container === undefined || timeoutMs === undefined) return false;
  const startedAt = container.StartedAt ?? 0;
  const exitedAt = container.ExitedAt ?? 0;
  if (exitedAt <= 0) return false;
  if (startedAt > 0) {
    const from =
      (container.Created ?? 0) > 0 ? Math.min(container.Created ?? startedAt, startedAt) : startedAt;
    const ranMs = (exitedAt - from) * 1000;
    // Within the slack, only a container ended by a signal (the daemon's stop: 143, or 137) was stopped;
    // one that exited by itself just before its deadline was not.
    return ranMs >= timeoutMs || (ranMs >= timeoutMs - DEADLINE_SLACK_MS && (container.ExitCode ?? 0) >= 128);
  }
  return deadline !== undefined && exitedAt * 1000 >= deadline;
}

/**
 * A record whose container, exited, holds what no daemon saw: whether the command ran (creating,
 * cloning: the phase moves on only while a daemon reads the setup step's markers) or what it printed
 * after the last line the daemon that died read (running). Its dead container is kept for the plan
 * (reconcile's keepDead), which adopts it to read its log. Not a running one on a remote host: its
 * output would be withheld (the copies of its values are on that host), and a connection that drops
 * while it is read would leave it abandoned where its exit code says how it ended.
 */
export function readWhenExited(record: SessionRecord, where: { remote?: boolean } = {}): boolean {
  return (
    record.phase === 'creating' || record.phase === 'cloning' || (record.phase === 'running' && !where.remote)
  );
}

/** The last time a Date holds (ECMAScript: 8.64e15 ms from 1970). */
const MAX_DATE_MS = 8.64e15;

/** What recordsFromLabels rebuilds on one host (see there); without, everything. */
export interface RebuildLimits {
  /** Whether a session of this agent could have run on the host. */
  allowed?: (agent: string) => boolean;
  /** Running sessions at most. */
  maxLive?: number;
  /** Records at most. */
  maxRecords?: number;
}

/** The repo of a record rebuilt from labels: the container's labels do not carry it. */
export const LOST_REPO = 'unknown (record lost)';

/**
 * Records for this instance's containers that have no readable record (it was corrupt and quarantined,
 * or deleted): rebuilt from the session and agent labels, so the session can be adopted or settled and
 * answers `status`, `logs` and `cancel` again.
 *
 * A remote host answers with what it likes, so only what agentd could have made there is rebuilt: a
 * session id never used here (`used`: in history or in a record directory, so a session settled long
 * ago is not run again), of an agent that may run on that host (`allowed`), and at most `maxLive`
 * running ones (the most this daemon can have had running there). The rest are left out; their running
 * containers are the caller's to stop.
 */
export function recordsFromLabels(
  containers: readonly ContainerSummary[],
  known: { used(sessionId: string): boolean },
  limits: RebuildLimits = {},
): SessionRecord[] {
  const {
    allowed = () => true,
    maxLive = Number.POSITIVE_INFINITY,
    maxRecords = Number.POSITIVE_INFINITY,
  } = limits;
  const records: SessionRecord[] = [];
  const rebuilt = new Set<string>();
  let live = 0;
  for (const container of containers) {
    if (records.length >= maxRecords) break;
    const id = container.Labels?.[LABEL_SESSION];
    const agent = container.Labels?.[LABEL_AGENT];
    if (id === undefined || !SESSION_ID_PATTERN.test(id) || known.used(id) || rebuilt.has(id)) continue;
    if (agent === undefined || !allowed(agent)) continue;
    const running = LIVE_CONTAINER_STATES.has(container.State);
    if (running && live >= maxLive) continue;
    if (running) live++;
    rebuilt.add(id);
    // The host says when; a time no Date holds (Created: 1e20) is not one.
    const createdMs = (container.Created ?? 0) * 1000;
    const created = new Date(
      Number.isFinite(createdMs) && Math.abs(createdMs) <= MAX_DATE_MS && createdMs !== 0
        ? createdMs
        : Date.now(),
    ).toISOString();
    records.push({
      version: 1,
      id,
      agent,
      repo: LOST_REPO,
      acceptedAt: created,
      startedAt: created,
      phase: running ? 'running' : 'creating',
      phases: [{ phase: running ? 'running' : 'creating', at: created }],
      container: container.Names[0] ?? container.Id,
    });
  }
  return records;
}

export function abandoned(record: SessionRecord, message: string) {
  return { outcome: 'abandoned' as const, phase: record.phase, message };
}

/** The request a record was accepted with, whole (work, key and all), to settle or run it again. */
export function requestOf(record: SessionRecord): SessionRequest {
  return {
    sessionId: record.id,
    agent: record.agent,
    repoUrl: record.repo,
    acceptedAt: record.acceptedAt,
    ...(record.workUnit === undefined ? {} : { workUnit: record.workUnit }),
    ...(record.timeoutMs === undefined ? {} : { timeoutMs: record.timeoutMs }),
    ...(record.request === undefined && record.inputs === undefined
      ? {}
      : {
          work: {
            ...(record.request === undefined ? {} : { request: record.request }),
            inputs: record.inputs ?? [],
          },
        }),
    ...(record.key === undefined ? {} : { key: record.key }),
    // A session from a schedule still holds it back (overlap: skip) once an earlier daemon left it.
    ...(record.scheduledFor === undefined ? {} : { scheduledFor: record.scheduledFor }),
  };
}
