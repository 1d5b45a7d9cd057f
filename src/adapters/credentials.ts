import { readFile } from 'node:fs/promises';
import type { AgentConfig, CredentialSource } from '../config/types.js';
import { AgentdError } from '../errors.js';
import { SecretValue } from '../secret-value.js';

/** An agent's credential values, wrapped so that they never serialise. */
export interface ResolvedCredentials {
  credentials: { name: string; value: SecretValue }[];
  repoToken?: SecretValue;
}

/** Resolves an agent's credential sources from the daemon's environment and files. */
export async function resolveCredentials(
  agent: AgentConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedCredentials> {
  const credentials: ResolvedCredentials['credentials'] = [];
  for (const credential of agent.credentials) {
    credentials.push({
      name: credential.name,
      value: await resolveSource(credential.name, credential.source, env),
    });
  }
  const repoToken = agent.repoToken ? await resolveSource('repo_token', agent.repoToken, env) : undefined;
  return repoToken === undefined ? { credentials } : { credentials, repoToken };
}

export async function resolveSource(
  name: string,
  source: CredentialSource,
  env: NodeJS.ProcessEnv,
): Promise<SecretValue> {
  if (source.kind === 'env') {
    const value = env[source.name];
    if (value === undefined) {
      throw new AgentdError(
        'CREDENTIAL_UNRESOLVED',
        `credential ${name}: environment variable ${source.name} (source ${source.raw}) is not set in the daemon's environment; set it where agentd start runs`,
        { operation: 'resolve credentials' },
      );
    }
    return new SecretValue(value);
  }
  try {
    return new SecretValue(withoutFinalLineEnding(await readFile(source.path)));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new AgentdError(
      'CREDENTIAL_UNRESOLVED',
      `credential ${name}: cannot read file ${source.path} (source ${source.raw}): ${code}; check that it exists and the daemon's user can read it`,
      { operation: 'resolve credentials' },
    );
  }
}

/**
 * A file's bytes as the credential: never decoded as text, so a Latin-1 or binary value arrives
 * exactly. One final line ending (`\n` or `\r\n`), which editors add, is not part of the value.
 */
export function withoutFinalLineEnding(bytes: Buffer): Buffer {
  let end = bytes.length;
  if (bytes[end - 1] === 0x0a) {
    end--;
    if (bytes[end - 1] === 0x0d) end--;
  }
  return bytes.subarray(0, end);
}
