import { existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { refusalFix, resolveCredentials } from '../adapters/credentials.js';
import {
  type CgroupVersion,
  cgroupVersion,
  filesystemBytes,
  freeBytes,
  loopDevices,
  nearestExisting,
  onPath,
  ownDirProblem,
} from '../adapters/fs-checks.js';
import { PodmanClient, USER_NAMESPACE_SIZE } from '../adapters/podman.js';
import { PodmanError } from '../adapters/podman-errors.js';
import { readSeccompDefault, SECCOMP_FALLBACK, SECCOMP_PROFILE_FILE } from '../adapters/seccomp-profile.js';
import {
  AUTO_USERNS_USER,
  freeRangeStart,
  readSubordinateIds,
  SUBGID_FILE,
  SUBUID_FILE,
  type SubordinateRange,
} from '../adapters/subordinate-ids.js';
import { hostAllowed, seesThisMachine, tcpOnLoopback, transportOf } from '../config/hosts.js';
import { formatSize, minFreeBytes } from '../config/resources.js';
import type { AgentConfig, CredentialSource, HostConfig, Settings } from '../config/types.js';
import { configWarnings } from '../config/warnings.js';
import { AgentdError, errorMessage } from '../errors.js';
import { packageFile } from '../package-files.js';
import { outputArchiveLimit } from '../sessions/run-plan.js';
import type { CheckResult } from './check-result.js';
import { checkHttpAndNotify, unresolvedSource } from './preflight-http.js';

/**
 * The checks behind `agentd doctor`, and the cheap part of them that `agentd start` logs as warnings:
 * what would otherwise only show when the first session fails. Each result says what was found and,
 * for a problem, how to fix it. Credential values are resolved and dropped, never shown.
 */

export type { CheckResult, CheckStatus } from './check-result.js';

/** What the checks ask of one engine. */
export type PreflightPodman = Pick<
  PodmanClient,
  'version' | 'probe' | 'imageExists' | 'smokeRun' | 'inspectRemoteImage' | 'rootless'
> &
  // Asked of the local Podman only, by doctor; an engine without it is not checked for it.
  Partial<Pick<PodmanClient, 'seccompDefault'>>;

export interface PreflightOptions {
  settings: Settings;
  /** The local Podman; with hosts configured, a function that gives each host's (podman --url). */
  podman: PreflightPodman | ((host: HostConfig) => PreflightPodman);
  /** The environment credential sources are read from. */
  env: NodeJS.ProcessEnv;
  /** `cheap`: what start can afford (no container, no registry); `full`: everything (doctor). */
  depth: 'cheap' | 'full';
  signal?: AbortSignal;
  /** The daemon's uid (process.getuid()). */
  uid?: number;
}

const MiB = 1024 * 1024;
/** Below this the state dir cannot even hold a few session records and logs. */
const FAIL_BELOW_BYTES = 32 * MiB;

/**
 * The cheap checks, as `agentd start` runs them beside reconciliation: one `daemon.preflight` warning
 * per problem, then `daemon.preflight_done`. Never throws; an aborted run logs nothing more.
 */
export async function logPreflight(settings: Settings, log: Logger, signal: AbortSignal): Promise<void> {
  try {
    const results = await runPreflight({
      settings,
      podman: podmanOfHost(settings.daemon.podmanTimeoutMs),
      env: process.env,
      depth: 'cheap',
      signal,
    });
    if (signal.aborted) return;
    const problems = results.filter((r) => r.status !== 'ok');
    for (const p of problems) {
      log.warn(
        { event: 'daemon.preflight', check: p.check, status: p.status, ...(p.fix ? { fix: p.fix } : {}) },
        `${p.check}: ${p.message}`,
      );
    }
    log.info(
      { event: 'daemon.preflight_done', checks: results.length, problems: problems.length },
      problems.length === 0
        ? `preflight: ${results.length} checks ok`
        : `preflight: ${problems.length} problem(s); \`agentd doctor\` checks more`,
    );
  } catch (error) {
    if (!signal.aborted) log.warn({ event: 'daemon.preflight', check: 'preflight' }, errorMessage(error));
  }
}

/** The podman CLI for a host: with its --url and --identity (the local one without). */
export function podmanOfHost(timeoutMs: number): (host: HostConfig) => PodmanClient {
  return (host) =>
    new PodmanClient({
      timeoutMs,
      ...(host.url === undefined ? {} : { url: host.url }),
      ...(host.identity === undefined ? {} : { identity: host.identity }),
    });
}

/** One engine the checks look at: its podman, the agents that may run there, how its checks are named. */
interface Target {
  podman: PreflightPodman;
  agents: AgentConfig[];
  /** `` for the local Podman without hosts, `host NAME: ` with them. */
  prefix: string;
  host?: HostConfig;
}

export async function runPreflight(options: PreflightOptions): Promise<CheckResult[]> {
  const { settings } = options;
  const podmanOf = (host: HostConfig) =>
    typeof options.podman === 'function' ? options.podman(host) : options.podman;
  // Without hosts: the local Podman, checked as it always was. With hosts: every host, side by side.
  const targets: Target[] =
    settings.hosts.length === 0
      ? [
          {
            podman: podmanOf({ name: 'local', maxSessions: 1, labels: {} }),
            agents: settings.agents,
            prefix: '',
          },
        ]
      : settings.hosts.map((host) => ({
          podman: podmanOf(host),
          agents: settings.agents.filter((agent) => hostAllowed(agent, host)),
          prefix: `host ${host.name}: `,
          host,
        }));
  const engines = await Promise.all(targets.map((target) => checkEngine(options, target)));
  return [
    ...engines.flat(),
    ...(await checkCredentials(settings.agents, options.env)),
    ...checkDirectories(settings),
    ...checkBoundedCaches(settings, options.env),
    ...checkUserNamespaces(settings, options.uid),
    ...checkConfigWarnings(settings),
    ...checkCgroups(settings),
    // Binding the HTTP address to test it would race the server start opens: doctor only.
    ...(options.depth === 'full' ? await checkHttpAndNotify(settings, options.env) : []),
  ];
}

/**
 * What a bounded cache (`resources.cache`) needs on this machine: the tools that make its filesystem and
 * loop devices to mount it (Podman loop-mounts it, which a rootless Podman cannot).
 */
export function checkBoundedCaches(
  settings: Pick<Settings, 'agents'>,
  env: NodeJS.ProcessEnv,
  loops: () => boolean = loopDevices,
): CheckResult[] {
  const agents = settings.agents.filter((a) => a.caches.length > 0 && a.resources.cache !== undefined);
  if (agents.length === 0) return [];
  const check = 'bounded caches';
  const names = agents.map((a) => a.name).join(', ');
  const missing = [
    ['fallocate', 'util-linux'],
    ['mkfs.ext4', 'e2fsprogs'],
  ].filter(([tool]) => !onPath(tool as string, env.PATH));
  if (missing.length > 0) {
    return [
      {
        check,
        status: 'fail',
        message: `${missing.map(([tool]) => tool).join(' and ')} not on PATH: the caches of ${names} (resources.cache) cannot be made`,
        fix: `apt-get install ${missing.map(([, pkg]) => pkg).join(' ')}, or remove resources.cache`,
      },
    ];
  }
  if (!loops()) {
    return [
      {
        check,
        status: 'fail',
        message: `this kernel offers no loop devices (/dev/loop-control): the caches of ${names} (resources.cache) cannot be mounted`,
        fix: 'modprobe loop (and give the machine or its container /dev/loop*), or remove resources.cache',
      },
    ];
  }
  return [
    { check, status: 'ok', message: `fallocate, mkfs.ext4 and loop devices for the caches of ${names}` },
  ];
}

/**
 * What `user_namespace: auto` needs of this machine: a rootful Podman gives each such session a range
 * of USER_NAMESPACE_SIZE ids from the `containers` entries of /etc/subuid and /etc/subgid, and without
 * them every session fails (Podman: "could not find enough available IDs"). A host that is another
 * machine (ssh://, tcp://) has its own files, which are not looked at; a rootless Podman takes the
 * ranges from its user's own, which are not looked at either. `agentd start` refuses to start on a fail.
 */
export function checkUserNamespaces(
  settings: Pick<Settings, 'agents' | 'hosts' | 'daemon'>,
  uid: number = process.getuid?.() ?? 0,
  read: (path: string) => SubordinateRange[] | undefined = readSubordinateIds,
): CheckResult[] {
  const here = settings.hosts.filter((h) => seesThisMachine(h));
  const agents = settings.agents.filter(
    (a) => a.userNamespace === 'auto' && (settings.hosts.length === 0 || here.some((h) => hostAllowed(a, h))),
  );
  if (agents.length === 0 || uid !== 0) return [];
  const check = 'user namespaces';
  const names = `${agents.map((a) => a.name).join(', ')} (user_namespace: auto)`;
  const files = [SUBUID_FILE, SUBGID_FILE].map((path) => ({ path, ranges: read(path) }));
  const unreadable = files.filter((f) => f.ranges === undefined).map((f) => f.path);
  if (unreadable.length > 0) {
    return [
      {
        check,
        status: 'fail',
        message: `${unreadable.join(' and ')} cannot be read: the sessions of ${names} need a ${AUTO_USERNS_USER} range there`,
        fix: `Make ${unreadable.join(' and ')} readable by root`,
      },
    ];
  }
  const counts = files.map((f) =>
    (f.ranges ?? []).filter((r) => r.user === AUTO_USERNS_USER).reduce((n, r) => n + r.count, 0),
  );
  const fit = Math.floor(Math.min(...counts) / USER_NAMESPACE_SIZE);
  if (fit === 0) {
    const start = freeRangeStart(
      files.map((f) => f.ranges ?? []),
      32 * USER_NAMESPACE_SIZE,
    );
    const short = files.filter((_, i) => (counts[i] ?? 0) < USER_NAMESPACE_SIZE).map((f) => f.path);
    return [
      {
        check,
        status: 'fail',
        message: `${short.join(' and ')} ${short.length > 1 ? 'have' : 'has'} no ${AUTO_USERNS_USER} range of at least ${USER_NAMESPACE_SIZE} ids: every session of ${names} would fail to start (Podman: could not find enough available IDs)`,
        fix: `Add the line ${AUTO_USERNS_USER}:${start}:${32 * USER_NAMESPACE_SIZE} to /etc/subuid and /etc/subgid (ids no other entry there has; room for 32 such sessions at once), or remove user_namespace: auto`,
      },
    ];
  }
  const most =
    settings.hosts.length === 0 ? settings.daemon.maxSessions : here.reduce((n, h) => n + h.maxSessions, 0);
  if (fit < most) {
    return [
      {
        check,
        status: 'warn',
        message: `the ${AUTO_USERNS_USER} ranges of /etc/subuid and /etc/subgid hold ${fit} sessions of ${USER_NAMESPACE_SIZE} ids at once, fewer than the ${most} that may run here: a session of ${names} beyond them fails to start`,
        fix: `Give ${AUTO_USERNS_USER} ${most * USER_NAMESPACE_SIZE} ids or more in both files (ids no other entry there has)`,
      },
    ];
  }
  return [
    {
      check,
      status: 'ok',
      message: `${AUTO_USERNS_USER} ranges in /etc/subuid and /etc/subgid for ${fit} sessions of ${names} at once`,
    },
  ];
}

/** What `validate` warns about in the configuration, logged at start and shown by doctor. */
export function checkConfigWarnings(settings: Pick<Settings, 'agents'>): CheckResult[] {
  return configWarnings(settings).map((w) => ({
    check: `agent ${w.agent}: cap_add`,
    status: 'warn',
    message: w.message,
    fix: w.fix,
  }));
}

/**
 * The cgroup version of this machine, where sessions run unless every host is another machine: cgroup
 * v1 does not charge a container's TCP socket buffers to its memory limit (measured: 700 MB held in
 * socket buffers while the session's cgroup showed 6 MB), and the host-wide tcp_mem pressure that
 * follows slows every TCP user, the daemon included; v2 charges them.
 */
export function checkCgroups(
  settings: Pick<Settings, 'hosts'>,
  version: () => CgroupVersion | undefined = cgroupVersion,
): CheckResult[] {
  const here = (h: HostConfig) =>
    seesThisMachine(h) || (transportOf(h) === 'tcp' && tcpOnLoopback(h.url ?? ''));
  if (settings.hosts.length > 0 && !settings.hosts.some(here)) return [];
  const found = version();
  // Neither layout (no /sys/fs/cgroup): Podman's own checks say more than a guess would.
  if (found === undefined) return [];
  if (found === 'v2') {
    return [
      {
        check: 'cgroups',
        status: 'ok',
        message: "cgroup v2: sessions' socket buffers count against their memory limit",
      },
    ];
  }
  return [
    {
      check: 'cgroups',
      status: 'warn',
      message:
        "this machine runs cgroup v1, which does not charge a session's socket buffer memory to its memory limit: an agent can hold hundreds of MB in TCP buffers beyond resources.memory, and the machine-wide TCP memory pressure that follows slows every connection, the daemon's included",
      fix: 'Boot with cgroup v2: systemd.unified_cgroup_hierarchy=1 on the kernel command line, and no =0 there (Debian: GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)',
    },
  ];
}

/** Reachability and version, then (full depth) a smoke run, and every image its agents use. */
async function checkEngine(options: PreflightOptions, target: Target): Promise<CheckResult[]> {
  const podman = await checkPodman(options, target);
  const transport = target.host === undefined ? [] : checkTransport(target.host);
  const users = podman.status === 'fail' ? [] : await checkUsers(options, target);
  const images = podman.status === 'fail' ? [] : await checkImages(options, target);
  const runtime =
    options.depth === 'full' && podman.status !== 'fail' ? [await checkRuntime(options, target, images)] : [];
  // Start derives the profile itself and warns then: doctor only.
  const seccomp =
    options.depth === 'full' && podman.status !== 'fail' && transportOf(target.host ?? {}) === 'local'
      ? await checkSeccomp(options, target)
      : [];
  return [podman, ...transport, ...users, ...runtime, ...seccomp, ...images.map((i) => i.result)];
}

/**
 * Whether session containers on the local Podman will refuse user namespaces: Podman's default seccomp
 * profile can be read and derived from (adapters/seccomp-profile.ts). A remote engine keeps its own.
 */
async function checkSeccomp({ signal, settings }: PreflightOptions, target: Target): Promise<CheckResult[]> {
  const { podman } = target;
  if (podman.seccompDefault === undefined) return [];
  const locate = podman.seccompDefault.bind(podman);
  const check = `${target.prefix}seccomp profile`;
  const found = await readSeccompDefault(() => locate(signal));
  if ('problem' in found) {
    return [{ check, status: 'warn', message: `${found.problem}: ${SECCOMP_FALLBACK}`, fix: found.fix }];
  }
  return [
    {
      check,
      status: 'ok',
      message: `Podman's default ${found.source} with user namespaces and keyrings refused (${settings.daemon.stateDir}/${SECCOMP_PROFILE_FILE}, written at start)`,
    },
  ];
}

/**
 * A daemon that is not root, on a rootful Podman that sees its files: the containers' users are this
 * machine's uids, so an agent's user (uid 61000, or an image's own) may be the daemon's own and own
 * the work files mounted into its container, and the setup step (root without DAC_OVERRIDE) cannot
 * write the output archive into the daemon's directory.
 */
async function checkUsers({ signal, uid }: PreflightOptions, target: Target): Promise<CheckResult[]> {
  const self = uid ?? process.getuid?.() ?? 0;
  if (self === 0 || !seesThisMachine(target.host ?? {})) return [];
  const check = target.host === undefined ? 'podman user' : `host ${target.host.name}: podman user`;
  const where = target.host?.url === undefined ? '' : ` at ${target.host.url}`;
  try {
    if (await target.podman.rootless(signal)) return [];
  } catch (error) {
    return [
      {
        check,
        status: 'warn',
        message: `could not ask Podman${where} whether it is rootless: ${errorMessage(error)}`,
      },
    ];
  }
  return [
    {
      check,
      status: 'fail',
      message: `Podman${where} runs containers as root without a user namespace, and agentd runs as uid ${self}: agents' users (uid 61000, or an image's own) are this machine's uids, so one may be agentd's own and own the session's work files, and sessions' output archives cannot be written`,
      fix: `Run agentd as root with root's Podman (examples/agentd.service), or as this user with its own rootless Podman (no url, or unix:///run/user/${self}/podman/podman.sock)`,
    },
  ];
}

async function checkPodman({ signal, settings }: PreflightOptions, target: Target): Promise<CheckResult> {
  const { host, podman } = target;
  const check = host === undefined ? 'podman' : `host ${host.name}`;
  const where = host?.url === undefined ? '' : ` at ${host.url}`;
  try {
    // A host answers for its own engine (the server's version); the local podman for itself.
    const version =
      host?.url === undefined
        ? await podman.version(signal)
        : await podman.probe(settings.daemon.hostProbeTimeoutMs, signal);
    const major = Number(version.split('.')[0]);
    if (Number.isFinite(major) && major < 4) {
      return {
        check,
        status: 'warn',
        message: `podman ${version}${where} is older than 4, which agentd is tested with`,
        fix: 'Install Podman 4 or newer (Debian 12: apt-get install -y podman runc)',
      };
    }
    return { check, status: 'ok', message: `podman ${version}${where}` };
  } catch (error) {
    const missing = error instanceof AgentdError && error.code === 'PODMAN_NOT_INSTALLED';
    const unreachable = error instanceof AgentdError && error.code === 'PODMAN_UNREACHABLE';
    return {
      check,
      status: 'fail',
      message: missing ? 'podman is not installed or not on PATH' : errorMessage(error),
      fix: missing
        ? 'Install Podman 4+ and runc (Debian: apt-get install -y podman runc), or fix the PATH agentd runs with'
        : // An ssh:// host's refusal names its own fix (sshd, the key, known_hosts): the transport's is
          // the API service, which is reached only after ssh is.
          error instanceof PodmanError && error.fix !== undefined
          ? error.fix
          : unreachable && host !== undefined
            ? reachFix(host)
            : host?.url !== undefined
              ? // Not this machine's podman: the engine at the url is the one that failed (a timeout, say).
                `Check that Podman answers there: podman --url ${host.url}${host.identity === undefined ? '' : ` --identity ${host.identity}`} info`
              : 'Check that Podman works for this user: podman info',
    };
  }
}

function reachFix(host: HostConfig): string {
  const transport = transportOf(host);
  if (transport === 'ssh') {
    return `On ${host.name}: systemctl enable --now podman.socket (rootless: systemctl --user enable --now podman.socket, and loginctl enable-linger USER); here: ssh -i ${host.identity ?? 'KEY'} to it works without a prompt, and the socket path in the url exists there`;
  }
  if (transport === 'unix')
    return `Start the Podman API service on that socket: systemctl enable --now podman.socket`;
  if (transport === 'tcp')
    return 'Start podman system service tcp://... on that host and check that this machine can reach the port';
  return 'Check that Podman works for this user: podman info';
}

/** How agentd talks to the host: a key that others can read, or a transport without security, is a problem. */
function checkTransport(host: HostConfig): CheckResult[] {
  const transport = transportOf(host);
  const check = `host ${host.name}: transport`;
  if (transport === 'tcp') {
    return [
      {
        check,
        status: 'warn',
        message: `${host.url} has neither encryption nor authentication (insecure: true): credentials cross the network in clear, and anyone who reaches the port controls the host`,
        fix: 'Use ssh:// (or unix:// on the same machine)',
      },
    ];
  }
  if (transport !== 'ssh') return [];
  const results: CheckResult[] = [];
  if (host.identity !== undefined) {
    try {
      const mode = statSync(host.identity).mode & 0o777;
      results.push(
        (mode & 0o077) === 0
          ? { check, status: 'ok', message: `ssh with the key ${host.identity} (mode 0${mode.toString(8)})` }
          : {
              check,
              status: 'fail',
              message: `the key ${host.identity} is readable by others (mode 0${mode.toString(8)}); ssh refuses it and anyone on this machine could use it`,
              fix: `chmod 600 ${host.identity}`,
            },
      );
    } catch (error) {
      results.push({ check, status: 'fail', message: `the key ${host.identity}: ${errorMessage(error)}` });
    }
  }
  if (!(host.url ?? '').includes('secure=true')) {
    results.push({
      check: `host ${host.name}: host key`,
      status: 'warn',
      message:
        "podman checks the host's ssh key only against ~/.ssh/known_hosts of the daemon's user, and accepts (and records) an unknown host there",
      fix: `Put the host's key in that known_hosts first (ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts, then compare its fingerprint) and add ?secure=true to the url`,
    });
  }
  return results;
}

interface ImageCheck {
  image: string;
  present: boolean;
  result: CheckResult;
}

/** Agents named in an image's check at most; the others are counted. */
const MAX_NAMED_USERS = 10;

function namesOf(agents: readonly string[]): string {
  if (agents.length <= MAX_NAMED_USERS) return agents.join(', ');
  return `${agents.slice(0, MAX_NAMED_USERS).join(', ')} and ${agents.length - MAX_NAMED_USERS} more agents`;
}

async function checkImages(options: PreflightOptions, target: Target): Promise<ImageCheck[]> {
  const { signal } = options;
  const { podman } = target;
  // Pushed, not copied per agent: 40,000 agents of one image (a 1.6 MB file) took 39 s to start.
  const users = new Map<string, string[]>();
  for (const agent of target.agents) {
    const names = users.get(agent.image);
    if (names === undefined) users.set(agent.image, [agent.name]);
    else names.push(agent.name);
  }
  return Promise.all(
    [...users].map(async ([image, agents]): Promise<ImageCheck> => {
      const check = `${target.prefix}image ${image}`;
      const usedBy = `used by ${namesOf(agents)}`;
      try {
        if (await podman.imageExists(image, signal)) {
          return { image, present: true, result: { check, status: 'ok', message: `present (${usedBy})` } };
        }
      } catch (error) {
        return { image, present: false, result: { check, status: 'fail', message: errorMessage(error) } };
      }
      if (image.startsWith('localhost/')) {
        return {
          image,
          present: false,
          result: {
            check,
            status: 'fail',
            message: `not present (${usedBy}); localhost/ images are never pulled, so every session of it fails`,
            fix: imageFix(image),
          },
        };
      }
      if (options.depth === 'cheap') {
        return {
          image,
          present: false,
          result: {
            check,
            status: 'warn',
            message: `not present (${usedBy}); the first session pulls it (within daemon.pull_timeout)`,
            fix: `Pull it now to be sure it can be: podman pull ${image}`,
          },
        };
      }
      try {
        await podman.inspectRemoteImage(image, signal);
        return {
          image,
          present: false,
          result: {
            check,
            status: 'ok',
            message: `not present, and pullable: the first session pulls it (within daemon.pull_timeout) (${usedBy})`,
          },
        };
      } catch (error) {
        return {
          image,
          present: false,
          result: {
            check,
            status: 'fail',
            message: `not present and cannot be pulled (${usedBy}): ${podmanDetail(error)}`,
            fix: `Check the name and the registry (podman pull ${image}), or build it under that name`,
          },
        };
      }
    }),
  );
}

async function checkRuntime(
  options: PreflightOptions,
  target: Target,
  images: ImageCheck[],
): Promise<CheckResult> {
  const check = `${target.prefix}runtime`;
  const image = images.find((i) => i.present)?.image;
  if (image === undefined) {
    return {
      check,
      status: 'warn',
      message: 'not checked: no agent image is present to run',
      fix: 'Fix the image checks, then run agentd doctor again',
    };
  }
  const started = Date.now();
  try {
    await target.podman.smokeRun(image, options.signal);
    return {
      check,
      status: 'ok',
      message: `podman run --rm ${image} true works (${Date.now() - started} ms)`,
    };
  } catch (error) {
    const code = error instanceof AgentdError ? error.code : undefined;
    const quirk = code === 'PODMAN_RLIMIT' || code === 'PODMAN_CGROUPS';
    const [first, ...rest] = errorMessage(error).split('\n');
    return {
      check,
      status: 'fail',
      message: `podman run --rm ${image} true fails: ${first}`,
      fix: quirk
        ? `${rest.join(' ')} Then restart the daemon.`
        : 'Run it yourself to see the whole error, and check podman info',
    };
  }
}

async function checkCredentials(agents: AgentConfig[], env: NodeJS.ProcessEnv): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const agent of agents) {
    const sources: { name: string; source: CredentialSource }[] = [
      ...agent.credentials,
      ...(agent.repoToken ? [{ name: 'repo_token', source: agent.repoToken }] : []),
    ];
    const first = results.length;
    for (const { name, source } of sources) {
      const check = `credential ${agent.name}/${name}`;
      // One source at a time through the daemon's own resolver, so every source is reported.
      const single: AgentConfig =
        name === 'repo_token'
          ? { ...agent, credentials: [], repoToken: source }
          : { ...agent, credentials: [{ name, source }], repoToken: undefined };
      try {
        const resolved = await resolveCredentials(single, env);
        const value = name === 'repo_token' ? resolved.repoToken : resolved.credentials[0]?.value;
        // Allowed (an empty variable is passed as one), but most often a file or a variable left
        // unfilled: every session would run with it and fail later, in the agent's own words.
        if (value?.byteLength === 0) results.push(emptyCredential(check, name, source));
        else
          results.push(
            openCredentialFile(check, source) ?? {
              check,
              status: 'ok',
              message: `${source.raw} resolves (the value is not shown)`,
            },
          );
      } catch (error) {
        results.push(
          unresolvedSource(check, source, error, 'systemd: EnvironmentFile=, e.g. /etc/agentd/agentd.env'),
        );
      }
    }
    // Each resolves alone; together they may not fit in the command's environment (resolveCredentials
    // refuses the one that crosses its bound, as a session would).
    if (agent.credentials.length > 1 && results.slice(first).every((r) => r.status !== 'fail')) {
      try {
        await resolveCredentials({ ...agent, repoToken: undefined }, env);
      } catch (error) {
        const name = /^credential ([^:]+): /.exec(errorMessage(error))?.[1];
        const check = `credential ${agent.name}/${name ?? 'credentials'}`;
        const fix = refusalFix(error);
        const failed: CheckResult = {
          check,
          status: 'fail',
          message: errorMessage(error).replace(/^credential [^:]+: /, ''),
          ...(fix === undefined ? {} : { fix }),
        };
        const at = results.findIndex((r, i) => i >= first && r.check === check);
        if (at === -1) results.push(failed);
        else results[at] = failed;
      }
    }
  }
  return results;
}

