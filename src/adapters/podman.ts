import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, constants, existsSync, fstatSync, openSync, readSync, unlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { execa } from 'execa';
import {
  CONTAINER_LOG_MAX_BYTES,
  LABEL_AGENT,
  LABEL_CACHE,
  LABEL_INSTANCE,
  MAX_SECRET_BYTES,
  OUTPUT_LINE_MAX_BYTES,
  SYSTEM_PATH,
} from '../constants.js';
import { AgentdError, errorMessage } from '../errors.js';
import { type CacheBound, cacheBoundProblem, cacheVolumeOptions, makeCacheImage } from './cache-image.js';
import { type ChunkSource, COPY_DIR_PREFIX, openOutputChannels } from './output-channel.js';
import { OutputReader } from './output-reader.js';
import {
  classifyPodmanFailure,
  imageNotFound,
  PodmanError,
  type PodmanFailure,
  unreachableOutput,
} from './podman-errors.js';
import { processEndCause, runProcess } from './podman-process.js';
import {
  type ContainerInspect,
  type ContainerSummary,
  containerInspectSchema,
  containerListSchema,
  securityInfoSchema,
  volumeInspectSchema,
} from './podman-schemas.js';

export type { ContainerInspect, ContainerSummary };

export interface PodmanClientOptions {
  /** The podman binary; `podman` on PATH by default. */
  bin?: string;
  /** The engine to drive (`podman --url`): unix://, ssh:// or tcp://; the podman command's own when absent. */
  url?: string;
  /** The private key for an ssh:// url (`podman --identity`). */
  identity?: string;
  /** Deadline for every short podman call. */
  timeoutMs?: number;
  /** Deadline of the `podman pull` of a registry image a container needs and the host lacks (10 minutes by default). */
  pullTimeoutMs?: number;
  /** How long a failed pull is remembered (PULL_FAILURE_MEMORY_MS by default). */
  pullFailureMemoryMs?: number;
  /** The steady clock, in ms, that times the remembered pull failures (`performance.now` by default). */
  now?: () => number;
  /** Observes every podman invocation (argv only; values never travel on argv). */
  onCall?: (argv: readonly string[]) => void;
  /**
   * Where podman runs. Podman 4.3's conmon writes a file named `oom` into its working directory when a
   * container is killed for memory: an agent would leave one in whatever directory the daemon started
   * in (`/` under systemd). The daemon gives its state dir, and each removal of containers deletes the
   * file there (nothing reads it: see removeOomFile).
   */
  cwd?: string;
  /**
   * How long the output of a streaming podman (`run`, `start --attach`, `logs`) may stay open after
   * podman exited while none of it comes and the daemon does not hold it back (OUTPUT_AFTER_EXIT_MS by
   * default): then it is no longer read, and `warn` says so.
   */
  outputAfterExitMs?: number;
  /** Told what the daemon's log should warn of (the daemon gives its logger's warn). */
  warn?: (fields: Record<string, unknown>, message: string) => void;
}

export interface CallOptions {
  /** Written to podman's stdin as is (bytes are never re-encoded). */
  input?: string | Uint8Array;
  timeoutMs?: number;
  /** The setting that gives timeoutMs, for the error of a call it ended (daemon.podman_timeout when absent). */
  timeoutSetting?: string;
  signal?: AbortSignal;
  /** Exit codes that are answers, not failures (e.g. 1 for `image exists`). */
  okExitCodes?: number[];
  image?: string;
  /** Added to the environment podman runs with. */
  env?: Record<string, string>;
  /** Stdout read at most (100 MB when absent): more fails the call. */
  maxStdoutBytes?: number;
}

export interface CreateContainerOptions {
  name: string;
  image: string;
  labels: Record<string, string>;
  env: Record<string, string>;
  /** Mount-type secrets: podman secret name and target path, readable by root only. */
  secrets: { name: string; target: string }[];
  network: string;
  /**
   * `auto`: a user namespace of its own, a range of USER_NAMESPACE_SIZE host uids from the engine's
   * `containers` entry in /etc/subuid and /etc/subgid (`--userns=auto`); the host's when absent.
   */
  userns?: 'auto';
  /** Engine-enforced deadline in whole seconds. */
  timeoutSeconds?: number;
  /** Resource limits (`--memory`, `--memory-swap`, `--cpus`, `--pids-limit`). */
  limits?: { memoryBytes: number; memorySwapBytes: number; cpus?: number; pids: number };
  /** With a list, every capability is dropped (`--cap-drop all`) and only these are added back. */
  capAdd?: string[];
  /** `--security-opt no-new-privileges`: no setuid binary or file capability raises a process's privileges. */
  noNewPrivileges?: boolean;
  /**
   * `--security-opt seccomp=PATH`: a profile file instead of Podman's default (seccomp-profile.ts). Podman
   * reads it where the engine runs, so only for the local Podman.
   */
  seccompProfile?: string;
  /** Size-limited tmpfs mounts (rw, exec, nosuid, nodev). */
  tmpfs?: { path: string; bytes: number; mode: string }[];
  /**
   * Host paths bound into the container (nosuid, nodev); paths hold no `:` or `,` (config checks it).
   * `chown`: Podman hands the source to the container's root first (`U`), for a directory of the
   * session's own in a user namespace.
   */
  mounts?: { source: string; target: string; readOnly: boolean; chown?: boolean }[];
  /**
   * Named volumes (nosuid, nodev), read-write; `labels` are for creating one that is missing, `bound` for
   * one whose size is bounded (a filesystem in a file on this machine).
   */
  volumes?: { name: string; target: string; labels?: Record<string, string>; bound?: CacheBound }[];
  entrypoint: string[];
  args: string[];
  signal?: AbortSignal;
}

export interface AttachedRun {
  /** Resolves with the container's exit code as podman reports it, once all its output was handed on. */
  exitCode: Promise<number>;
  /** Podman's own messages on stderr before the container printed anything: the last 50, each cut at 1000 characters. */
  stderr: () => string;
  /** Stops reading the container's output until resume(): the container blocks on its pipe. */
  pause(): void;
  resume(): void;
}

/**
 * The container engine as agentd uses it: every operation the daemon, reconciliation and the runner
 * machine need, each with a deadline and an AbortSignal. PodmanClient implements it over the podman
 * CLI; unit tests put a fake in its place (test/helpers/fake-podman.ts).
 */
