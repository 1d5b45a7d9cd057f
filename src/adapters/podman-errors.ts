import { durationSetting } from '../duration.js';
import { AgentdError, type ErrorCode } from '../errors.js';
import { packageFile } from '../package-files.js';

const CONTAINERS_CONF_FIX =
  'Create a containers.conf with\n' +
  '  [containers]\n  default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' +
  '  [engine]\n  runtime = "runc"\n' +
  'and point CONTAINERS_CONF at it (or install it as /etc/containers/containers.conf); ' +
  'use limits at or below `ulimit -Hn` and install runc. See "Troubleshooting" in the README.';

export interface PodmanFailure {
  operation: string;
  /** The podman argv; callers guarantee it never carries a credential value. */
  argv: string[];
  exitCode?: number;
  stderr: string;
  spawnErrorCode?: string;
  timedOut?: boolean;
  timeoutMs?: number;
  /** The setting that gave timeoutMs (daemon.podman_timeout when absent). */
  timeoutSetting?: string;
  /** The call printed more than it may (its maxBuffer) and was ended. */
  tooLarge?: boolean;
  cause?: unknown;
}

/** A podman call that failed, with the command line, its exit code and stderr. */
export class PodmanError extends AgentdError {
  readonly argv: string[];
  readonly exitCode: number | undefined;
  readonly stderr: string;
  /**
   * What to do about it, as `agentd doctor` says it, when the failure tells (an ssh:// host's refusal):
   * else doctor's fix is the one for the host's transport.
   */
  readonly fix: string | undefined;
  constructor(code: ErrorCode, message: string, failure: PodmanFailure, fix?: string) {
    super(code, message, { operation: failure.operation, cause: failure.cause });
    this.name = 'PodmanError';
    this.argv = failure.argv;
    this.exitCode = failure.exitCode;
    this.stderr = failure.stderr;
    this.fix = fix;
  }
}

/** What the podman client says when it cannot reach the engine behind --url (remote hosts only). */
const UNREACHABLE =
  /unable to connect to Podman socket|Cannot connect to Podman|failed to connect: |ssh: handshake failed|connection refused|connection reset by peer|no route to host|broken pipe|unexpected EOF|i\/o timeout/i;

/** Podman 4.3's secrets files (secrets.json, filedriver/secretsdata.json) cut short or out of step. */
const SECRET_STORE = /unexpected end of JSON input|no secret data with ID/i;

/**
 * A line of Podman 4.3 (containers/image) saying a pull from a registry failed: whatever it says of the
 * network (connection refused, reset, i/o timeout) is the registry's or its proxy's, not the Podman host's.
 */
const REGISTRY_ERROR =
  /initializing source docker:\/\/|pinging container registry|reading manifest |reading image "docker:\/\/|unable to copy from source|(?:reading|writing|fetching|copying) blob|copying system image|parsing image configuration|proxyconnect tcp/i;

/**
 * The query of every URL in a text, which is hidden: a registry that keeps its blobs in object storage
 * answers a blob's GET with a redirect to a presigned URL (X-Amz-Signature, X-Goog-Signature, `sig=`, a
 * token), and Podman's error for a blob it then could not fetch (`reading blob sha256:...: Get
 * "https://...?X-Amz-Signature=...": ...`, `parsing image configuration: Get ...` for the image's config)
 * names that URL whole: a credential to the image's layers in the session's record and the daemon's log.
 */
const URL_QUERY = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s"'?#\\]*)\?[^\s"'#\\]*/gi;

/** The text with the query of each URL in it hidden (URL_QUERY). */
function hideUrlQueries(text: string): string {
  return text.replace(URL_QUERY, '$1?(query hidden)');
}

/** Podman's stderr says it could not reach the engine (whatever exit code it chose). */
export function unreachableOutput(stderr: string): boolean {
  return pullFailure(stderr) === undefined && UNREACHABLE.test(stderr);
}

interface PullFailure {
  /** The registry's host[:port], when Podman named it or the image reference does. */
  registry: string | undefined;
  /** The error without Podman's prefixes, e.g. `dial tcp 127.0.0.1:1: connect: connection refused`. */
  reason: string;
  /** The image reference Podman tried to pull. */
  ref: string | undefined;
}

/**
 * The pull of an image from its registry failed: Podman's own final `Error:` line (the retries before it
 * are warnings) is one of containers/image's. Undefined when the final error is about anything else (an
 * engine that cannot be reached after "Trying to pull" stays that).
 */