/**
 * A credential file other users may read (any local user has the value) or write (they choose what the
 * agent gets): a warning with the chmod. The daemon reads it as its own user, so 0600 loses nothing.
 */
function openCredentialFile(check: string, source: CredentialSource): CheckResult | undefined {
  if (source.kind !== 'file') return undefined;
  let mode: number;
  try {
    mode = statSync(source.path).mode & 0o777;
  } catch {
    return undefined;
  }
  const read = (mode & 0o044) !== 0;
  const write = (mode & 0o022) !== 0;
  if (!read && !write) return undefined;
  const may = read && write ? 'read and write' : read ? 'read' : 'write';
  return {
    check,
    status: 'warn',
    message: `${source.raw} resolves, but users other than its owner may ${may} ${source.path} (mode 0${mode.toString(8).padStart(3, '0')})`,
    fix: `chmod 600 ${source.path} (and chown it to the daemon's user if it is not)`,
  };
}

/** A credential source that resolves to nothing: a warning, with where to put the value. */
function emptyCredential(check: string, name: string, source: CredentialSource): CheckResult {
  const given =
    name === 'repo_token'
      ? 'the clone gets an empty repo_token'
      : `sessions get ${name} set to the empty string`;
  const where =
    source.kind === 'env'
      ? `Set ${source.name} to the value in the daemon's environment (systemd: EnvironmentFile=)`
      : `Write the value into ${source.path} (a final line ending is dropped)`;
  return {
    check,
    status: 'warn',
    message: `${source.raw} resolves to an empty value: ${given}`,
    fix: `${where}, or remove the credential if the agent needs none`,
  };
}

