import type { AgentConfig } from '../config/types.js';
import type { RepoUrl } from '../repo-url.js';

/** Whether a session's clone gets the agent's repo_token, and why not. */
export type RepoTokenUse =
  /** The agent has no repo_token. */
  { kind: 'none' } | { kind: 'send'; origin: string } | { kind: 'withheld'; reason: string };

/**
 * The token goes only to the origins the agent allows (its repo's and `repo_token_hosts`), and only
 * over https, or http when `allow_insecure_http` is set. The config loader has already refused
 * settings under which the agent's own origins could not receive it.
 */
export function repoTokenUse(agent: AgentConfig, repo: RepoUrl): RepoTokenUse {
  if (agent.repoToken === undefined) return { kind: 'none' };
  const allowed = agent.repoTokenOrigins.join(', ') || 'none';
  if (!agent.repoTokenOrigins.includes(repo.origin)) {
    return {
      kind: 'withheld',
      reason: `repo_token is not sent to ${repo.origin}: it goes only to the origin of the agent's repo and to repo_token_hosts (${allowed})`,
    };
  }
  if (repo.scheme === 'git') {
    return { kind: 'withheld', reason: 'repo_token is not sent over git://, which has no authentication' };
  }
  if (repo.scheme === 'http' && !agent.allowInsecureHttp) {
    return {
      kind: 'withheld',
      reason: 'repo_token is not sent over plain http:// unless the agent sets allow_insecure_http: true',
    };
  }
  return { kind: 'send', origin: repo.origin };
}