function pullFailure(stderr: string): PullFailure | undefined {
  if (
    !/initializing source|pinging container registry|reading manifest|blob|image configuration|proxyconnect|docker:\/\//i.test(
      stderr,
    )
  )
    return undefined;
  const lines = stderr.split('\n').filter((line) => line.trim() !== '');
  const last = [...lines].reverse().find((line) => line.startsWith('Error: ')) ?? lines.at(-1) ?? '';
  if (!REGISTRY_ERROR.test(last)) return undefined;
  const line = hideUrlQueries(last.replace(/^Error: /, '')).slice(0, DETAIL_LINE_CHARS);
  const ref = /docker:\/\/([^\s"]+?)"?: /.exec(line)?.[1];
  const registry =
    /pinging container registry ([^\s:]+(?::[0-9]+)?):/.exec(line)?.[1] ??
    /reading manifest \S+ in ([^\s/]+)\//.exec(line)?.[1];
  const reason = line.replace(
    /^(?:unable to copy from source |initializing source |reading image )"?docker:\/\/[^\s"]+?"?: /,
    '',
  );
  return { registry, reason, ref };
}

/**
 * Podman was still pulling when the call's deadline passed: the Podman host answered, the registry did
 * not (in time). Podman's last retry warning, if any, says why.
 */
function pullTimedOut(operation: string, image: string, failure: PodmanFailure): PodmanError {
  const registry = registryOf(image) ?? 'its registry';
  const setting = failure.timeoutSetting ?? 'daemon.podman_timeout';
  const warning = [
    ...failure.stderr.matchAll(/level=warning msg="Failed, retrying in .*?\. Error: (.*)"\s*$/gm),
  ].at(-1)?.[1];
  const reason =
    warning === undefined
      ? ''
      : ` (its last try: ${hideUrlQueries(
          warning.replaceAll('\\"', '"').replace(/^initializing source docker:\/\/[^\s"]+?: /, ''),
        ).slice(0, DETAIL_LINE_CHARS)})`;
  return new PodmanError(
    'PODMAN_TIMEOUT',
    `${operation}: Podman was still pulling image ${image} from ${registry} when the call's deadline of ${durationSetting(failure.timeoutMs ?? 0)} (${setting}) passed${reason}; the Podman host answered, the registry did not in time: check that ${registry} answers from the machine Podman runs on (for a host in hosts:, that host), or, for an image that takes long to pull, pull it there beforehand (\`podman pull ${image}\`) or raise ${setting}`,
    failure,
  );
}

/** The registry an image reference pulls from (Podman's rule: a first part with a dot or a port, or localhost). */
function registryOf(image: string): string | undefined {
  const first = image.split('/')[0] ?? '';
  return image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')
    ? first
    : undefined;
}

function pullError(operation: string, image: string | undefined, pull: PullFailure, failure: PodmanFailure) {
  const ref = image ?? pull.ref ?? 'the image';
  const registry = pull.registry ?? (image === undefined ? undefined : registryOf(image)) ?? 'its registry';
  const { reason } = pull;
  const where = 'the machine Podman runs on (for a host in hosts:, that host)';
  if (/manifest unknown|name unknown|not found/i.test(reason)) {
    return new PodmanError(
      'IMAGE_NOT_FOUND',
      `${operation}: image ${ref} is not in ${registry} (${reason}); check the name and the tag (\`podman pull ${ref}\` on ${where})`,
      failure,
    );
  }
  // Fetched, but not stored where Podman runs: not the registry's failure.
  if (/no space left on device|disk quota exceeded|adding layer|ApplyLayer|insufficient UIDs/i.test(reason)) {
    const room = /no space left on device|disk quota exceeded/i.test(reason)
      ? 'it has no room left there: free space (`podman system df`, `podman image prune`) or give its image store more'
      : 'check its image store (rootless: the subordinate ids in /etc/subuid and /etc/subgid)';
    return new PodmanError(
      'IMAGE_PULL_FAILED',
      `${operation}: image ${ref} was fetched from ${registry} but could not be stored by Podman on ${where}: ${reason}; ${room}`,
      failure,
    );
  }
  let fix: string;
  if (/proxyconnect/i.test(reason)) {
    fix = `the proxy Podman is set to use (HTTPS_PROXY in the environment of podman, or of its API service on a host) did not let it through: fix that proxy, or add ${registry} to NO_PROXY`;
  } else if (/no such host|server misbehaving|name resolution/i.test(reason)) {
    fix = `the registry's name does not resolve on ${where}: check the image name and that machine's DNS`;
  } else if (/unauthorized|authentication required|denied/i.test(reason)) {
    fix = `the registry refused the pull: log in on ${where} as the user Podman runs as (\`podman login ${registry}\`), or check the name (registries answer this for an image that does not exist too)`;
  } else if (/x509|certificate|HTTP response to HTTPS client|tls: /i.test(reason)) {
    fix = `the registry's TLS failed: give it a certificate that machine trusts, or, for a registry without TLS, list it with insecure = true in registries.conf there`;
  } else if (
    /connection refused|connection reset|no route to host|network is unreachable|timeout|unexpected EOF|broken pipe/i.test(
      reason,
    )
  ) {
    fix = `the registry (or a proxy on the way) did not answer: check that ${registry} runs and that ${where} can reach it (firewall, HTTPS_PROXY/NO_PROXY); the Podman host itself answered`;
  } else {
    fix = `check the name and the registry (\`podman pull ${ref}\` on ${where})`;
  }
  return new PodmanError(
    'IMAGE_PULL_FAILED',
    `${operation}: image ${ref} could not be pulled from ${registry}: ${reason}; ${fix}`,
    failure,
  );
}