function checkDirectories(settings: Settings): CheckResult[] {
  const { stateDir, socket, logMaxBytes, historyLimit, maxSessions } = settings.daemon;
  const results: CheckResult[] = [];
  for (const [check, dir] of [
    ['state dir', stateDir],
    ['socket dir', dirname(socket)],
  ] as const) {
    const problem = ownDirProblem(dir);
    results.push(
      problem === undefined
        ? {
            check,
            status: 'ok',
            message: existsSync(dir)
              ? `${dir}: owned by this user, not writable by others`
              : `${dir} does not exist yet; agentd creates it (mode 0700)`,
          }
        : {
            check,
            status: 'fail',
            message: `${dir} ${problem.split(' Fix: ')[0]}`,
            fix: problem.split(' Fix: ')[1],
          },
    );
  }
  // Room for the kept history and the running sessions' logs, each up to log_max_bytes.
  const wanted = logMaxBytes * (historyLimit + maxSessions) + 64 * MiB;
  try {
    const { checked, bytes } = freeBytes(stateDir);
    const free = `${Math.floor(bytes / MiB)} MiB free on ${checked}`;
    if (bytes < FAIL_BELOW_BYTES) {
      results.push({
        check: 'free space',
        status: 'fail',
        message: `${free}: sessions cannot write their records and logs`,
        fix: `Free space there, or set daemon.state_dir on another file system`,
      });
    } else if (bytes < wanted) {
      results.push({
        check: 'free space',
        status: 'warn',
        message: `${free}; the kept history may need up to ${Math.ceil(wanted / MiB)} MiB`,
        fix: 'Free space, or lower daemon.history or daemon.log_max_bytes',
      });
    } else {
      results.push({ check: 'free space', status: 'ok', message: free });
    }
  } catch (error) {
    results.push({ check: 'free space', status: 'warn', message: `cannot check: ${errorMessage(error)}` });
  }
  results.push(...checkRecordsRoom(settings));
  return results;
}