export interface PodmanPort {
  /**
   * The engine is reached over a connection that can drop (a remote host): an attachment that ends
   * says nothing about the container until the engine confirms it.
   */
  readonly remote?: boolean;
  version(signal?: AbortSignal): Promise<string>;
  /** The engine's version within `timeoutMs`: whether the host answers at all. */
  probe(timeoutMs: number, signal?: AbortSignal): Promise<string>;
  imageExists(image: string, signal?: AbortSignal): Promise<boolean>;
  /** Creates a secret; the value travels on stdin as its exact bytes, never on a command line. */
  createSecret(
    name: string,
    value: Uint8Array,
    labels: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<void>;
  listSecretNames(signal?: AbortSignal): Promise<string[]>;
  secretLabels(names: string[], signal?: AbortSignal): Promise<Map<string, Record<string, string>>>;
  /** Removes secrets; one that is already gone counts as removed. */
  removeSecrets(names: string[], signal?: AbortSignal): Promise<void>;
  createContainer(options: CreateContainerOptions): Promise<string>;
  /**
   * Creates, starts and follows a container in one call (`podman run`): its output goes to onLine as
   * it arrives, as with startAttached. A failure to create or start it is the run's exit code (125,
   * 126, 127) with Podman's message on stderr.
   */
  runAttached(options: CreateContainerOptions, onLine: OutputHandler, signal?: AbortSignal): AttachedRun;
  /** Starts a container attached: its output goes to onLine as it arrives, in lines of at most OUTPUT_LINE_MAX_BYTES. */
  startAttached(name: string, onLine: OutputHandler, signal?: AbortSignal): AttachedRun;
  /** Follows a running container's output from `since` (RFC 3339) until it exits. */
  followLogs(
    name: string,
    since: string | undefined,
    onLine: OutputHandler,
    signal?: AbortSignal,
  ): AttachedRun;
  /**
   * Reads what Podman still holds of a container's output from `since` (RFC 3339), without following:
   * the catch-up after a follow that ended before the output did (Podman 4 ends `logs --follow` at the
   * container's exit even when its reader is behind).
   */
  readLogs(name: string, since: string | undefined, onLine: OutputHandler, signal?: AbortSignal): AttachedRun;
  wait(name: string, signal?: AbortSignal): Promise<number>;
  /** Undefined when there is no such container. */
  inspectContainer(name: string, signal?: AbortSignal): Promise<ContainerInspect | undefined>;
  /** The files of a directory inside a running container, as bytes (an adopted session's secret copies). */
  readContainerFiles(name: string, dir: string, signal?: AbortSignal): Promise<Map<string, Buffer>>;
  /**
   * Podman's own copies, on this machine, of the secrets an exited container (as inspected) was created
   * with, by secret name (an exited container cannot be read through exec). Not for a remote host's.
   */
  readSecretCopies(container: ContainerInspect): Promise<Map<string, Buffer>>;
  /** Unpacks a tar archive (bytes, on stdin) into a container at / (`podman cp - NAME:/`), created or running. */
  copyIntoContainer(name: string, archive: Uint8Array, signal?: AbortSignal): Promise<void>;
  /** Copies a file out of a container, running or exited, to a path on this machine. */
  copyFromContainer(name: string, from: string, to: string, signal?: AbortSignal): Promise<void>;
  /** SIGTERM, then SIGKILL after the grace period; a missing container counts as stopped. */
  stopContainer(name: string, graceSeconds: number, signal?: AbortSignal): Promise<void>;
  /** Removes containers, running or not; a missing one counts as removed. */
  removeContainers(names: string[], signal?: AbortSignal): Promise<void>;
  listContainers(labelFilters: Record<string, string>, signal?: AbortSignal): Promise<ContainerSummary[]>;
  /**
   * Creates a named volume with labels; one that exists already is left as it is. With a bound, the
   * volume is the bound's filesystem (made fresh for a new volume); an existing volume that is not that
   * filesystem, or not of that size, is an error saying how to apply the bound.
   */
  ensureVolume(
    name: string,
    labels: Record<string, string>,
    signal?: AbortSignal,
    bound?: CacheBound,
  ): Promise<void>;
  /** Volumes whose labels match every filter: name and labels. */
  listVolumes(
    labelFilters: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<{ name: string; labels: Record<string, string> }[]>;
  /** Removes volumes; one in use by a container is an error, a missing one counts as removed. */
  removeVolumes(names: string[], signal?: AbortSignal): Promise<void>;
}

/**
 * Receives the container's output: each line as it arrives, or a piece of a line longer than
 * OUTPUT_LINE_MAX_BYTES (`end` is false for every piece but a line's last), and which stream it came on.
 * Before the container runs, podman's own messages come on stderr too.
 */
export type OutputHandler = ((text: string, end: boolean, stream: 'stdout' | 'stderr') => void) & {
  /**
   * Optional: whole lines at once where none needs handling of its own (see LineSplitter.block): the
   * undecoded bytes of complete lines, each at most OUTPUT_LINE_MAX_BYTES and ending in `\n`, none
   * with a `\r`; `lines` of them. True takes them; false (or no `block`) has them come line by line as
   * usual.
   */
  block?: (bytes: Buffer, lines: number, stream: 'stdout' | 'stderr') => boolean;
};

/**
 * Bytes of a short call's stderr kept: a remote host's Podman prints its engine's error as the engine
 * sent it, megabytes if it likes, and that stderr is held by the error (and logged with it). Podman's own
 * messages are far shorter: 500 "no such secret" lines of one `secret rm` are ~60 KB. Beyond it the call
 * is ended as failed.
 */
export const PODMAN_STDERR_MAX_BYTES = 1024 * 1024;
/** Stdout a call reads at most when it names no bound of its own: more fails the call. */
const PODMAN_STDOUT_MAX_BYTES = 100 * 1024 * 1024;
/**
 * Bytes a probe reads (`podman version --format json` prints ~400): every probe interval a host that
 * answers with more would otherwise be read up to execa's 100 MB, and its version shown as it came.
 */
const PROBE_STDOUT_MAX_BYTES = 64 * 1024;
/** A Podman version as a host may report it (4.3.1, 5.0.0-dev, 4.9.4-rhel); anything else is `unknown`. */
const PODMAN_VERSION = /^[0-9][0-9A-Za-z.+~_-]{0,63}$/;
/** How often a `secret create` that met Podman's secrets file mid-write is made (see createSecret). */
const SECRET_CREATE_ATTEMPTS = 4;
/** runc failing to start an exec'd process in a running container, which a second try gets past. */
const RUNC_EXEC_TRANSIENT = /exec failed: unable to start container process: error executing setns process/;

/**
 * Names per `podman secret rm`. Podman 4.3 reads and rewrites both its secrets files whole for each secret
 * it removes, so one removal costs more the more secrets there are: 2,000 in one call took 60 s here (30 ms
 * each), and 165 ms each at the start on a machine at load 14. Each batch gets SECRET_REMOVE_MS_PER_NAME
 * more deadline per name, so that the deadline does not kill it mid-write; the total is the same as one
 * call's, plus one CLI start (40 to 200 ms) per batch.
 */
export const SECRET_REMOVE_BATCH = 500;
/** Added to a `secret rm` call's deadline per name: 500 names get 250 s more. */
const SECRET_REMOVE_MS_PER_NAME = 500;
/** Names per `podman rm` (it removes them in parallel itself; 500 took ~6 s here). */
export const CONTAINER_REMOVE_BATCH = 500;
/**
 * Bytes of names on one command line: far below Linux's ARG_MAX (2 MiB, shared with the environment) and
 * its 128 KiB per argument, so a call never fails with E2BIG however many objects there are.
 */
export const ARGV_NAMES_BYTES = 128 * 1024;
/**
 * How long a failed pull of an image is remembered on its host: meanwhile a session of that image that
 * finds it missing ends `error` at once with the same error instead of pulling again. Without it a burst
 * of triggers of an agent whose image cannot be pulled (a typo, a private registry without a login, a
 * registry that is down or hangs) made one `podman pull` per session in turn, each up to
 * daemon.pull_timeout, hammering the registry. 30 s absorbs such a burst (one pull per 30 s whatever the
 * number of sessions), yet the fix an operator makes (`podman login`, the tag pushed, the registry back)
 * is used by the sessions that come at most 30 s later, with no restart; an image made present by hand
 * (`podman pull` there) is used at once, since only a session that finds it missing asks.
 */
export const PULL_FAILURE_MEMORY_MS = 30_000;
/**
 * Failed pulls remembered per host at most: the oldest is forgotten for a newer one (and pulled again by
 * its next session), so that many distinct image names cannot grow the memory without bound. Each holds
 * the error's message (bounded: its reason is cut at DETAIL_LINE_CHARS) and PULL_FAILURE_STDERR_CHARS of
 * Podman's stderr.
 */
export const PULL_FAILURES_MAX = 256;
/** Characters of a failed pull's stderr its remembered error keeps (the end: Podman's final error). */
const PULL_FAILURE_STDERR_CHARS = 2048;

/** Splits names into batches of at most `count` names and ARGV_NAMES_BYTES bytes each, in order. */
export function nameBatches(names: readonly string[], count: number, bytes = ARGV_NAMES_BYTES): string[][] {
  const batches: string[][] = [];
  let batch: string[] = [];
  let size = 0;
  for (const name of names) {
    const length = Buffer.byteLength(name) + 1;
    if (batch.length > 0 && (batch.length >= count || size + length > bytes)) {
      batches.push(batch);
      batch = [];
      size = 0;
    }
    batch.push(name);
    size += length;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/*
 * DETACHED: every podman process starts in its own process group. A Ctrl-C in the terminal of a
 * foreground `agentd start` goes to the whole foreground group: the daemon drains on it, but a `podman
 * run` killed by it exits while its container runs on (the session was ended `failed` and its container
 * removed), and a `secret rm` cut short can corrupt Podman 4.3's secrets file. Only the daemon gets it.
 */
/**
 * The url as Podman 4.3 takes it: an ssh:// url without a port fails every call there with
 * `Error: strconv.Atoi: parsing "": invalid syntax` (measured with Podman 4.3.1, whatever the host), so
 * ssh's own default port, 22, is written out.
 */
export function podmanUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  if (parsed.protocol !== 'ssh:' || parsed.port !== '' || parsed.hostname === '') return url;
  // The authority ends at the path: the port goes there, after `user@host` (or a bare `host:`).
  const start = url.indexOf('//') + 2;
  const slash = url.slice(start).search(/[/?#]/);
  const end = slash === -1 ? url.length : start + slash;
  const authority = url.slice(start, end);
  if (!authority.endsWith(parsed.hostname) && !authority.endsWith(':')) return url;
  return `${url.slice(0, end)}${authority.endsWith(':') ? '' : ':'}22${url.slice(end)}`;
}

/** After a cancel's SIGTERM, a streaming podman that has not exited by then is killed (execa's default). */
const STREAM_KILL_AFTER_MS = 5000;

/**
 * A streaming podman's output still open this long after it exited, quiet and not held back by the
 * daemon, is held by something else (a process podman started that lives on with its stdout): no longer
 * read. Waiting for its end made the session wait for that process, after its container had exited.
 */
export const OUTPUT_AFTER_EXIT_MS = 5000;

/**
 * Spawns a podman whose output goes straight into the daemon's output sockets (`stdio`), in its own
 * process group (DETACHED), and resolves with how it exited: its exit code (undefined when a signal
 * ended it), or `code` when it could not be spawned (ENOENT). A cancel (`signal`) sends it SIGTERM, and
 * SIGKILL `killAfterMs` (STREAM_KILL_AFTER_MS) later if it is still there. Not execa, which captures
 * nothing here either: it took the daemon's closing of its copies of the sockets (which it must do at
 * once) for streams that ended early, so every attached run, a successful one too, came back "failed",
 * with an error whose message escaped the whole command line (the ~15 KB setup script) twice: about 2 ms
 * of the daemon's CPU at every session (4.2 against 2.0 ms an attached run, bench/findings.md).
 */
export function spawnAttached(
  bin: string,
  argv: string[],
  options: { cwd?: string; signal?: AbortSignal; stdout: Socket; stderr: Socket; killAfterMs?: number },
): Promise<{ exitCode?: number; code?: string }> {
  const { signal, killAfterMs = STREAM_KILL_AFTER_MS } = options;
  let child: ChildProcess;
  try {
    child = spawn(bin, argv, {
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      detached: true,
      stdio: ['ignore', options.stdout, options.stderr],
    });
  } catch (error) {
    return Promise.resolve({ code: (error as NodeJS.ErrnoException).code ?? 'ESPAWN' });
  }
  return new Promise((resolve) => {
    let spawnError: string | undefined;
    let killer: NodeJS.Timeout | undefined;
    const cancel = () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      killer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      killer.unref();
    };
    child.once('error', (error: NodeJS.ErrnoException) => {
      // Only a spawn that failed has no pid; a later error (a kill that found it gone) changes nothing.
      if (child.pid === undefined) spawnError = error.code ?? 'ESPAWN';
    });
    child.once('close', (code: number | null) => {
      clearTimeout(killer);
      signal?.removeEventListener('abort', cancel);
      resolve(spawnError !== undefined ? { code: spawnError } : code === null ? {} : { exitCode: code });
    });
    if (signal?.aborted) cancel();
    else signal?.addEventListener('abort', cancel, { once: true });
  });
}

/**
 * Whether `ended` settles before `quietMs` pass in which no output came (`lastOutput`, steady clock) and
 * the consumer did not hold it back (`paused`): a slow consumer or output still coming is waited for.
 */
function endsWithin(
  ended: Promise<unknown>,
  quietMs: number,
  paused: () => boolean,
  lastOutput: () => number,
): Promise<boolean> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const check = () => {
      const quiet = performance.now() - lastOutput();
      if (!paused() && quiet >= quietMs) resolve(false);
      else timer = setTimeout(check, paused() ? quietMs : quietMs - quiet);
    };
    timer = setTimeout(check, quietMs);
    void ended.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A narrow client over the podman CLI: the only code in agentd that runs podman. */
export class PodmanClient implements PodmanPort {
  readonly bin: string;
  readonly remote: boolean;
  private readonly timeoutMs: number;
  private readonly pullTimeoutMs: number;
  /** Pulls under way, by image: the sessions that need the same missing image share one `podman pull`. */
  private readonly pulls = new Map<
    string,
    { done: Promise<void>; waiters: number; abort: AbortController }
  >();
  /**
   * Pulls that failed lately (within pullFailureMemoryMs), by image, oldest first: see PULL_FAILURE_MEMORY_MS.
   * A session asks only when its image is missing (`--pull never` said so), so one made present is used.
   */
  private readonly failedPulls = new Map<string, { error: PodmanError; at: number }>();
  private readonly pullFailureMemoryMs: number;
  private readonly now: () => number;
  private readonly onCall: ((argv: readonly string[]) => void) | undefined;
  private readonly cwd: string | undefined;
  /** `--url URL [--identity FILE]` before every command, for a remote host. */
  private readonly global: string[];
  private readonly outputAfterExitMs: number;
  private readonly warn: (fields: Record<string, unknown>, message: string) => void;

  constructor(options: PodmanClientOptions = {}) {
    this.bin = options.bin ?? 'podman';
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.pullTimeoutMs = options.pullTimeoutMs ?? 600_000;
    this.pullFailureMemoryMs = options.pullFailureMemoryMs ?? PULL_FAILURE_MEMORY_MS;
    this.now = options.now ?? (() => performance.now());
    this.onCall = options.onCall;
    this.cwd = options.cwd;
    this.outputAfterExitMs = options.outputAfterExitMs ?? OUTPUT_AFTER_EXIT_MS;
    this.warn = options.warn ?? (() => {});
    this.global =
      options.url === undefined
        ? []
        : [
            '--url',
            podmanUrl(options.url),
            ...(options.identity === undefined ? [] : ['--identity', options.identity]),
          ];
    this.remote = options.url !== undefined;
  }

  /** The working directory podman runs in: `cwd`, while it exists (else spawning podman would fail as if it were missing). */
  private where(): { cwd?: string } {
    return this.cwd === undefined || !existsSync(this.cwd) ? {} : { cwd: this.cwd };
  }

  /** Runs one podman command with a deadline; throws a classified PodmanError on failure. */
  private async call(
    operation: string,
    argv: string[],
    options: CallOptions = {},
  ): Promise<{ stdout: string; exitCode: number }> {
    argv = [...this.global, ...argv];
    this.onCall?.(argv);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    // Podman reads `-` only from a real pipe, and Node gives children a socket: `cat` bridges the two
    // so a value still never travels on a command line.
    const [file, args] =
      options.input === undefined
        ? [this.bin, argv]
        : ['/bin/sh', ['-c', 'cat | exec "$0" "$@"', this.bin, ...argv]];
    const result = await runProcess(file, args, {
      ...this.where(),
      // Nothing to read but the input, if any: no stdin at all otherwise (/dev/null).
      ...(options.input === undefined ? {} : { input: options.input }),
      ...(options.env === undefined ? {} : { env: options.env }),
      timeoutMs,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      forceKillAfterMs: 2000,
      // What a host writes on stderr is held whole only up to a bound (PODMAN_STDERR_MAX_BYTES).
      maxStderrBytes: PODMAN_STDERR_MAX_BYTES,
      maxStdoutBytes: options.maxStdoutBytes ?? PODMAN_STDOUT_MAX_BYTES,
    });
    const exitCode = result.exitCode ?? -1;
    // An exit code that is an answer (125: no such container) is none when the engine was not reached.
    const answered =
      options.okExitCodes?.includes(exitCode) && !result.timedOut && !unreachableOutput(result.stderr);
    if (!result.failed || answered) {
      return { stdout: result.stdout, exitCode };
    }
    throw classifyPodmanFailure(
      {
        operation,
        argv,
        exitCode: result.exitCode,
        stderr: result.stderr,
        spawnErrorCode: result.code,
        timedOut: result.timedOut,
        timeoutMs,
        ...(options.timeoutSetting === undefined ? {} : { timeoutSetting: options.timeoutSetting }),
        tooLarge: result.isMaxBuffer,
        cause: result.isCanceled ? options.signal?.reason : processEndCause(result),
      },
      options.image,
    );
  }

  async version(signal?: AbortSignal): Promise<string> {
    const { stdout } = await this.call('podman version', ['version', '--format', '{{.Client.Version}}'], {
      signal,
    });
    return stdout.trim();
  }

  async probe(timeoutMs: number, signal?: AbortSignal): Promise<string> {
    // The server's version when there is one: a remote host answers for its engine, not this client.
    const { stdout } = await this.call('probe the host', ['version', '--format', 'json'], {
      signal,
      timeoutMs,
      maxStdoutBytes: PROBE_STDOUT_MAX_BYTES,
    });
    const parsed = JSON.parse(stdout) as { Client?: { Version?: unknown }; Server?: { Version?: unknown } };
    // What a remote host says its version is goes to `agentd hosts` and status as is: only a version.
    const version = parsed.Server?.Version ?? parsed.Client?.Version;
    return typeof version === 'string' && PODMAN_VERSION.test(version) ? version : 'unknown';
  }

  /** Whether the engine runs rootless (its containers' root is this user, their other uids subordinate). */
  async rootless(signal?: AbortSignal): Promise<boolean> {
    const { stdout } = await this.call('podman info', ['info', '--format', '{{.Host.Security.Rootless}}'], {
      signal,
    });
    return stdout.trim() === 'true';
  }

  /** Whether the engine applies seccomp, and the file of its default profile ('' when it has none). */
  async seccompDefault(signal?: AbortSignal): Promise<{ enabled: boolean; profilePath: string }> {
    const { stdout } = await this.call('podman info', ['info', '--format', '{{json .Host.Security}}'], {
      signal,
    });
    const security = securityInfoSchema.parse(JSON.parse(stdout));
    return { enabled: security.seccompEnabled, profilePath: security.seccompProfilePath ?? '' };
  }

  async imageExists(image: string, signal?: AbortSignal): Promise<boolean> {
    const { exitCode } = await this.call('check image', ['image', 'exists', '--', image], {
      signal,
      okExitCodes: [1],
    });
    return exitCode === 0;
  }

  /** Creates a secret; the value travels on stdin as its exact bytes, never on the command line. */
  async createSecret(
    name: string,
    value: Uint8Array,
    labels: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<void> {
    const argv = ['secret', 'create', ...labelArgs(labels), name, '-'];
    let replaced = false;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.call(`create secret ${name}`, argv, { input: value, signal });
        return;
      } catch (error) {
        // Podman 4.3 rewrites its secrets files in place: a create that reads them while another process
        // writes them fails with "unexpected end of JSON input" and made nothing. Try again a little
        // later; a name in use then is the earlier attempt's secret (the names are this session's own).
        const stderr = error instanceof PodmanError ? error.stderr : '';
        if (attempt === 1 && !replaced && /in use/i.test(stderr)) {
          // In use at the first try: made by the create of an earlier daemon, killed while it made this
          // session's secret, that finished after the next start's reconciliation removed the session's
          // secrets (it runs again). Its value may be older: it is removed and made again, once.
          replaced = true;
          await this.removeSecrets([name]);
          attempt = 0;
          continue;
        }
        if (attempt > 1 && /in use/i.test(stderr)) return;
        if (
          attempt >= SECRET_CREATE_ATTEMPTS ||
          signal?.aborted ||
          !/unexpected end of JSON input/.test(stderr)
        )
          throw error;
        await new Promise((resolve) => setTimeout(resolve, 150 * attempt));
      }
    }
  }

  async listSecretNames(signal?: AbortSignal): Promise<string[]> {
    const { stdout } = await this.call('list secrets', ['secret', 'ls', '--format', '{{.Name}}'], { signal });
    return stdout.split('\n').filter(Boolean);
  }

  /**
   * Labels of many secrets in few calls (podman 4.3 cannot filter secrets by label): one per
   * ARGV_NAMES_BYTES of names (~3,700 agentd names); an inspect reads the store once, whatever the count.
   */
  async secretLabels(names: string[], signal?: AbortSignal): Promise<Map<string, Record<string, string>>> {
    const labels = new Map<string, Record<string, string>>();
    for (const batch of nameBatches(names, Number.POSITIVE_INFINITY)) {
      // No --format: its default output is the JSON array. Podman 4.3 takes `--format json` as a Go
      // template and prints the word "json" once per secret.
      const { stdout } = await this.call('inspect secrets', ['secret', 'inspect', '--', ...batch], {
        signal,
      });
      const parsed = JSON.parse(stdout) as {
        Spec?: { Name?: string; Labels?: Record<string, string> | null };
      }[];
      for (const entry of parsed) {
        if (entry.Spec?.Name) labels.set(entry.Spec.Name, entry.Spec.Labels ?? {});
      }
    }
    return labels;
  }

  /**
   * Removes secrets, SECRET_REMOVE_BATCH to a call. One that is already gone counts as removed: podman
   * 4.3 has no `secret rm --ignore`, removes the others and fails only with "no such secret" for the
   * missing ones. A batch that fails does not stop the next ones: the first failure is thrown after all
   * were tried. A cancel takes effect between batches, never in one: a `podman secret` command killed
   * mid-write can leave Podman 4.3's secret store unreadable (its deadline still holds).
   */
  async removeSecrets(names: string[], signal?: AbortSignal): Promise<void> {
    let failure: unknown;
    for (const batch of nameBatches(names, SECRET_REMOVE_BATCH)) {
      signal?.throwIfAborted();
      try {
        await this.call(`remove ${batch.length} secret(s)`, ['secret', 'rm', '--', ...batch], {
          timeoutMs: this.timeoutMs + batch.length * SECRET_REMOVE_MS_PER_NAME,
        });
      } catch (error) {
        const lines =
          error instanceof PodmanError ? error.stderr.split('\n').filter((l) => l.trim() !== '') : [];
        if (lines.length === 0 || !lines.every((line) => /no such secret/i.test(line))) failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * `podman pull` of a registry image, within daemon.pull_timeout: a session whose image the host lacks
   * pulls it first, so that `podman run`/`create` (with `--pull never`) stay within the short deadline.
   * Concurrent callers of the same image share one pull; it is cut short when every one of them has
   * gone (their signals). A failure throws the classified pull error (IMAGE_PULL_FAILED, IMAGE_NOT_FOUND,
   * PODMAN_TIMEOUT), which is remembered for PULL_FAILURE_MEMORY_MS: a caller meanwhile gets it at once,
   * saying so, and makes no pull. A pull cut short by its callers' signals is no failure of the image.
   */
  async pullImage(image: string, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    let pull = this.pulls.get(image);
    if (pull === undefined) {
      const remembered = this.rememberedPullFailure(image);
      if (remembered !== undefined) throw remembered;
      const abort = new AbortController();
      const done = this.call(`pull image ${image}`, ['pull', '--', image], {
        signal: abort.signal,
        image,
        timeoutMs: this.pullTimeoutMs,
        timeoutSetting: 'daemon.pull_timeout',
      }).then(() => undefined);
      const entry = { done, waiters: 0, abort };
      pull = entry;
      this.pulls.set(image, entry);
      // In one step with the pull's end, so that no caller finds neither the pull nor its failure.
      const forget = (error?: unknown) => {
        if (this.pulls.get(image) !== entry) return;
        this.pulls.delete(image);
        if (error === undefined) this.failedPulls.delete(image);
        else if (!abort.signal.aborted) this.rememberPullFailure(image, error);
      };
      done.then(() => forget(), forget);
    }
    const entry = pull;
    entry.waiters += 1;
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        entry.done.then(resolve, reject);
        if (signal === undefined) return;
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      entry.waiters -= 1;
      // The last session that waited for it went (cancelled, stopped): the pull is not needed now.
      if (entry.waiters === 0 && signal?.aborted) {
        if (this.pulls.get(image) === entry) this.pulls.delete(image);
        entry.abort.abort();
      }
    }
  }

  /**
   * Remembers a pull's failure when it is the image's, its registry's or the pull's own (classified as
   * such), not the host's (unreachable, a podman that does not answer): that one the host's probes see.
   * The error is kept without its cause and with the end of
   * its stderr only.
   */
  private rememberPullFailure(image: string, error: unknown): void {
    if (!(error instanceof PodmanError)) return;
    const pulling = error.code === 'PODMAN_TIMEOUT' && /^Trying to pull /m.test(error.stderr);
    if (error.code !== 'IMAGE_PULL_FAILED' && error.code !== 'IMAGE_NOT_FOUND' && !pulling) return;
    const at = this.now();
    this.failedPulls.delete(image);
    // Oldest first: the expired ones, then as many as make room for this one.
    for (const [name, failure] of this.failedPulls) {
      if (at - failure.at < this.pullFailureMemoryMs && this.failedPulls.size < PULL_FAILURES_MAX) break;
      this.failedPulls.delete(name);
    }
    const kept = new PodmanError(error.code, error.message, {
      operation: error.operation ?? `pull image ${image}`,
      argv: error.argv,
      ...(error.exitCode === undefined ? {} : { exitCode: error.exitCode }),
      stderr: error.stderr.slice(-PULL_FAILURE_STDERR_CHARS),
    });
    this.failedPulls.set(image, { error: kept, at });
  }

  /** The remembered failure of the image's last pull, said to be one, while PULL_FAILURE_MEMORY_MS lasts. */
  private rememberedPullFailure(image: string): PodmanError | undefined {
    const failure = this.failedPulls.get(image);
    if (failure === undefined) return undefined;
    const age = this.now() - failure.at;
    if (age >= this.pullFailureMemoryMs) {
      this.failedPulls.delete(image);
      return undefined;
    }
    const { error } = failure;
    const left = Math.ceil((this.pullFailureMemoryMs - age) / 1000);
    const next = new Date(Date.now() + (this.pullFailureMemoryMs - age)).toISOString().slice(11, 19);
    return new PodmanError(
      error.code,
      `${error.message} [the remembered result of the pull made on this host ${Math.round(age / 1000)} s ago: for ${Math.round(this.pullFailureMemoryMs / 1000)} s after a failed pull, a session that finds the image missing ends with its error instead of pulling again; the next pull is made by the first session after ${next} UTC (in ${left} s), and a session that finds the image present (pulled there by hand) runs at once]`,
      { operation: error.operation ?? `pull image ${image}`, argv: error.argv, stderr: error.stderr },
    );
  }

  /** A session found its image present: a failure of its pull remembered before is over. */
  private imagePresent(image: string): void {
    if (this.failedPulls.size > 0) this.failedPulls.delete(image);
  }

  async createContainer(options: CreateContainerOptions): Promise<string> {
    try {
      const id = await this.createOnce(options);
      this.imagePresent(options.image);
      return id;
    } catch (error) {
      // `--pull never` found no such image here: a registry image is pulled (pullImage), then made.
      if (!pullable(options.image) || !(error instanceof PodmanError) || !IMAGE_MISSING.test(error.stderr))
        throw error;
      await this.pullImage(options.image, options.signal);
      return this.createOnce(options);
    }
  }

  private async createOnce(options: CreateContainerOptions): Promise<string> {
    const argv = ['create', ...containerArgs(options)];
    try {
      const { stdout } = await this.call(`create container ${options.name}`, argv, {
        signal: options.signal,
        image: options.image,
      });
      return stdout.trim();
    } catch (error) {
      const failure = error as PodmanError;
      if (failure.code === 'PODMAN_FAILED' && /image not known|no such image/i.test(failure.stderr)) {
        throw imageNotFound(`create container ${options.name}`, options.image, {
          operation: `create container ${options.name}`,
          argv,
          stderr: failure.stderr,
          exitCode: failure.exitCode,
        });
      }
      throw error;
    }
  }

  runAttached(options: CreateContainerOptions, onLine: OutputHandler, signal?: AbortSignal): AttachedRun {
    const first = this.runOnce(options, onLine, signal);
    if (!pullable(options.image)) return first;
    // `--pull never` found no such image here (podman made no container): the image is pulled within
    // daemon.pull_timeout (pullImage), then run again with the short deadline.
    let current = first;
    let paused = false;
    const exitCode = first.exitCode.then(async (code) => {
      if (code !== PODMAN_OWN_FAILURE || !IMAGE_MISSING.test(first.stderr())) {
        // The container ran (its own exit code): its image is here.
        if (code !== PODMAN_OWN_FAILURE) this.imagePresent(options.image);
        return code;
      }
      try {
        await this.pullImage(options.image, signal);
      } catch (error) {
        // Cut short by a stop: as a `podman run` killed by it, which ends with no exit code of its own.
        if (signal?.aborted) return -1;
        throw error;
      }
      current = this.runOnce(options, onLine, signal);
      if (paused) current.pause();
      return current.exitCode;
    });
    return {
      exitCode,
      stderr: () => current.stderr(),
      pause: () => {
        paused = true;
        current.pause();
      },
      resume: () => {
        paused = false;
        current.resume();
      },
    };
  }

  private runOnce(options: CreateContainerOptions, onLine: OutputHandler, signal?: AbortSignal): AttachedRun {
    const operation = `run container ${options.name}`;
    // --sig-proxy=false: ending the attachment (a lost host, the daemon's own end) ends podman, never the
    // container; a stop is `podman stop`.
    const argv = ['run', '--sig-proxy=false', ...containerArgs(options)];
    // Until the container prints (the setup step's first line comes at once), `podman run` is creating
    // it (never pulling its image: see runAttached): the deadline of every other call holds, as it does
    // for `podman create`.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.timeoutMs);
    timer.unref();
    const handler: OutputHandler = (text, end, stream) => {
      // The setup step's first line is on stdout; podman's own messages are on stderr.
      if (stream === 'stdout') clearTimeout(timer);
      onLine(text, end, stream);
    };
    const { block } = onLine;
    if (block !== undefined)
      handler.block = (bytes, lines, stream) => {
        if (stream === 'stdout') clearTimeout(timer);
        return block(bytes, lines, stream);
      };
    const run = this.stream(
      operation,
      argv,
      handler,
      signal === undefined ? deadline.signal : AbortSignal.any([signal, deadline.signal]),
      failsWithOwnCode,
    );
    const exitCode = run.exitCode.then(
      (code) => {
        clearTimeout(timer);
        if (!deadline.signal.aborted) return code;
        throw classifyPodmanFailure(
          {
            operation,
            argv: [...this.global, ...argv],
            stderr: run.stderr(),
            timedOut: true,
            timeoutMs: this.timeoutMs,
          },
          options.image,
        );
      },
      (error: unknown) => {
        clearTimeout(timer);
        throw error;
      },
    );
    return { ...run, exitCode };
  }

  /**
   * Starts a container attached: every line of its output goes to onLine as it arrives.
   * No deadline: the caller bounds it with stop/timeouts; the signal detaches.
   */
  startAttached(name: string, onLine: OutputHandler, signal?: AbortSignal): AttachedRun {
    return this.stream(
      `start container ${name}`,
      ['start', '--attach', '--sig-proxy=false', '--', name],
      onLine,
      signal,
      failsWithOwnCode,
    );
  }

  /** Follows a running container's output from `since` (RFC 3339) until it exits: for adopted sessions. */
  followLogs(
    name: string,
    since: string | undefined,
    onLine: OutputHandler,
    signal?: AbortSignal,
  ): AttachedRun {
    const argv = ['logs', '--follow', ...(since === undefined ? [] : ['--since', since]), '--', name];
    return this.stream(`follow logs of ${name}`, argv, onLine, signal, failsWithAnyCode);
  }

  readLogs(
    name: string,
    since: string | undefined,
    onLine: OutputHandler,
    signal?: AbortSignal,
  ): AttachedRun {
    const argv = ['logs', ...(since === undefined ? [] : ['--since', since]), '--', name];
    return this.stream(`read logs of ${name}`, argv, onLine, signal, failsWithAnyCode);
  }

  private stream(
    operation: string,
    argv: string[],
    onLine: OutputHandler,
    signal: AbortSignal | undefined,
    podmanFailed: (exitCode: number) => boolean,
  ): AttachedRun {
    argv = [...this.global, ...argv];
    // The child writes its output into sockets the daemon reads with one reused buffer each (see
    // openOutputChannels); it is spawned once they are connected, a moment from now.
    const channels = openOutputChannels(2);
    const [outSource, errSource] = channels.sources as [ChunkSource, ChunkSource];
    const errLines: string[] = [];
    /** The container has printed: what comes on stderr from now on is its own, not podman's. */
    let printed = false;
    /** When output last came (steady clock), and whether the daemon holds it back: see outputEnded. */
    let lastOutput = performance.now();
    let paused = false;
    const { block } = onLine;
    // Podman's own last words ("Error: ..." when the container went away under it) come on the same
    // stderr as the container's: such lines are held until more output shows they were the container's,
    // or podman exits (podmanFailed says whose exit code it is: a failure of podman's own makes them
    // podman's, which are not the session's output).
    const held = new HeldErrorLines((text, end) => onLine(text, end, 'stderr'));
    const out = new OutputReader(
      outSource,
      (text, end) => {
        printed = true;
        lastOutput = performance.now();
        held.release();
        onLine(text, end, 'stdout');
      },
      {
        maxLineBytes: OUTPUT_LINE_MAX_BYTES,
        ...(block && {
          onBlock: (bytes: Buffer, lines: number) => {
            printed = true;
            lastOutput = performance.now();
            held.release();
            return block(bytes, lines, 'stdout');
          },
        }),
      },
    );
    // The container's stderr, and before that podman's own messages: their tail is kept for the error of
    // a container that did not start (never the container's own lines: they may hold what masking hides).
    const err = new OutputReader(
      errSource,
      (text, end) => {
        lastOutput = performance.now();
        if (!printed) {
          errLines.push(text.length > 1000 ? `${text.slice(0, 1000)}...` : text);
          if (errLines.length > 50) errLines.shift();
          onLine(text, end, 'stderr');
        } else if (!held.offer(text, end)) onLine(text, end, 'stderr');
      },
      {
        maxLineBytes: OUTPUT_LINE_MAX_BYTES,
        // Podman's own messages are kept line by line (above), and so is a block that may hold one.
        ...(block && {
          onBlock: (bytes: Buffer, lines: number) => {
            lastOutput = performance.now();
            if (!printed || bytes.includes(PODMAN_ERROR_PREFIX)) return false;
            held.release();
            return block(bytes, lines, 'stderr');
          },
        }),
      },
    );
    const child = channels.ends.then(
      ([stdout, stderr]) => {
        this.onCall?.(argv);
        try {
          // spawn is synchronous: the child has its copies of the ends when this returns.
          return spawnAttached(this.bin, argv, {
            ...this.where(),
            signal,
            stdout: stdout as Socket,
            stderr: stderr as Socket,
          });
        } finally {
          channels.close(true);
        }
      },
      (error: unknown) => {
        channels.close(false);
        throw new PodmanError(
          'PODMAN_FAILED',
          `could not ${operation}: the sockets for its output could not be made (${error instanceof Error ? error.message : String(error)}); check the daemon's open files limit and that ${tmpdir()} is writable`,
          { operation, argv, stderr: '', cause: error },
        );
      },
    );
    const exitCode = child.then(async (result) => {
      const ended = Promise.all([out.done, err.done]);
      if (
        !(await endsWithin(
          ended,
          this.outputAfterExitMs,
          () => paused,
          () => lastOutput,
        ))
      ) {
        // podman is gone; what holds its sockets is not (a process it started, with its stdout): read no
        // more, or the session would wait for that process after its container's exit.
        channels.close(false);
        await ended;
        this.warn(
          { event: 'podman.output_held', operation, waitedMs: this.outputAfterExitMs },
          `podman exited (${operation}) but its output stayed open ${this.outputAfterExitMs / 1000} s after, held by a process it left running; stopped reading it (look for leftover podman, conmon or ssh processes of the daemon's user)`,
        );
      }
      if (result.code === 'ENOENT') {
        throw classifyPodmanFailure({ operation, argv, stderr: '', spawnErrorCode: 'ENOENT' });
      }
      if (result.exitCode !== undefined && podmanFailed(result.exitCode)) held.drop();
      else held.release();
      return result.exitCode ?? -1;
    });
    return {
      exitCode,
      stderr: () => errLines.join('\n'),
      pause: () => {
        paused = true;
        out.pause();
        err.pause();
      },
      resume: () => {
        paused = false;
        out.resume();
        err.resume();
      },
    };
  }

  async wait(name: string, signal?: AbortSignal): Promise<number> {
    const { stdout } = await this.call(`wait for container ${name}`, ['wait', '--', name], {
      signal,
      timeoutMs: 2 ** 31 - 1,
    });
    return Number(stdout.trim().split('\n').pop());
  }

  /**
   * Podman writes each secret of a container into the container's own directory (StaticDir/secrets/NAME,
   * root-only) when it creates it, and keeps it until the container is removed, after `podman secret rm`
   * and after the container exited too: the values an exited container was given, read without exec.
   * That is Podman 4's layout, not an interface of it, so a copy that is not there (or not a plain file
   * of a secret's size) is an error, never an empty answer. A remote host's copies are on that host.
   */
  async readSecretCopies(info: ContainerInspect): Promise<Map<string, Buffer>> {
    const operation = `read Podman's copies of the secrets of container ${info.Name}`;
    const refuse = (why: string) =>
      new PodmanError('PODMAN_FAILED', `${operation}: ${why}`, { operation, argv: [], stderr: '' });
    if (this.remote) throw refuse('they are on its host, not on this machine');
    const dir = info.StaticDir;
    if (dir === undefined || !isAbsolute(dir))
      throw refuse('Podman did not say where the container keeps them');
    const files = new Map<string, Buffer>();
    try {
      for (const { Name: secret } of info.Config.Secrets ?? []) {
        if (!SECRET_FILE_NAME.test(secret))
          throw refuse(`the secret name ${JSON.stringify(secret)} is not a file name`);
        files.set(secret, readPlainFile(join(dir, 'secrets', secret), MAX_SECRET_BYTES));
      }
    } catch (error) {
      for (const bytes of files.values()) bytes.fill(0);
      if (error instanceof PodmanError) throw error;
      throw refuse(`${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}`);
    }
    return files;
  }

  /**
   * The files of a directory inside a running container, read as root through `podman exec`: for the
   * copies of its secrets a container keeps (an adopted session masks with the values its container
   * really received). The contents come back on stdout as bytes, never on a command line; each file
   * as a header `SIZE NAME` and its bytes. A directory that does not exist has no files.
   */
  async readContainerFiles(name: string, dir: string, signal?: AbortSignal): Promise<Map<string, Buffer>> {
    const script =
      'cd "$1" 2>/dev/null || exit 0; for f in * .[!.]*; do [ -f "$f" ] || continue; printf "%s %s\\n" "$(wc -c < "$f")" "$f"; cat "$f" || exit 4; done';
    // As root in a container the agent has written to: its tools come from the system's directories
    // only, never from the image's PATH, where a cache the agent fills may come first (/opt/conda/bin).
    const argv = [
      ...this.global,
      'exec',
      '--user',
      '0:0',
      '--env',
      `PATH=${SYSTEM_PATH}`,
      '--workdir',
      '/',
      '--',
      name,
      '/bin/sh',
      '-c',
      script,
      'agentd-read',
      dir,
    ];
    const operation = `read the secrets of container ${name}`;
    const exec = () => {
      this.onCall?.(argv);
      const subprocess = execa(this.bin, argv, {
        ...this.where(),
        encoding: 'buffer',
        timeout: this.timeoutMs,
        detached: true,
        cancelSignal: signal,
        reject: false,
        stdin: 'ignore',
        forceKillAfterDelay: 2000,
      });
      killGroupWhenKilled(subprocess);
      return subprocess;
    };
    // What a read printed, as a view of execa's bytes (no copy): the files are cut from it, and wiping
    // them (or it, when the read failed: it may hold part of a value) leaves no other copy behind.
    const printed = (r: { stdout?: unknown }): Buffer =>
      r.stdout instanceof Uint8Array
        ? Buffer.from(r.stdout.buffer, r.stdout.byteOffset, r.stdout.byteLength)
        : Buffer.alloc(0);
    let result = await exec();
    // runc's exec can fail to enter a running container's namespaces on a busy machine ("error
    // executing setns process") and make nothing; a second try a little later gets in. Without the
    // values an adopted session's output is withheld, so one transient failure is worth a retry.
    if (
      result.failed &&
      !signal?.aborted &&
      RUNC_EXEC_TRANSIENT.test(Buffer.from(result.stderr ?? []).toString())
    ) {
      printed(result).fill(0);
      await new Promise((resolve) => setTimeout(resolve, 250));
      result = await exec();
    }
    const out = printed(result);
    if (result.failed) {
      // Never carried as the cause either: execa's result holds what was printed.
      out.fill(0);
      throw classifyPodmanFailure({
        operation,
        argv,
        exitCode: result.exitCode,
        stderr: Buffer.from(result.stderr ?? []).toString('utf8'),
        spawnErrorCode: (result as { code?: string }).code,
        timedOut: result.timedOut,
        timeoutMs: this.timeoutMs,
        cause: result.isCanceled ? signal?.reason : undefined,
      });
    }
    try {
      return parseFileStream(out, { operation, argv, stderr: '' });
    } catch (error) {
      out.fill(0);
      throw error;
    }
  }

  async inspectContainer(name: string, signal?: AbortSignal): Promise<ContainerInspect | undefined> {
    const { stdout, exitCode } = await this.call(
      `inspect container ${name}`,
      ['container', 'inspect', '--', name],
      {
        signal,
        okExitCodes: [125],
      },
    );
    if (exitCode !== 0) return undefined;
    const parsed = containerInspectSchema.array().parse(JSON.parse(stdout));
    return parsed[0];
  }

  async copyIntoContainer(name: string, archive: Uint8Array, signal?: AbortSignal): Promise<void> {
    // Podman 4.3 copies stdin into a temp file under TMPDIR and never removes it (one file the size
    // of the archive per call): it gets a directory of its own, removed after the call. Named with the
    // pid: a daemon killed during the copy leaves it, which the next start removes (removeLeftTempDirs).
    const tmp = await mkdtemp(join(tmpdir(), `${COPY_DIR_PREFIX}${process.pid}-`));
    try {
      await this.call(`copy files into container ${name}`, ['cp', '--', '-', `${name}:/`], {
        input: archive,
        signal,
        env: { TMPDIR: tmp },
      });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  async copyFromContainer(name: string, from: string, to: string, signal?: AbortSignal): Promise<void> {
    await this.call(`copy ${from} out of container ${name}`, ['cp', '--', `${name}:${from}`, to], { signal });
  }

  /** SIGTERM, then SIGKILL after the grace period. */
  async stopContainer(name: string, graceSeconds: number, signal?: AbortSignal): Promise<void> {
    await this.call(
      `stop container ${name}`,
      ['stop', '--ignore', '--time', String(graceSeconds), '--', name],
      {
        signal,
        timeoutMs: (graceSeconds + 30) * 1000,
      },
    );
  }

  /** CONTAINER_REMOVE_BATCH to a call; a batch that fails does not stop the next (the first failure is thrown). */
  async removeContainers(names: string[], signal?: AbortSignal): Promise<void> {
    let failure: unknown;
    for (const batch of nameBatches(names, CONTAINER_REMOVE_BATCH)) {
      signal?.throwIfAborted();
      try {
        await this.call(
          `remove ${batch.length} container(s)`,
          ['rm', '--force', '--ignore', '--time', '0', '--', ...batch],
          { signal },
        );
      } catch (error) {
        failure ??= error;
      }
    }
    this.removeOomFile();
    if (failure !== undefined) throw failure;
  }

  /**
   * Deletes the empty `oom` file Podman 4.3's conmon writes into podman's working directory when a
   * container is killed for memory. agentd never reads it (the setup step reads a session's OOM kills
   * from its cgroup), and conmon writes it before the container exits, so once a container is removed
   * it is only a stray file in the state dir. Another container's OOM kill writes it again, and that
   * container's removal deletes it.
   */
  private removeOomFile(): void {
    if (this.cwd === undefined || this.remote) return;
    try {
      unlinkSync(join(this.cwd, 'oom'));
    } catch {
      // None was written, or it is gone already.
    }
  }

  async listContainers(
    labelFilters: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<ContainerSummary[]> {
    const filters = Object.entries(labelFilters).flatMap(([k, v]) => ['--filter', `label=${k}=${v}`]);
    const { stdout } = await this.call('list containers', ['ps', '--all', '--format', 'json', ...filters], {
      signal,
    });
    return containerListSchema.parse(JSON.parse(stdout || '[]')) ?? [];
  }

  async ensureVolume(
    name: string,
    labels: Record<string, string>,
    signal?: AbortSignal,
    bound?: CacheBound,
  ): Promise<void> {
    if (bound !== undefined) {
      const existing = await this.inspectVolume(name, signal);
      if (existing !== undefined) {
        const problem =
          volumeOwnerProblem(name, existing.labels, labels) ??
          cacheBoundProblem(name, existing.options, bound);
        if (problem === undefined) return;
        throw new AgentdError('CACHE_FAILED', problem, { operation: `check cache volume ${name}` });
      }
      await makeCacheImage(bound, signal);
    }
    const options =
      bound === undefined
        ? []
        : Object.entries(cacheVolumeOptions(bound)).flatMap(([k, v]) => ['--opt', `${k}=${v}`]);
    try {
      await this.call(`create volume ${name}`, ['volume', 'create', ...labelArgs(labels), ...options, name], {
        signal,
      });
    } catch (error) {
      // Podman 4.3 has no `volume create --ignore`.
      if (!(error instanceof PodmanError && /already exists/i.test(error.stderr))) throw error;
      // Made before: by this agent's cache, not by another's of the same name (an earlier configuration's).
      const existing = await this.inspectVolume(name, signal);
      const problem = existing && volumeOwnerProblem(name, existing.labels, labels);
      if (problem)
        throw new AgentdError('CACHE_FAILED', problem, { operation: `check cache volume ${name}` });
    }
  }

  /**
   * A volume's driver options (empty for a plain one) and labels, or undefined when there is no such
   * volume. Only Podman's "no such volume" says it is missing: any other failure is thrown (a bounded
   * cache whose file is made anew on a false "missing" would lose its contents).
   */
  private async inspectVolume(
    name: string,
    signal?: AbortSignal,
  ): Promise<{ options: Record<string, string>; labels: Record<string, string> } | undefined> {
    let stdout: string;
    try {
      ({ stdout } = await this.call(
        `inspect volume ${name}`,
        ['volume', 'inspect', '--format', 'json', '--', name],
        {
          signal,
        },
      ));
    } catch (error) {
      if (error instanceof PodmanError && /no such volume/i.test(error.stderr)) return undefined;
      throw error;
    }
    const volume = volumeInspectSchema.parse(JSON.parse(stdout || '[]'))[0];
    return volume === undefined ? undefined : { options: volume.Options ?? {}, labels: volume.Labels ?? {} };
  }

  async listVolumes(
    labelFilters: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<{ name: string; labels: Record<string, string> }[]> {
    const filters = Object.entries(labelFilters).flatMap(([k, v]) => ['--filter', `label=${k}=${v}`]);
    const { stdout } = await this.call('list volumes', ['volume', 'ls', '--format', 'json', ...filters], {
      signal,
    });
    const parsed = JSON.parse(stdout || '[]') as { Name?: string; Labels?: Record<string, string> | null }[];
    return (parsed ?? []).flatMap((v) => (v.Name ? [{ name: v.Name, labels: v.Labels ?? {} }] : []));
  }

  async removeVolumes(names: string[], signal?: AbortSignal): Promise<void> {
    if (names.length === 0) return;
    try {
      await this.call(`remove ${names.length} volume(s)`, ['volume', 'rm', '--', ...names], { signal });
    } catch (error) {
      const lines =
        error instanceof PodmanError ? error.stderr.split('\n').filter((l) => l.trim() !== '') : [];
      if (lines.length === 0 || !lines.every((line) => /no such volume/i.test(line))) throw error;
    }
  }

  /**
   * `podman run --rm IMAGE true` without a network: whether this machine's runtime can start a
   * container at all (the setrlimit and cgroups quirks show here). Throws the classified failure.
   */
  async smokeRun(image: string, signal?: AbortSignal): Promise<void> {
    await this.call(
      'smoke run',
      ['run', '--rm', '--network', 'none', '--http-proxy=false', '--', image, 'true'],
      {
        signal,
        image,
      },
    );
  }

  /** Reads the image's manifest from its registry without pulling it; throws why it cannot. */
  async inspectRemoteImage(image: string, signal?: AbortSignal): Promise<void> {
    await this.call('read the image from its registry', ['manifest', 'inspect', '--', image], {
      signal,
      image,
    });
  }
}

/**
 * `podman run` and `start --attach` exit with the container's own code (an agent that failed after
 * printing "Error: ..." exits 1): only 125, podman's code for a failure of its own, is podman's.
 */
const failsWithOwnCode = (exitCode: number): boolean => exitCode === PODMAN_OWN_FAILURE;
/** `podman logs` exits with its own code: anything but 0 is podman failing. */
const failsWithAnyCode = (exitCode: number): boolean => exitCode !== 0;

/**
 * A volume that is there already belongs to the agent's cache that wants it when the labels it was made
 * with say so: another agent's cache of the same name (under an earlier configuration) is not handed over.
 */
function volumeOwnerProblem(
  name: string,
  actual: Record<string, string>,
  wanted: Record<string, string>,
): string | undefined {
  const differs = [LABEL_INSTANCE, LABEL_AGENT, LABEL_CACHE].some(
    (key) => wanted[key] !== undefined && actual[key] !== wanted[key],
  );
  if (!differs) return undefined;
  const owner = (key: string) => actual[key] ?? '(none)';
  return `cache volume ${name} was made for agent ${owner(LABEL_AGENT)}'s cache ${owner(LABEL_CACHE)} (instance ${owner(LABEL_INSTANCE)}), not for agent ${wanted[LABEL_AGENT]}'s cache ${wanted[LABEL_CACHE]}: one agent's sessions must not get what another's left. Remove it with \`podman volume rm ${name}\` (its contents are lost), or rename the cache`;
}

/** `SIZE NAME\n` then SIZE bytes, repeated: what readContainerFiles prints. */
function parseFileStream(out: Buffer, failure: PodmanFailure): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let at = 0;
  while (at < out.length) {
    const newline = out.indexOf(10, at);
    const header = /^\s*(\d+) (.+)$/.exec(
      out.subarray(at, newline === -1 ? out.length : newline).toString('utf8'),
    );
    const size = Number(header?.[1]);
    if (!header || newline === -1 || newline + 1 + size > out.length) {
      throw new PodmanError(
        'PODMAN_FAILED',
        `${failure.operation}: unexpected output from the container`,
        failure,
      );
    }
    files.set(header[2] as string, out.subarray(newline + 1, newline + 1 + size));
    at = newline + 1 + size;
  }
  return files;
}

/**
 * The host uids (and gids) of a session in a user namespace of its own: the agent's user, uid 61000,
 * and the image's `nobody` (65534) inside it. Podman takes each session's range from the `containers`
 * entry of /etc/subuid and /etc/subgid, so that entry's count divided by this is how many such sessions
 * run at once.
 */
export const USER_NAMESPACE_SIZE = 65536;

/** `podman create` (or `run`) arguments after the subcommand: everything a session container is made with. */
export function containerArgs(options: CreateContainerOptions): string[] {
  const argv = ['--name', options.name, ...labelArgs(options.labels)];
  // Never pulled under the short deadline: a missing registry image is pulled first (pullImage), within
  // daemon.pull_timeout; a missing localhost/ image is never pulled (that retries against
  // https://localhost for seconds).
  argv.push('--pull', 'never');
  // Podman copies the proxy variables of its own environment (agentd's, or the remote service's) into
  // every container: with a proxy's password in them, and to agents that were given no credential.
  argv.push('--init', '--http-proxy=false', '--user', '0:0', '--network', options.network);
  if (options.userns === 'auto') argv.push(`--userns=auto:size=${USER_NAMESPACE_SIZE}`);
  // Podman's own copy of the output (k8s-file, under its storage) is capped: conmon empties it when
  // full. `podman logs` (crash adoption) then replays what it still holds.
  argv.push('--log-driver', 'k8s-file', '--log-opt', `max-size=${CONTAINER_LOG_MAX_BYTES}`);
  if (options.timeoutSeconds !== undefined) argv.push('--timeout', String(options.timeoutSeconds));
  argv.push(...hardeningArgs(options), ...mountArgs(options));
  for (const secret of options.secrets) {
    argv.push('--secret', `${secret.name},type=mount,target=${secret.target},uid=0,gid=0,mode=0400`);
  }
  // Only non-secret values travel as --env; credentials are mount secrets.
  for (const [key, value] of Object.entries(options.env)) argv.push('--env', `${key}=${value}`);
  argv.push('--entrypoint', JSON.stringify(options.entrypoint), options.image, ...options.args);
  return argv;
}

/** Podman's own flags for limits, capabilities and mounts: what `podman inspect` then shows. */
export function hardeningArgs(
  options: Pick<CreateContainerOptions, 'limits' | 'capAdd' | 'noNewPrivileges' | 'seccompProfile' | 'tmpfs'>,
): string[] {
  const argv: string[] = [];
  const { limits } = options;
  if (limits !== undefined) {
    argv.push('--memory', String(limits.memoryBytes), '--memory-swap', String(limits.memorySwapBytes));
    if (limits.cpus !== undefined) argv.push('--cpus', String(limits.cpus));
    argv.push('--pids-limit', String(limits.pids));
  }
  if (options.capAdd !== undefined) {
    argv.push('--cap-drop', 'all');
    if (options.capAdd.length > 0) argv.push('--cap-add', options.capAdd.join(','));
  }
  if (options.noNewPrivileges) argv.push('--security-opt', 'no-new-privileges');
  if (options.seccompProfile !== undefined) argv.push('--security-opt', `seccomp=${options.seccompProfile}`);
  for (const mount of options.tmpfs ?? []) {
    argv.push('--tmpfs', `${mount.path}:rw,exec,nosuid,nodev,size=${mount.bytes},mode=${mount.mode}`);
  }
  // A VOLUME of the image is a tmpfs (its content copied in, counted against the memory limit), not
  // Podman's default anonymous volume: that is on the host's disk, outside every bound (an image's
  // world-writable VOLUME took whatever the agent wrote), and `podman rm` leaves it, one a session.
  argv.push('--image-volume', 'tmpfs');
  return argv;
}

/** The exit code podman gives a failure of its own (126 and 127: the container's command could not run). */
const PODMAN_OWN_FAILURE = 125;

/** Podman 4.3's answer to `run`/`create --pull never` of an image the host does not have (no container is made). */
const IMAGE_MISSING = /^Error: \S+: image not known$/m;

/** An image a missing copy of is pulled from its registry: any but a localhost/ one (those are built here). */
const pullable = (image: string): boolean => !image.startsWith('localhost/');

/** How podman begins a message of its own on stderr. */
const PODMAN_ERROR_PREFIX = 'Error: ';

/**
 * Stderr lines of a podman stream that may be podman's own message rather than the container's: from a
 * line starting with PODMAN_ERROR_PREFIX on, lines are held (a few, briefly: podman's messages are
 * short, and podman exits right after one) until `release` hands them on or `drop` forgets them; after
 * holdMs they are handed on anyway (a container that printed one and went quiet).
 */
export class HeldErrorLines {
  static readonly MAX_LINES = 16;
  static readonly MAX_CHARS = 16 * 1024;
  private pieces: { text: string; end: boolean }[] = [];
  private chars = 0;
  private atLineStart = true;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly hand: (text: string, end: boolean) => void,
    private readonly holdMs = 1000,
  ) {}

  /** Takes a piece of stderr if it is to be held; false: hand it on now (what was held went first). */
  offer(text: string, end: boolean): boolean {
    const starts = this.atLineStart;
    this.atLineStart = end;
    const hold = this.pieces.length > 0 ? true : starts && text.startsWith(PODMAN_ERROR_PREFIX);
    if (
      hold &&
      this.pieces.length < HeldErrorLines.MAX_LINES &&
      this.chars + text.length <= HeldErrorLines.MAX_CHARS
    ) {
      // A held line goes on until its end; a new line that is not another message shows it was the
      // container's.
      if (this.pieces.length > 0 && starts && !text.startsWith(PODMAN_ERROR_PREFIX)) {
        this.release();
        return false;
      }
      this.pieces.push({ text, end });
      this.chars += text.length;
      this.timer ??= setTimeout(() => this.release(), this.holdMs).unref();
      return true;
    }
    this.release();
    return false;
  }

  release(): void {
    const pieces = this.pieces;
    this.drop();
    for (const { text, end } of pieces) {
      try {
        this.hand(text, end);
      } catch {
        // As for the output reader's consumer: one line's failure is its own. From the hold's timer it was
        // an uncaught exception, the daemon's end, and the lines held after it were lost.
      }
    }
  }

  drop(): void {
    this.pieces = [];
    this.chars = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** `--volume` flags of bind mounts and named volumes. */
export function mountArgs(options: Pick<CreateContainerOptions, 'mounts' | 'volumes'>): string[] {
  const argv: string[] = [];
  for (const mount of options.mounts ?? []) {
    argv.push(
      '--volume',
      `${mount.source}:${mount.target}:${mount.readOnly ? 'ro' : 'rw'},nosuid,nodev${mount.chown ? ',U' : ''}`,
    );
  }
  for (const volume of options.volumes ?? []) {
    argv.push('--volume', `${volume.name}:${volume.target}:rw,nosuid,nodev`);
  }
  return argv;
}

function labelArgs(labels: Record<string, string>): string[] {
  return Object.entries(labels).flatMap(([key, value]) => ['--label', `${key}=${value}`]);
}

/** A Podman secret's name as a file name in the container's directory: no path, no dot-only name. */
const SECRET_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

/** A regular file's bytes, not through a symbolic link, refused past maxBytes (a Podman secret's limit). */
function readPlainFile(path: string, maxBytes: number): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw Object.assign(new Error('not a plain file'), { code: 'ENOTPLAIN' });
    if (stat.size > maxBytes) throw Object.assign(new Error('larger than a secret'), { code: 'EFBIG' });
    const bytes = Buffer.alloc(stat.size);
    let at = 0;
    try {
      while (at < bytes.length) {
        const read = readSync(fd, bytes, at, bytes.length - at, at);
        if (read === 0) break;
        at += read;
      }
    } catch (error) {
      bytes.fill(0);
      throw error;
    }
    return bytes.subarray(0, at);
  } finally {
    closeSync(fd);
  }
}

/**
 * A deadline or cancel kills the podman process only (or the bridging shell); what it started (cat and
 * podman behind the shell, or a helper of podman's) would live on holding its output pipes, and the call
 * would never return, past its deadline and holding a stop up for ever. Each call runs in its own process
 * group (detached): once the killed process exits, the whole group is taken down with it.
 */
function killGroupWhenKilled(subprocess: {
  killed: boolean;
  pid?: number | undefined;
  once(event: 'exit', listener: () => void): unknown;
}): void {
  subprocess.once('exit', () => {
    if (!subprocess.killed || subprocess.pid === undefined) return;
    try {
      process.kill(-subprocess.pid, 'SIGKILL');
    } catch {
      // The group is already gone.
    }
  });
}