/** Turns a raw podman failure into an error an operator can act on. */
export function classifyPodmanFailure(failure: PodmanFailure, image?: string): PodmanError {
  const { operation, stderr } = failure;
  const cmd = `podman ${failure.argv.join(' ')}`;
  const detail = lastLines(stderr, 4);
  if (failure.spawnErrorCode === 'ENOENT') {
    return new PodmanError(
      'PODMAN_NOT_INSTALLED',
      `${operation}: podman is not installed or not on PATH; install Podman 4 or newer (Debian: apt-get install podman runc)`,
      failure,
    );
  }
  if (failure.tooLarge) {
    return new PodmanError(
      'PODMAN_FAILED',
      `${operation}: podman's answer was larger than any Podman gives, so it was cut off and not read (${truncate(cmd)}); check that the host's url leads to a Podman API service`,
      failure,
    );
  }
  if (failure.timedOut) {
    const pulling = /^Trying to pull (\S+?)\.\.\.$/m.exec(stderr)?.[1];
    if (pulling !== undefined) return pullTimedOut(operation, image ?? pulling, failure);
    return new PodmanError(
      'PODMAN_TIMEOUT',
      `${operation}: podman did not answer within ${durationSetting(failure.timeoutMs ?? 0)} (${truncate(cmd)}); check that Podman is healthy with \`podman info\``,
      failure,
    );
  }
  // Before UNREACHABLE: a containers.conf that does not parse ends in "unexpected EOF" too, and its fix
  // is that file, not the engine's API service. Podman reads it on this machine, whatever the --url.
  const config = containersConfProblem(stderr);
  if (config !== undefined) {
    const fix = `${config.fix.charAt(0).toLowerCase()}${config.fix.slice(1)}`;
    return new PodmanError(
      'PODMAN_FAILED',
      `${operation}: ${config.message} (${detail}); ${fix}`,
      failure,
      config.fix,
    );
  }
  const ssh = sshProblem(failure, detail);
  if (ssh !== undefined) return new PodmanError(ssh.code, `${operation}: ${ssh.message}`, failure, ssh.fix);
  const pull = pullFailure(stderr);
  if (pull !== undefined) return pullError(operation, image, pull, failure);
  if (UNREACHABLE.test(stderr)) {
    return new PodmanError(
      'PODMAN_UNREACHABLE',
      `${operation}: cannot reach the Podman host (${detail}); check that its Podman API service runs (systemctl enable --now podman.socket) and that this machine can reach it`,
      failure,
    );
  }
  if (/setrlimit|error setting rlimit|RLIMIT_NOFILE|RLIMIT_NPROC/i.test(stderr)) {
    return new PodmanError(
      'PODMAN_RLIMIT',
      `${operation}: the container runtime may not raise resource limits here (${detail}).\n${CONTAINERS_CONF_FIX}`,
      failure,
    );
  }
  if (/cgroups in hybrid mode not supported/i.test(stderr)) {
    return new PodmanError(
      'PODMAN_CGROUPS',
      `${operation}: crun does not support this machine's hybrid cgroup setup (${detail}).\n${CONTAINERS_CONF_FIX}`,
      failure,
    );
  }
  if (/could not find enough available IDs/i.test(stderr)) {
    // --userns=auto (user_namespace: auto) with no range of the containers entries left to give.
    return new PodmanError(
      'PODMAN_FAILED',
      `${operation}: Podman found no free range of host uids for the container's user namespace (user_namespace: auto): ${detail}; the containers entries of /etc/subuid and /etc/subgid on the machine Podman runs on are missing, or all held by the containers running there: add or widen them in both files (\`agentd doctor\` prints a line to add), or run fewer such sessions at once (max_sessions)`,
      failure,
    );
  }
  if (SECRET_STORE.test(stderr) && failure.argv.some((arg) => arg === 'secret' || arg === '--secret')) {
    return new PodmanError(
      'PODMAN_FAILED',
      `${operation}: Podman could not read its secret store (${detail}). Podman 4.3 rewrites its secrets files in place: a \`podman secret\` command killed while writing (or, briefly, one writing now) leaves them unreadable or a secret without its data. If \`podman secret ls\` and \`podman secret inspect\` keep failing, repair the store: see "Troubleshooting" in the README [${truncate(cmd)}]`,
      failure,
    );
  }
  if (
    image !== undefined &&
    /image not known|no such image|manifest unknown|initializing source|repository name must|unable to find image/i.test(
      stderr,
    )
  ) {
    return imageNotFound(operation, image, failure);
  }
  return new PodmanError(
    'PODMAN_FAILED',
    `${operation} failed (exit ${failure.exitCode ?? 'unknown'}): ${detail || 'no error output'} [${truncate(cmd)}]`,
    failure,
  );
}

