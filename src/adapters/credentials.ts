import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, stat as statPath } from 'node:fs/promises';
import { looksLikeTokenName } from '../config/schema.js';
import type { AgentConfig, CredentialSource } from '../config/types.js';
import { AgentdError } from '../errors.js';
import { kindOf } from '../file-kind.js';
import { SecretValue } from '../secret-value.js';
import { currentUid, userLabel } from './ownership-checks.js';

/** An agent's credential values, wrapped so that they never serialise. */
export interface ResolvedCredentials {
  credentials: { name: string; value: SecretValue }[];
  repoToken?: SecretValue;
}

/** How credential files are read: the daemon's one reader, or a test's. */
export interface ResolveOptions {
  files?: CredentialFiles;
  /** Ends the wait (the session was cancelled); a read already under way is left to finish. */
  signal?: AbortSignal;
}

/** Resolves an agent's credential sources from the daemon's environment and files. */
export async function resolveCredentials(
  agent: AgentConfig,
  env: NodeJS.ProcessEnv = process.env,
  options: ResolveOptions = {},
): Promise<ResolvedCredentials> {
  const credentials: ResolvedCredentials['credentials'] = [];
  let environment = environmentBeforeCredentials(agent);
  for (const credential of agent.credentials) {
    const value = await resolveSource(credential.name, credential.source, env, options);
    credentials.push({
      name: credential.name,
      value: deliverable(credential.name, credential.source, value),
    });
    environment += Buffer.byteLength(credential.name) + (value.byteLength + 2) + POINTER_BYTES;
    if (environment > ENV_TOTAL_MAX) {
      throw refusal(
        `credential ${credential.name}: with the value of ${credential.source.raw} the agent's credentials, env and command come to about ${environment} bytes, more than a command's environment can hold (${ENV_TOTAL_MAX} bytes: Linux's limit under the usual 8 MiB stack), so the command could not be started; hand the large values to the agent as files (a read-only mount) instead`,
        `Hand this agent's large values to it as files (a read-only mount, mounts:) instead of credentials`,
      );
    }
  }
  const repoToken = agent.repoToken
    ? deliverable(
        'repo_token',
        agent.repoToken,
        await resolveSource('repo_token', agent.repoToken, env, options),
      )
    : undefined;
  return repoToken === undefined ? { credentials } : { credentials, repoToken };
}

/**
 * What a command's arguments and environment may hold in all: a quarter of the stack limit, 2 MiB
 * under the usual 8 MiB (ARG_MAX), each string with its NUL and a pointer to it. Past it the exec
 * fails (E2BIG): the setup step's own tail and cat failed while it exported the values, and the
 * session ended `failed` as a clone that failed, after 20 s.
 */
const ENV_TOTAL_MAX = 2 * 1024 * 1024;
const POINTER_BYTES = 8;
/** Room kept for the variables agentd, the image and the setup step set. */
const ENV_RESERVED = 64 * 1024;

/** The bytes of the agent's command and env in its command's environment, and the room kept. */
function environmentBeforeCredentials(agent: AgentConfig): number {
  let bytes = ENV_RESERVED;
  for (const arg of agent.command) bytes += Buffer.byteLength(arg) + 1 + POINTER_BYTES;
  for (const [name, value] of Object.entries(agent.env)) {
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 2 + POINTER_BYTES;
  }
  return bytes;
}

/** A source refused for what it is or holds, with the fix doctor and start's preflight give. */
function refusal(message: string, fix: string): AgentdError {
  return Object.assign(
    new AgentdError('CREDENTIAL_UNRESOLVED', message, { operation: 'resolve credentials' }),
    {
      fix,
    },
  );
}

/**
 * The fix a refused source's error carries (a FIFO, a device, a file too large, a NUL byte, a read
 * past its deadline...), or undefined for one that could not be read at all: a file that does not
 * exist or cannot be opened, a variable that is not set.
 */
export function refusalFix(error: unknown): string | undefined {
  const fix = error instanceof AgentdError ? (error as { fix?: unknown }).fix : undefined;
  return typeof fix === 'string' ? fix : undefined;
}

/** Linux's limit on one environment string, `NAME=value` and its NUL (MAX_ARG_STRLEN). */
const ENV_STRING_MAX = 131_072;
/** How the setup step hands git the repo token (src/runner/setup-script.ts). */
const REPO_TOKEN_VARIABLE = 'GIT_CONFIG_VALUE_0=Authorization: Bearer ';

