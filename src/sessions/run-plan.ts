import { randomBytes } from 'node:crypto';
import { cacheImageFile } from '../adapters/cache-image.js';
import type { CreateContainerOptions } from '../adapters/podman.js';
import { workPaths } from '../adapters/session-files.js';
import {
  CONTEXT_TARGET,
  INPUT_TARGET,
  OUTPUT_COPY_TARGET,
  OUTPUT_TARGET,
  REQUEST_TARGET,
} from '../config/mounts.js';
import { defaultResources } from '../config/resources.js';
import { LABEL_SECRETS, MAX_SECRET_BYTES, SECRET_MOUNT_DIR } from '../constants.js';
import { parseRepoUrl } from '../repo-url.js';
import { ambientCapabilities, containerPolicy } from '../runner/container-policy.js';
import { bundleChunkName, bundleCredentials } from '../runner/credential-bundle.js';
import { cacheLabels, cacheVolumeName, containerName, ownershipLabels, secretName } from '../runner/names.js';
import { SETUP_ENTRYPOINT } from '../runner/setup-script.js';
import { SecretValue } from '../secret-value.js';
import type { AssembledSession } from './assemble.js';

/** What the runner machine needs to know of the daemon it runs under. */
export interface RunnerSettings {
  instanceId: string;
  stopGraceMs: number;
  /** <state_dir>/work: each session's request, inputs and output archive (see session-files.ts). */
  workDir: string;
  /** <state_dir>/caches: the files of bounded caches (`resources.cache`); unset: no cache is bounded. */
  cacheDir?: string;
  /**
   * Hosts whose engine does not see this machine's files (ssh://, tcp://): a session there gets its
   * request and inputs copied in before it starts and its output archive copied out after it ends,
   * instead of bind mounts of its work directory.
   */
  copyHosts?: readonly string[];
  /**
   * Hosts reached over a connection (`url:`, including every copy host): their sessions' containers are
   * created and started in calls of their own (a copy host copies the work in between, and a dropped
   * connection is followed again as before). Elsewhere (the local Podman) one `podman run` creates and
   * starts a session's container (see RunPlan.mode).
   */
  connectedHosts?: readonly string[];
  /**
   * The seccomp profile file (in the state dir) of containers on the local Podman: Podman's default
   * with user namespaces refused (adapters/seccomp-profile.ts). Hosts reached over a url are left their
   * engine's default: Podman reads the path on the engine's machine. Unset: Podman's default everywhere.
   */
  seccompProfile?: string;
  /** How long a session whose host stopped answering waits for it (daemon.host_down_grace). */
  hostDownGraceMs?: number;
  /** How often such a session looks whether its container answers again (daemon.host_probe_interval). */
  hostRetryMs?: number;
}

/**
 * Seconds between the end of a stop's grace period and Podman's SIGKILL: the setup step kills the
 * command at the end of the grace period and archives /agentd/out in this time.
 */
export const OUTPUT_COPY_SECONDS = 5;

/** The most bytes the archive of /agentd/out may take: the output size and a quarter for tar's headers. */
export function outputArchiveLimit(outputBytes: number): number {
  return outputBytes + Math.max(1024 * 1024, Math.ceil(outputBytes / 4));
}

/** One secret to create: its Podman name, where it is mounted, and its (still wrapped) value. */
export interface PlannedSecret {
  name: string;
  target: string;
  value: SecretValue;
}

/**
 * Everything a new session's container needs, decided before any Podman object exists: names, labels,
 * the setup step's environment, the secrets and the container's limits and hardening. Pure apart from
 * the random setup marker; holds no revealed value (the values stay wrapped in `secrets`).
 */
export interface RunPlan {
  /**
   * `run`: one `podman run` (attached, without `--rm`) creates, starts and follows the container.
   * `create`: `podman create`, then `podman start --attach`. Either way the exited container is kept
   * until teardown removes it: `podman run --rm` force-removes a running container as soon as its
   * attachment breaks (a daemon that crashed), and crash adoption needs it; it also keeps the exit code.
   */
  mode: 'run' | 'create';
  /** On a host that does not see this machine's files: what goes into the container before it starts. */
  copyIn?: { dir: string; entries: string[] };
  /** ... and where its output archive comes back to after it ends. */
  copyOut?: { from: string; to: string };
  /**
   * Where the output archive is on this machine once the container has ended, where a note says why it
   * was withheld, and where one says it was searched and kept.
   */
  output: { archive: string; withheld: string; searched: string };
  labels: Record<string, string>;
  /** The marker the setup step prefixes its progress lines with (random, so an agent cannot forge it). */
  marker: string;
  secrets: PlannedSecret[];
  container: Omit<CreateContainerOptions, 'signal'>;
  /** Set when the session cannot run at all (a credential Podman would refuse): nothing is created. */
  problem?: string;
}

