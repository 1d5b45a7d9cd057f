import type { AgentConfig } from '../config/types.js';
import { MAX_DURATION_MS, parseDuration } from '../duration.js';

export interface TriggerFields {
  agent: string;
  repo?: string;
  workUnit?: string;
  timeout?: string;
}

export type TriggerRejection = {
  code: 'unknown_agent' | 'no_repo' | 'bad_repo' | 'bad_timeout';
  reason: string;
};
export type TriggerCheck =
  | { ok: true; agent: AgentConfig; repoUrl: string; timeoutMs?: number }
  | ({ ok: false } & TriggerRejection);

/** Decides whether a trigger can become a session, before anything is created. */
export function checkTrigger(agents: readonly AgentConfig[], trigger: TriggerFields): TriggerCheck {
  const agent = agents.find((a) => a.name === trigger.agent);
  if (!agent) {
    const known = agents.map((a) => a.name).join(', ') || 'none';
    return {
      ok: false,
      code: 'unknown_agent',
      reason: `unknown agent "${trigger.agent}"; known agents: ${known}`,
    };
  }
  const repoUrl = trigger.repo ?? agent.repo;
  if (repoUrl === undefined) {
    return {
      ok: false,
      code: 'no_repo',
      reason: `agent "${agent.name}" has no default repo; pass a repository URL or set agents[].repo in the config`,
    };
  }
  const problem = repoUrlProblem(repoUrl);
  if (problem)
    return { ok: false, code: 'bad_repo', reason: `repository ${JSON.stringify(repoUrl)} ${problem}` };
  if (trigger.timeout === undefined) return { ok: true, agent, repoUrl };
  const timeoutMs = parseDuration(trigger.timeout);
  if (timeoutMs === undefined || timeoutMs > MAX_DURATION_MS) {
    return {
      ok: false,
      code: 'bad_timeout',
      reason:
        timeoutMs === undefined
          ? `timeout ${JSON.stringify(trigger.timeout)} is not a duration; write a number with a unit like 90s, 10m or 2h`
          : `timeout ${JSON.stringify(trigger.timeout)} is too long; the longest supported timeout is 596h`,
    };
  }
  return { ok: true, agent, repoUrl, timeoutMs };
}

/** Why a repository URL is not acceptable, or undefined when it is. */
export function repoUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a URL; use https://host/path.git, http://host/path.git or git://host/path.git';
  }
  if (!['https:', 'http:', 'git:'].includes(parsed.protocol))
    return 'must start with https://, http:// or git://';
  if (parsed.username || parsed.password) {
    return 'must not contain a user or password; use repo_token for authentication';
  }
  if (!parsed.hostname) return 'has no host';
  return undefined;
}