/**
 * Whether daemon.records_max_size fits the records' filesystem beside the room a session's output takes
 * while it is sealed (its archive in the work dir and the copy unpacked from it, up to twice the
 * archive's bound of the largest resources.output, per session running at once). A bound that does not
 * fit never removes a record before the records fill the filesystem, and then the sessions' outputs
 * are not kept, their records wait unsealed for room, and a state dir on that filesystem turns the
 * daemon degraded, until someone frees space by hand. Not said when records_min_free keeps that room
 * free (it removes the oldest records for it): a floor of 5% does on a large filesystem, not on a small
 * one.
 */
function checkRecordsRoom(settings: Settings): CheckResult[] {
  const { recordsDir, recordsMaxBytes, recordsMinFree, maxSessions, stateDir } = settings.daemon;
  let room: { checked: string; bytes: number };
  // The archive waits in the state dir's work dir: on the records' filesystem only when both share it.
  let copies: 1 | 2;
  try {
    room = filesystemBytes(recordsDir);
    copies = statSync(room.checked).dev === statSync(nearestExisting(stateDir)).dev ? 2 : 1;
  } catch (error) {
    return [{ check: 'records size', status: 'warn', message: `cannot check: ${errorMessage(error)}` }];
  }
  const largestOutput = Math.max(0, ...settings.agents.map((agent) => agent.resources.output.bytes));
  const sealing = largestOutput === 0 ? 0 : copies * outputArchiveLimit(largestOutput) * maxSessions;
  if (room.bytes <= 0 || recordsMaxBytes + sealing <= room.bytes) return [];
  // records_min_free keeps at least that room free by removing the oldest records: the seals find it.
  const floor = minFreeBytes(recordsMinFree, room.bytes);
  if (floor > 0 && floor >= sealing) return [];
  const whole = `${Math.floor(room.bytes / MiB)} MiB`;
  const fits = Math.floor((room.bytes - sealing) / MiB) * MiB;
  const beside =
    sealing === 0
      ? ''
      : ` beside ${Math.ceil(sealing / MiB)} MiB for the outputs of ${maxSessions} session(s) being sealed (${copies === 2 ? 'twice the archive' : 'the archive'} of resources.output ${formatSize(largestOutput)} each)`;
  return [
    {
      check: 'records size',
      status: 'warn',
      message: `daemon.records_max_size is ${formatSize(recordsMaxBytes)}, more than the filesystem of ${recordsDir} (${whole}, on ${room.checked}) holds${beside}: retention removes no record for size before the records fill it; then sessions' outputs are not kept (their output says the state dir was full), records wait unsealed for room, and a state dir on that filesystem turns the daemon degraded, until space is freed by hand`,
      fix:
        fits >= MiB
          ? `Set daemon.records_max_size to ${formatSize(fits)} or less (less still for the state dir's own files, if it shares that filesystem), or daemon.records_min_free to ${Math.ceil(sealing / MiB)}m or more, or daemon.records_dir on a larger filesystem`
          : `Set daemon.records_dir on a larger filesystem, or lower resources.output`,
    },
  ];
}

function imageFix(image: string): string {
  return `Build or import it under that exact name (podman build -t ${image} ..., podman import); agentd's Debian base image: bash ${packageFile('scripts/build-image.sh')} ${image}`;
}

function podmanDetail(error: unknown): string {
  return error instanceof PodmanError && error.stderr.trim() !== ''
    ? (error.stderr.trim().split('\n').pop() ?? errorMessage(error))
    : errorMessage(error);
}
