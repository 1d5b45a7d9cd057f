import type { ContainerSummary } from '../adapters/podman.js';
import type { AgentConfig } from '../config/types.js';
import { LABEL_SESSION } from '../constants.js';
import type { RecoveryPlan } from '../machines/daemon.machine.js';
import type { AdoptedSession } from '../machines/session.machine.js';
import type { SessionRecord } from '../sessions/records.js';
import type { SessionRequest } from '../sessions/types.js';

const LIVE_STATES = new Set(['running', 'paused', 'stopping']);

/**
 * Decides the fate of every session an earlier daemon of this instance accepted but did not finish:
 * queued ones run again, one whose container still runs is adopted, one whose container exited after
 * its command ran gets that outcome, and the rest are abandoned with a reason.
 */
export function planRecovery(
  unfinished: readonly SessionRecord[],
  containers: readonly ContainerSummary[],
  agents: readonly AgentConfig[],
  now: number = Date.now(),
): RecoveryPlan {
  const plan: RecoveryPlan = { queued: [], adopted: [], finished: [] };
  const bySession = new Map(containers.map((c) => [c.Labels?.[LABEL_SESSION] ?? '', c]));
  const ordered = [...unfinished].sort((a, b) => a.acceptedAt.localeCompare(b.acceptedAt));
  for (const record of ordered) {
    const request = requestOf(record);
    const agent = agents.find((a) => a.name === record.agent);
    const container = bySession.get(record.id);
    // The session's timeout as assembleSession applies it: the trigger's, else the agent's.
    const timeoutMs = record.timeoutMs ?? agent?.timeoutMs;
    const deadline =
      timeoutMs === undefined || !record.startedAt ? undefined : Date.parse(record.startedAt) + timeoutMs;
    if (container && LIVE_STATES.has(container.State)) {
      if (!agent) {
        plan.finished.push({
          request,
          outcome: abandoned(record, `agent ${record.agent} is no longer configured`),
        });
        continue;
      }
      const adopted: AdoptedSession = {
        container: container.Names[0] ?? container.Id,
        phase: record.phase === 'cloning' ? 'cloning' : 'running',
        ...(deadline === undefined ? {} : { remainingMs: Math.max(0, deadline - now) }),
      };
      plan.adopted.push({ request, agent, adopted });
      continue;
    }
    if (record.phase === 'queued') {
      if (agent) plan.queued.push({ request, agent });
      else
        plan.finished.push({
          request,
          outcome: abandoned(record, `agent ${record.agent} is no longer configured`),
        });
      continue;
    }
    const exitCode = container?.ExitCode;
    const exitedAt = (container?.ExitedAt ?? 0) > 0 ? (container?.ExitedAt ?? 0) * 1000 : undefined;
    if (
      deadline !== undefined &&
      exitedAt !== undefined &&
      exitedAt >= deadline &&
      (record.phase === 'cloning' || record.phase === 'running')
    ) {
      // It ran past its deadline with no daemon to stop it: Podman's own --timeout did.
      plan.finished.push({
        request,
        outcome: {
          outcome: 'timed_out',
          phase: record.phase,
          ...(exitCode === undefined || exitCode < 0 ? {} : { exitCode }),
          message: `session exceeded its timeout of ${Math.round((timeoutMs ?? 0) / 1000)}s while ${record.phase}; recovered after a daemon restart: its container was stopped at the deadline`,
        },
      });
      continue;
    }
    if (
      container &&
      exitCode !== undefined &&
      (record.phase === 'running' || record.phase === 'tearing_down')
    ) {
      plan.finished.push({
        request,
        outcome: {
          outcome: exitCode === 0 ? 'succeeded' : 'failed',
          phase: 'running',
          exitCode,
          message: `recovered after a daemon restart: the container had exited with code ${exitCode}`,
        },
      });
      continue;
    }
    plan.finished.push({
      request,
      outcome: abandoned(
        record,
        container
          ? `the daemon stopped while the session was ${record.phase}; its container never ran the command`
          : `the daemon stopped while the session was ${record.phase} and its container is gone`,
      ),
    });
  }
  return plan;
}

function abandoned(record: SessionRecord, message: string) {
  return { outcome: 'abandoned' as const, phase: record.phase, message };
}

function requestOf(record: SessionRecord): SessionRequest {
  return {
    sessionId: record.id,
    agent: record.agent,
    repoUrl: record.repo,
    acceptedAt: record.acceptedAt,
    ...(record.workUnit === undefined ? {} : { workUnit: record.workUnit }),
    ...(record.timeoutMs === undefined ? {} : { timeoutMs: record.timeoutMs }),
  };
}