/**
 * Podman refusing to start because of its own configuration file: CONTAINERS_CONF naming a file that is
 * not there (`CONTAINERS_CONF file: stat PATH: no such file or directory`), or a containers.conf that
 * cannot be read or parsed (`reading system config "PATH": decode configuration PATH: toml: ...`).
 */
function containersConfProblem(stderr: string): { message: string; fix: string } | undefined {
  const named = /CONTAINERS_CONF file: stat (.+?): /.exec(stderr);
  if (named !== null) {
    const path = named[1] ?? '';
    return {
      message: `CONTAINERS_CONF names ${path}, which Podman cannot open`,
      fix: `Point CONTAINERS_CONF, in the environment agentd runs with (systemd: Environment=), at an existing containers.conf, or unset it; \`podman info\` with the same CONTAINERS_CONF must work`,
    };
  }
  const read = /reading (system|user) config \\?"(.+?)\\?"/.exec(stderr);
  if (read === null) return undefined;
  const path = read[2] ?? '';
  return {
    message: `Podman cannot read its configuration file ${path}`,
    fix: `Fix ${path} (a containers.conf in TOML: \`podman info\` says what is wrong with it), or point CONTAINERS_CONF, in the environment agentd runs with, at a valid one`,
  };
}

/**
 * What an ssh:// host's refusal means, and its fix: the generic "check that its Podman API service
 * runs" sent the operator of a host that refused the key, or whose key changed, to the wrong place.
 * The codes stay what they were (a refusal is the host not reached).
 */