export function planRun(session: AssembledSession, settings: RunnerSettings, host?: string): RunPlan {
  const { spec, invocation } = session;
  const { instanceId } = settings;
  const labels = ownershipLabels(instanceId, invocation.sessionId, spec.agent, host);
  const marker = `@@agentd-${randomBytes(8).toString('hex')}@@`;
  const env: Record<string, string> = {
    ...spec.env,
    AGENTD_AGENT: spec.agent,
    AGENTD_SESSION_ID: invocation.sessionId,
    AGENTD_REPO_URL: invocation.repoUrl,
    AGENTD_SETUP_MARKER: marker,
    // Every variable the setup step reads is set, empty when unused: one the image's ENV set would be
    // taken otherwise (AGENTD_SETUP_CACHES=/run/secrets/agentd had root hand the credentials to the
    // agent's user; AGENTD_SETUP_CAPS=+setuid gave the command root).
    AGENTD_SETUP_WORK_UNIT: invocation.workUnit ?? '',
    AGENTD_SETUP_CAPS: '',
    AGENTD_SETUP_CACHES: '',
    AGENTD_SETUP_TOKEN_ORIGIN: '',
  };
  const copy = host !== undefined && (settings.copyHosts ?? []).includes(host);
  const { mounts, volumes, copyIn, copyOut } = mountsOf(session, settings, env, copy, host);
  const caps = ambientCapabilities(spec.capAdd);
  if (caps !== undefined) env.AGENTD_SETUP_CAPS = caps;
  const withValues = spec.credentials.map((c) => ({ target: c.name, value: c.value }));
  if (invocation.repoToken !== undefined) {
    withValues.push({ target: '.repo_token', value: invocation.repoToken });
    // git sends the token to this origin only (http.<origin>/.extraHeader).
    const repo = parseRepoUrl(invocation.repoUrl);
    if (repo.ok) env.AGENTD_SETUP_TOKEN_ORIGIN = repo.repo.origin;
  }
  let problem: string | undefined;
  for (const { target, value } of withValues) {
    const bytes = value.byteLength;
    if (bytes > MAX_SECRET_BYTES && problem === undefined) {
      problem = `credential ${target === '.repo_token' ? 'repo_token' : target} is ${bytes} bytes; Podman secrets must be under 512000 bytes`;
    }
  }
  // The configuration refuses this (load.ts); a session must not run with an unbounded cache instead.
  if (copy && volumes.some((v) => v.bound !== undefined)) {
    problem ??= `resources.cache keeps each cache in a file on this machine, which host ${host} cannot see`;
  }
  if (invocation.repoToken !== undefined && env.AGENTD_SETUP_TOKEN_ORIGIN === '') {
    problem ??= 'a repository URL reached the runner unchecked';
  }
  // Podman refuses empty secrets; an empty value is not a secret, so it is set as an empty variable.
  for (const { target, value } of withValues) if (value.byteLength === 0) env[target] = '';
  // All the values in one secret (chunked only past Podman's size limit): the calls a session makes do
  // not grow with its credentials. The setup step splits it (credential-bundle.ts).
  const chunks = bundleCredentials(
    withValues
      .filter(({ value }) => value.byteLength > 0)
      .map(({ target, value }) => ({ name: target, bytes: value.bytes() })),
  );
  const secrets: PlannedSecret[] = chunks.map((chunk, index) => ({
    name: secretName(instanceId, invocation.sessionId, index),
    target: `${SECRET_MOUNT_DIR}/${bundleChunkName(index)}`,
    value: new SecretValue(chunk),
  }));
  for (const chunk of chunks) chunk.fill(0);
  const graceSeconds = Math.ceil(settings.stopGraceMs / 1000);
  env.AGENTD_SETUP_GRACE = String(graceSeconds);
  const connected =
    host !== undefined && [...(settings.connectedHosts ?? []), ...(settings.copyHosts ?? [])].includes(host);
  const policy = containerPolicy({
    ...spec,
    ...(connected || settings.seccompProfile === undefined
      ? {}
      : { seccompProfile: settings.seccompProfile }),
  });
  const container: RunPlan['container'] = {
    name: containerName(instanceId, spec.agent, invocation.sessionId),
    image: spec.image,
    labels: { ...labels, [LABEL_SECRETS]: String(secrets.length) },
    env,
    secrets: secrets.map(({ name, target }) => ({ name, target })),
    network: spec.network,
    ...(spec.userNamespace === 'auto' ? { userns: 'auto' as const } : {}),
    ...policy,
    mounts,
    volumes,
    // The engine's own deadline stops the container even if this daemon never comes back.
    ...(spec.timeoutMs === undefined
      ? {}
      : { timeoutSeconds: Math.ceil(spec.timeoutMs / 1000) + graceSeconds + OUTPUT_COPY_SECONDS + 5 }),
    entrypoint: SETUP_ENTRYPOINT.slice(0, 1),
    args: [...SETUP_ENTRYPOINT.slice(1), ...spec.command],
  };
  const paths = workPaths(settings.workDir, invocation.sessionId);
  return {
    mode: connected ? 'create' : 'run',
    output: { archive: paths.archive, withheld: paths.withheld, searched: paths.searched },
    labels,
    marker,
    secrets,
    container,
    ...(copyIn === undefined ? {} : { copyIn }),
    ...(copyOut === undefined ? {} : { copyOut }),
    ...(problem === undefined ? {} : { problem }),
  };
}

