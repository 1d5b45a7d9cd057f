import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { looksLikeTokenName } from '../config/schema.js';
import type { AgentConfig, CredentialSource } from '../config/types.js';
import { AgentdError } from '../errors.js';
import { SecretValue } from '../secret-value.js';
import { kindOf } from './state-files.js';

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
      // env:ghp_… is a token pasted where its variable's name belongs: the message, which reaches the
      // session's record, logs and webhooks, does not repeat it.
      throw new AgentdError(
        'CREDENTIAL_UNRESOLVED',
        looksLikeTokenName(source.name)
          ? `credential ${name}: the environment variable its source names is not set in the daemon's environment, and the name looks like a credential value pasted in place of a name (not repeated here); put the value in the daemon's environment under a name and write env:NAME`
          : `credential ${name}: environment variable ${source.name} (source ${source.raw}) is not set in the daemon's environment; set it where agentd start runs`,
        { operation: 'resolve credentials' },
      );
    }
    return new SecretValue(value);
  }
  try {
    return new SecretValue(withoutFinalLineEnding(await readCredentialFile(name, source)));
  } catch (error) {
    if (error instanceof AgentdError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new AgentdError(
      'CREDENTIAL_UNRESOLVED',
      `credential ${name}: cannot read file ${source.path} (source ${source.raw}): ${code}; check that it exists and the daemon's user can read it`,
      { operation: 'resolve credentials' },
    );
  }
}

/**
 * A `file:` source's bytes. Only a regular file, opened without waiting (a FIFO nobody writes to would
 * hold the session in `resolving` for ever, and a thread of the pool with it; a device like /dev/zero
 * would fill the daemon's memory), and at most MAX_CREDENTIAL_FILE_BYTES.
 */
async function readCredentialFile(name: string, source: { path: string; raw: string }): Promise<Buffer> {
  const handle = await open(source.path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = await handle.stat();
    const problem = !stat.isFile()
      ? `is ${kindOf(stat)}, not a regular file; point the source at a file`
      : stat.size > MAX_CREDENTIAL_FILE_BYTES
        ? `is ${stat.size} bytes; a credential file is at most ${MAX_CREDENTIAL_FILE_BYTES} bytes`
        : undefined;
    if (problem !== undefined) {
      throw new AgentdError(
        'CREDENTIAL_UNRESOLVED',
        `credential ${name}: file ${source.path} (source ${source.raw}) ${problem}`,
        {
          operation: 'resolve credentials',
        },
      );
    }
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** Far above any credential (Podman takes a value under 512,000 bytes): a bound on what is read. */
const MAX_CREDENTIAL_FILE_BYTES = 16 * 1024 * 1024;

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
