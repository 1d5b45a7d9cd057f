import type { ResolvedCredentials } from '../adapters/credentials.js';
import type { AgentConfig } from '../config/types.js';
import type { SecretValue } from '../secret-value.js';
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
  return {
    spec: {
      agent: agent.name,
      image: agent.image,
      command: [...agent.command],
      credentials: resolved.credentials,
      env: { ...agent.env },
      network: agent.network,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    },
    invocation: {
      sessionId: request.sessionId,
      repoUrl: request.repoUrl,
      ...(request.workUnit === undefined ? {} : { workUnit: request.workUnit }),
      ...(resolved.repoToken === undefined ? {} : { repoToken: resolved.repoToken }),
    },
  };
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
      credentials: session.spec.credentials.map((c) => ({ name: c.name, value: c.value.reveal() })),
    },
    invocation: { ...invocation, ...(repoToken === undefined ? {} : { repoToken: repoToken.reveal() }) },
  };
}