/**
 * What the container gets from outside, and the variables that say where: the request and inputs
 * (read-only), the context (read-only), the agent's mounts, the root-only place the output archive goes
 * and the agent's cache volumes.
 */
function mountsOf(
  session: AssembledSession,
  settings: RunnerSettings,
  env: Record<string, string>,
  copy: boolean,
  host: string | undefined,
): Pick<CreateContainerOptions, 'mounts' | 'volumes'> &
  Pick<RunPlan, 'copyIn' | 'copyOut'> & {
    mounts: NonNullable<CreateContainerOptions['mounts']>;
    volumes: NonNullable<CreateContainerOptions['volumes']>;
  } {
  const { spec, invocation } = session;
  const paths = workPaths(settings.workDir, invocation.sessionId);
  const mounts: NonNullable<CreateContainerOptions['mounts']> = [];
  // On a host that does not see this machine's files they are copied in (entries of the work dir,
  // under /agentd), root-owned and read-only as the mounts would be.
  const entries: string[] = [];
  if (invocation.work?.request !== undefined) {
    if (copy) entries.push('request');
    else mounts.push({ source: paths.request, target: REQUEST_TARGET, readOnly: true });
    env.AGENTD_REQUEST_FILE = REQUEST_TARGET;
  }
  if (invocation.work !== undefined && invocation.work.inputs.length > 0) {
    if (copy) entries.push('input');
    else mounts.push({ source: paths.input, target: INPUT_TARGET, readOnly: true });
    env.AGENTD_INPUT_DIR = INPUT_TARGET;
  }
  if (spec.context !== undefined) {
    mounts.push({ source: spec.context, target: CONTEXT_TARGET, readOnly: true });
    env.AGENTD_CONTEXT_DIR = CONTEXT_TARGET;
  }
  mounts.push(...(spec.mounts ?? []).map((m) => ({ ...m })));
  // The setup step leaves its archive in the container's own /run/agentd/out (it makes the directory).
  // In a user namespace of its own the container's root is another host uid, which may not write
  // the root-only directory: Podman hands it this session's directory first.
  if (!copy) {
    mounts.push({
      source: paths.copy,
      target: OUTPUT_COPY_TARGET,
      readOnly: false,
      ...(spec.userNamespace === 'auto' ? { chown: true } : {}),
    });
  }
  env.AGENTD_OUTPUT_DIR = OUTPUT_TARGET;
  env.AGENTD_SETUP_COPY = OUTPUT_COPY_TARGET;
  const output = (spec.resources ?? defaultResources()).output.bytes;
  env.AGENTD_SETUP_COPY_MAX = String(outputArchiveLimit(output) + 1);
  const bound = spec.resources?.cache;
  const { cacheDir } = settings;
  const volumes = (spec.caches ?? []).map((cache) => {
    const name = cacheVolumeName(settings.instanceId, spec.agent, cache.name);
    return {
      name,
      target: cache.target,
      labels: cacheLabels(settings.instanceId, spec.agent, cache.name),
      ...(bound === undefined || cacheDir === undefined
        ? {}
        : { bound: { bytes: bound.bytes, file: cacheImageFile(cacheDir, host, name) } }),
    };
  });
  if (volumes.length > 0) env.AGENTD_SETUP_CACHES = volumes.map((v) => v.target).join(' ');
  if (!copy) return { mounts, volumes };
  return {
    mounts,
    volumes,
    ...(entries.length === 0 ? {} : { copyIn: { dir: paths.dir, entries } }),
    copyOut: { from: `${OUTPUT_COPY_TARGET}/out.tar`, to: paths.archive },
  };
}