/**
 * A credential reaches the command as an environment variable and the repo token git as a header in
 * one, so a value is refused that one could not carry. A NUL byte: the setup step's shell drops it,
 * so the command got another value than the one its output is masked for, and printed it in the
 * clear. A value past Linux's limit on one variable: the exec of the command failed (E2BIG), and the
 * session ended `failed` as a command that "cannot be executed".
 */
function deliverable(name: string, source: CredentialSource, value: SecretValue): SecretValue {
  const token = name === 'repo_token';
  const carrier = token ? "the repo token's header" : 'an environment variable';
  const problem = (text: string, fix: string) =>
    refusal(`credential ${name}: the value of ${source.raw} ${text}`, fix);
  if (value.bytes().includes(0)) {
    throw problem(
      `holds a NUL byte, which ${carrier} cannot carry (the agent would be given the value without it); keep NUL bytes out of the value, e.g. encode a binary value in base64`,
      `Keep NUL bytes out of the value of ${source.raw}: encode a binary value, e.g. in base64`,
    );
  }
  const most = ENV_STRING_MAX - 1 - Buffer.byteLength(token ? REPO_TOKEN_VARIABLE : `${name}=`);
  if (value.byteLength > most) {
    throw problem(
      `is ${value.byteLength} bytes, more than ${carrier} can hold (${most} bytes: Linux's limit on one variable is 128 KiB, its name included), so the command could not be started; hand a value this large to the agent as a file (a read-only mount) instead`,
      `Hand a value this large to the agent as a file (a read-only mount, mounts:) instead of ${source.raw}`,
    );
  }
  return value;
}

export async function resolveSource(
  name: string,
  source: CredentialSource,
  env: NodeJS.ProcessEnv,
  options: ResolveOptions = {},
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
    const files = options.files ?? daemonCredentialFiles;
    return new SecretValue(withoutFinalLineEnding(await files.read(name, source, options.signal)));
  } catch (error) {
    if (error instanceof AgentdError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    if (code === 'EACCES' || code === 'EPERM') {
      // The file is there: "check that it exists" and doctor's "Create PATH" sent operators the wrong way.
      const user = userLabel(currentUid());
      throw refusal(
        `credential ${name}: cannot read file ${source.path} (source ${source.raw}): ${code}; the daemon's user, ${user}, may not read it (or search a directory on its path): make it readable by that user, e.g. chown ${currentUid()} ${source.path} && chmod 600 ${source.path}`,
        `Make ${source.path} readable by the daemon's user, ${user}, and no one else: chown ${currentUid()} ${source.path} && chmod 600 ${source.path} (its directories searchable by that user)`,
      );
    }
    throw new AgentdError(
      'CREDENTIAL_UNRESOLVED',
      `credential ${name}: cannot read file ${source.path} (source ${source.raw}): ${code}; check that it exists and the daemon's user can read it`,
      { operation: 'resolve credentials' },
    );
  }
}

/**
 * The fix doctor and start's preflight give for an env: source whose variable is not set (start logs
 * it): the variable by name, unless the name looks like a credential value pasted in its place, which
 * is not repeated, as resolveSource does not repeat it.
 */
export function unsetVariableFix(name: string, where: string): string {
  return looksLikeTokenName(name)
    ? `Put the value in the daemon's environment under a name (${where}) and write env:NAME instead of what looks like a pasted value, or use a file: source`
    : `Set ${name} in the daemon's environment (${where}), or use a file: source`;
}

type FileSource = { path: string; raw: string };
/** Reads a credential file's bytes (readCredentialFile; a test's stand-in). */
export type ReadFile = (name: string, source: FileSource) => Promise<Buffer>;

/** Long enough for a slow network mount; far shorter than any session. */
export const CREDENTIAL_FILE_DEADLINE_MS = 10_000;

/**
 * Reads `file:` sources one at a time, each within a deadline. A file on a hung mount (an NFS server
 * gone) blocks its read in the kernel, holding one of the few threads Node's file calls share: were
 * every session's read to start, a handful would stall every file the daemon writes (its records). So
 * a read waits for the one before it: a hung one holds a single thread, and the reads behind it end
 * at their deadline with the reason, until the mount answers again.
 */