function sshProblem(
  failure: PodmanFailure,
  detail: string,
): { code: 'PODMAN_UNREACHABLE' | 'PODMAN_FAILED'; message: string; fix: string } | undefined {
  const { stderr, argv } = failure;
  const option = (name: string) => {
    const at = argv.indexOf(name);
    return at === -1 ? undefined : argv[at + 1];
  };
  const identity = option('--identity');
  let url: URL;
  try {
    url = new URL(option('--url') ?? '');
  } catch {
    return undefined;
  }
  if (url.protocol !== 'ssh:') return undefined;
  const port = url.port === '' ? '' : `-p ${url.port} `;
  if (/failed to read identity/i.test(stderr)) {
    return {
      code: 'PODMAN_FAILED',
      message: `the host's identity: key cannot be read (${detail}); give the path of the private key there (readable by the daemon's user, mode 0600)`,
      fix: `Give the host's identity: the path of the private key for ${url.username}@${url.hostname}, readable by the daemon's user (mode 0600)`,
    };
  }
  if (/unable to authenticate|no supported methods remain/i.test(stderr)) {
    return {
      code: 'PODMAN_UNREACHABLE',
      message: `the host's ssh server refused this machine's key (${detail}); put the public half of the host's identity: key${identity === undefined ? ' (none is set: give one)' : ` (\`ssh-keygen -y -f ${identity}\` prints it)`} in ~/.ssh/authorized_keys of the url's user there, and check that \`ssh -i ${identity ?? 'KEY'} ${port}${url.username}@${url.hostname}\` works without a prompt`,
      fix: `On ${url.hostname}: put the public half of the identity: key${identity === undefined ? ' (none is set: give one)' : ` (\`ssh-keygen -y -f ${identity}\` prints it)`} in ~/.ssh/authorized_keys of ${url.username}; here: \`ssh -i ${identity ?? 'KEY'} ${port}${url.username}@${url.hostname}\` must work without a prompt`,
    };
  }
  if (/knownhosts: key mismatch|host key mismatch/i.test(stderr)) {
    return {
      code: 'PODMAN_UNREACHABLE',
      message: `the host's ssh key is not the one ~/.ssh/known_hosts of the daemon's user holds for it (${detail}); if the host's key changed (reinstalled), compare the new fingerprint (\`ssh-keyscan ${port}${url.hostname} | ssh-keygen -lf -\`) and replace its line there, else something else answers at that address`,
      fix: `If ${url.hostname}'s ssh key changed, compare its fingerprint (\`ssh-keyscan ${port}${url.hostname} | ssh-keygen -lf -\`) and replace its line in ~/.ssh/known_hosts of the daemon's user; else something else answers at that address`,
    };
  }
  // Podman's dial of the ssh port itself failed: its API service is not reached before ssh is.
  const dial =
    /failed to connect: dial tcp\b.*?: (connection refused|connection reset by peer|no route to host|network is unreachable|i\/o timeout|no such host|server misbehaving)/i.exec(
      stderr,
    )?.[1];
  if (dial !== undefined) {
    const at = `${url.hostname} port ${url.port === '' ? '22' : url.port}`;
    const unresolved = /no such host|server misbehaving/i.test(dial);
    return {
      code: 'PODMAN_UNREACHABLE',
      fix: unresolved
        ? `Fix the host name in the url (${url.hostname}) or this machine's DNS (or /etc/hosts) so that it resolves here`
        : `On ${url.hostname}: start its ssh server and have it listen on port ${url.port === '' ? '22' : url.port}, with no firewall in the way; here: \`ssh ${port}${url.username}@${url.hostname}\` must connect (the Podman API service is reached only through ssh)`,
      message: unresolved
        ? `the name of the host in its url, ${url.hostname}, does not resolve on this machine (${detail}); check the url and this machine's DNS (or /etc/hosts)`
        : `this machine cannot open an ssh connection to ${at} (${detail}); check that the host's ssh server runs and listens there (the url's port, 22 when it has none) and that no firewall is in the way: \`ssh ${port}${url.username}@${url.hostname}\` from here must connect. The Podman API service behind it is reached only through ssh`,
    };
  }
  if (/ssh: rejected: connect failed/i.test(stderr)) {
    return {
      code: 'PODMAN_UNREACHABLE',
      message: `the host's ssh server took the key but could not open the Podman socket the url names (${detail}); check that the path exists there (rootful: /run/podman/podman.sock, rootless: /run/user/UID/podman/podman.sock) and that Podman's API service runs (systemctl enable --now podman.socket), and that its sshd allows AllowStreamLocalForwarding`,
      fix: `On ${url.hostname}: systemctl enable --now podman.socket (rootless: systemctl --user enable --now podman.socket, and loginctl enable-linger ${url.username}), and the socket path in the url (${url.pathname}) must exist there; its sshd must allow AllowStreamLocalForwarding`,
    };
  }
  return undefined;
}

export function imageNotFound(operation: string, image: string, failure: PodmanFailure): PodmanError {
  const how = image.startsWith('localhost/')
    ? `it is a local image (never pulled): build it under that name with \`podman build\` or \`podman import\`; agentd's Debian base image is built by \`bash ${packageFile('scripts/build-image.sh')} ${image}\``
    : `pull it with \`podman pull ${image}\` or check the name`;
  return new PodmanError('IMAGE_NOT_FOUND', `${operation}: image ${image} is not available; ${how}`, failure);
}

/**
 * Characters of one stderr line an error repeats. A remote host's Podman hands on its engine's error as
 * the engine wrote it, whatever its size: a host that answers with megabytes must not make each log
 * line, `agentd hosts` reply and record megabytes too (measured: 6 MB per line, one per probe interval).
 */
export const DETAIL_LINE_CHARS = 500;

/** The last n non-empty lines, each cut after DETAIL_LINE_CHARS; found from the end, never split whole. */
function lastLines(text: string, n: number): string {
  const trimmed = text.trimEnd();
  const lines: string[] = [];
  let end = trimmed.length;
  while (lines.length < n && end > 0) {
    const start = trimmed.lastIndexOf('\n', end - 1) + 1;
    let line = trimmed.slice(start, Math.min(end, start + DETAIL_LINE_CHARS + 1));
    if (start === 0) line = line.trimStart();
    if (line !== '') lines.unshift(truncate(hideUrlQueries(line), DETAIL_LINE_CHARS));
    end = start - 1;
  }
  return lines.join(' | ');
}

function truncate(text: string, max = 300): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
