import type { AgentConfig } from '../config/types.js';
import { MAX_DURATION_MS, parseDuration } from '../duration.js';
import { describeRepoProblem, parseRepoUrl } from '../repo-url.js';
import { repoTokenUse } from './repo-token.js';

export interface TriggerFields {
  agent: string;
  repo?: string;
  workUnit?: string;
  timeout?: string;
}

export type TriggerRejection = {
  code: 'unknown_agent' | 'no_repo' | 'bad_repo' | 'repo_token_withheld' | 'bad_timeout';
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
  const rawUrl = trigger.repo ?? agent.repo;
  if (rawUrl === undefined) {
    return {
      ok: false,
      code: 'no_repo',
      reason: `agent "${agent.name}" has no default repo; pass a repository URL or set agents[].repo in the config`,
    };
  }
  const repo = parseRepoUrl(rawUrl);
  if (!repo.ok) {
    return { ok: false, code: 'bad_repo', reason: `repository ${describeRepoProblem(rawUrl, repo)}` };
  }
  // From here on only the normalised URL is used: it is what was checked.
  const repoUrl = repo.repo.url;
  const token = repoTokenUse(agent, repo.repo);
  if (token.kind === 'withheld' && agent.repoTokenRequired) {
    return {
      ok: false,
      code: 'repo_token_withheld',
      reason: `${token.reason}; agent "${agent.name}" sets repo_token_required: true, so it does not run without it`,
    };
  }
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