export class CredentialFiles {
  private last: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly readFile: ReadFile = readCredentialFile,
    private readonly deadlineMs = CREDENTIAL_FILE_DEADLINE_MS,
  ) {}

  read(name: string, source: FileSource, signal?: AbortSignal): Promise<Buffer> {
    const turn = this.last.then(() => this.readFile(name, source));
    this.last = turn.catch(() => {});
    return new Promise<Buffer>((resolve, reject) => {
      const stop = (error: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        reject(error);
      };
      const onAbort = () =>
        stop(
          new AgentdError('CREDENTIAL_UNRESOLVED', `credential ${name}: cancelled while its file was read`, {
            operation: 'resolve credentials',
          }),
        );
      const timer = setTimeout(
        () =>
          stop(
            refusal(
              `credential ${name}: reading file ${source.path} (source ${source.raw}) did not finish within ${this.deadlineMs / 1000}s (this one or a credential file read before it); check the mount it is on: a network mount that does not answer hangs every read`,
              `Check the mount ${source.path} is on, and that of any credential file read before it: a network mount that does not answer hangs every read`,
            ),
          ),
        this.deadlineMs,
      );
      timer.unref();
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      turn.then(
        (bytes) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(bytes);
        },
        (error: unknown) => stop(error instanceof Error ? error : new Error(String(error))),
      );
    });
  }
}

/** The daemon's one reader: its sessions and preflight share the queue. */
const daemonCredentialFiles = new CredentialFiles();

/**
 * A `file:` source's bytes. Only a regular file, opened without waiting (a FIFO nobody writes to would
 * hold the session in `resolving` for ever, and a thread of the pool with it; a device like /dev/zero
 * would fill the daemon's memory), and at most MAX_CREDENTIAL_FILE_BYTES.
 */
async function readCredentialFile(name: string, source: FileSource): Promise<Buffer> {
  const fix = `Point ${source.raw} at a regular file that holds only the value`;
  const notRegular = (stat: Stats) =>
    refusal(
      `credential ${name}: file ${source.path} (source ${source.raw}) is ${kindOf(stat)}, not a regular file; point the source at a file`,
      fix,
    );
  let handle: FileHandle;
  try {
    handle = await open(source.path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    // Some kinds cannot be opened at all: a socket (ENXIO), a device without its driver (ENXIO, ENODEV),
    // a device or directory the daemon's user may not read (EACCES). Creating the path is not their fix.
    const stat = await statOrUndefined(source.path);
    if (stat !== undefined && !stat.isFile()) throw notRegular(stat);
    throw error;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw notRegular(stat);
    if (stat.size > MAX_CREDENTIAL_FILE_BYTES) {
      throw refusal(
        `credential ${name}: file ${source.path} (source ${source.raw}) is ${stat.size} bytes; a credential file is at most ${MAX_CREDENTIAL_FILE_BYTES} bytes`,
        fix,
      );
    }
    const bytes = await readAtMost(handle, stat.size, MAX_CREDENTIAL_FILE_BYTES);
    if (bytes === undefined) {
      throw refusal(
        `credential ${name}: file ${source.path} (source ${source.raw}) reads on past ${MAX_CREDENTIAL_FILE_BYTES} bytes though its size says ${stat.size} (a file of /proc or /sys, or one still growing); a credential file is at most ${MAX_CREDENTIAL_FILE_BYTES} bytes: point the source at a file that holds only the value`,
        fix,
      );
    }
    return bytes;
  } finally {
    await handle.close();
  }
}

/** What the path leads to (a symbolic link followed), or undefined when that cannot be found out. */
async function statOrUndefined(path: string): Promise<Stats | undefined> {
  return statPath(path).catch(() => undefined);
}

/**
 * A file's bytes up to its end, or undefined when it holds more than `limit`. Not `readFile`, which
 * trusts the size its stat gives: a file that says 0 bytes (/proc/self/pagemap, a FUSE file) is read
 * to its end however far that is (measured: the daemon grew by 200 MB a second, and every credential
 * file read behind it ended at its deadline).
 */
async function readAtMost(handle: FileHandle, sizeHint: number, limit: number): Promise<Buffer | undefined> {
  // Room for a page past the limit: sizes stay multiples of 8, which /proc/self/pagemap reads need.
  const most = limit + 4096;
  let buffer = Buffer.alloc(Math.min(Math.max(sizeHint + 1, 4096), most));
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (length > limit) return undefined;
      const larger = Buffer.alloc(Math.min(buffer.length * 2, most));
      buffer.copy(larger, 0, 0, length);
      buffer = larger;
    }
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
    if (bytesRead === 0) return length > limit ? undefined : buffer.subarray(0, length);
    length += bytesRead;
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
