import type { ResolvedCredentials } from '../adapters/credentials.js';
import type { AgentConfig } from '../config/types.js';
import { parseRepoUrl } from '../repo-url.js';
import { MIN_MASKED_LENGTH } from '../runner/mask-forms.js';
import type { SecretValue } from '../secret-value.js';
import { repoTokenUse } from './repo-token.js';
import type { SessionInvocation, SessionRequest, SessionSpec } from './types.js';

/** A session ready to run; credential values stay wrapped until the runner needs them. */
export interface AssembledSession {
  spec: Omit<SessionSpec, 'credentials'> & { credentials: { name: string; value: SecretValue }[] };
  invocation: Omit<SessionInvocation, 'repoToken'> & { repoToken?: SecretValue };
}

export function assembleSession(
  request: SessionRequest,
  agent: AgentConfig,
  resolved: ResolvedCredentials,
): AssembledSession {
  const timeoutMs = request.timeoutMs ?? agent.timeoutMs;
  const repo = parseRepoUrl(request.repoUrl);
  // The trigger check accepted only URLs that parse; one that does not (an old record) gets no token.
  const token = repo.ok ? repoTokenUse(agent, repo.repo) : { kind: 'withheld' as const, reason: '' };
  const repoToken = token.kind === 'send' ? resolved.repoToken : undefined;
  const notices =
    token.kind === 'withheld' && token.reason !== '' ? [`${token.reason}; cloning without it`] : [];
  // Masking leaves texts this short alone (they would mask ordinary output): the operator is told,
  // in the session's output, that the agent's printing of this one would be shown as it is.
  const short = [
    ...resolved.credentials.filter((c) => tooShortToMask(c.value)).map((c) => `credential ${c.name}`),
    ...(repoToken !== undefined && tooShortToMask(repoToken) ? ['repo_token'] : []),
  ];
  for (const name of short)
    notices.push(
      `${name} is shorter than ${MIN_MASKED_LENGTH} characters, so it is not masked in this output nor looked for in what the agent leaves in /agentd/out (a text that short would mask ordinary output); use a longer value`,
    );
  return {
    spec: {
      agent: agent.name,
      image: agent.image,
      command: [...agent.command],
      credentials: resolved.credentials,
      env: { ...agent.env },
      network: agent.network,
      ...(agent.userNamespace === 'auto' ? { userNamespace: 'auto' as const } : {}),
      resources: agent.resources,
      capAdd: [...agent.capAdd],
      mounts: agent.mounts.map((m) => ({ ...m })),
      caches: agent.caches.map((c) => ({ ...c })),
      exitCodes: { ...agent.exitCodes },
      ...(agent.context === undefined ? {} : { context: agent.context }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    },
    invocation: {
      sessionId: request.sessionId,
      repoUrl: request.repoUrl,
      ...(request.workUnit === undefined ? {} : { workUnit: request.workUnit }),
      ...(repoToken === undefined ? {} : { repoToken }),
      ...(notices.length === 0 ? {} : { notices }),
      ...(request.work === undefined ? {} : { work: request.work }),
    },
  };
}

/** A value masking does not look for: 1 to 3 characters as text (without a final line ending). */
function tooShortToMask(value: SecretValue): boolean {
  const text = value
    .bytes()
    .toString('utf8')
    .replace(/\r?\n$/, '');
  return text.length > 0 && text.length < MIN_MASKED_LENGTH;
}

/** Unwraps the values at the runner boundary. */
export function revealSession(session: AssembledSession): {
  spec: SessionSpec;
  invocation: SessionInvocation;
} {
  const { repoToken, ...invocation } = session.invocation;
  return {
    spec: {
      ...session.spec,
      credentials: session.spec.credentials.map((c) => ({ name: c.name, value: c.value.bytes() })),
    },
    invocation: { ...invocation, ...(repoToken === undefined ? {} : { repoToken: repoToken.bytes() }) },
  };
}
