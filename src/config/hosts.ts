import { quoted } from './quoted.js';
import type { AgentConfig, HostConfig, Settings } from './types.js';

/**
 * The hosts sessions run on. Without `hosts:` in the configuration there is one, `local`: the Podman
 * the podman command reaches on this machine, with daemon.max_sessions slots (exactly as before hosts
 * existed).
 */
export const LOCAL_HOST = 'local';

export function hostsOf(settings: {
  hosts: readonly HostConfig[];
  daemon: Pick<Settings['daemon'], 'maxSessions'>;
}): HostConfig[] {
  if (settings.hosts.length > 0) return [...settings.hosts];
  return [{ name: LOCAL_HOST, maxSessions: settings.daemon.maxSessions, labels: {} }];
}

/** Whether an agent's sessions may run on a host: its `hosts:` list and its `host_labels:`. */
export function hostAllowed(
  agent: Pick<AgentConfig, 'hosts' | 'hostLabels'>,
  host: Pick<HostConfig, 'name' | 'labels'>,
): boolean {
  if (agent.hosts !== undefined && !agent.hosts.includes(host.name)) return false;
  return Object.entries(agent.hostLabels).every(([key, value]) => host.labels[key] === value);
}

export const HOST_NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;
export const HOST_NAME_MAX = 32;

/** How agentd reaches a host: the scheme of its url (none: the local podman command). */
export type HostTransport = 'local' | 'unix' | 'ssh' | 'tcp';

export function transportOf(host: Pick<HostConfig, 'url'>): HostTransport {
  if (host.url === undefined) return 'local';
  return host.url.slice(0, host.url.indexOf(':')) as HostTransport;
}

/** Whether a host's engine sees this machine's files (the local Podman, or one behind a unix:// socket). */
export function seesThisMachine(host: Pick<HostConfig, 'url'>): boolean {
  const transport = transportOf(host);
  return transport === 'local' || transport === 'unix';
}

/**
 * Whether a tcp:// url names this machine's loopback (localhost, 127.0.0.0/8, ::1). Any other address,
 * 0.0.0.0 and names included, counts as one every session with a network can reach.
 */
export function tcpOnLoopback(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return false;
  }
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Why a tcp:// host must not be used with these agents, or undefined. Podman's API there has no
 * authentication and is root on that machine (a privileged container), so no session may reach it:
 * sessions with network: host share this machine's loopback, and sessions with any network reach its
 * other addresses and other machines (measured: a host-network session created a volume through
 * tcp://127.0.0.1).
 */
export function tcpHostExposure(
  host: Pick<HostConfig, 'name' | 'url'>,
  agents: readonly Pick<AgentConfig, 'name' | 'network'>[],
): string | undefined {
  if (host.url === undefined || transportOf(host) !== 'tcp') return undefined;
  const loopback = tcpOnLoopback(host.url);
  const reaching = agents.filter((a) => (loopback ? a.network === 'host' : a.network !== 'none'));
  if (reaching.length === 0) return undefined;
  const shown = reaching.slice(0, 5).map((a) => `${a.name} (network: ${a.network})`);
  if (reaching.length > shown.length) shown.push(`${reaching.length - shown.length} more`);
  const one = reaching.length === 1;
  return (
    `${host.url} (host ${host.name}) is Podman's API without authentication, root on that machine for ` +
    `whoever reaches the port, and ${one ? 'agent' : 'agents'} ${shown.join(', ')} can reach it from ` +
    `${one ? 'its' : 'their'} sessions${loopback ? " (network: host shares this machine's 127.0.0.1)" : ''}; ` +
    `use unix:// or ssh://, or give ${one ? 'the agent' : 'those agents'} ${loopback ? 'network: bridge or none' : 'network: none'}`
  );
}

/** A host url as `podman --url` takes it; the problem with it, or undefined. */
export function hostUrlProblem(url: string): string | undefined {
  const example =
    'write unix:///run/podman/podman.sock, ssh://user@host[:port]/run/podman/podman.sock or tcp://127.0.0.1:8080';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // A password with a `/` (or `?`, `#`) ends what a URL parser reads as the host before its `@`.
    return url.includes('@')
      ? `is not a URL (not repeated here: it may hold a password); ${example}`
      : `${quoted(url)} is not a URL; ${example}`;
  }
  const scheme = parsed.protocol.slice(0, -1);
  if (scheme === 'unix') {
    if (parsed.host !== '' || !parsed.pathname.startsWith('/') || parsed.pathname === '/') {
      return `${quoted(url)}: a unix:// url names the socket by its absolute path, e.g. unix:///run/podman/podman.sock`;
    }
    if (parsed.search !== '' || parsed.hash !== '') {
      return `${quoted(url)}: a unix:// url takes no query or fragment`;
    }
    return undefined;
  }
  if (scheme === 'ssh') {
    // The password is not repeated: the message goes to logs, the reload reply and `validate`.
    if (parsed.password !== '') {
      return `the ssh:// url of ${parsed.hostname || 'the host'} carries a password (not repeated here); remove it and give the host's private key under identity:`;
    }
    if (parsed.username === '' || parsed.hostname === '') {
      return `${quoted(url)}: an ssh:// url names the user and the host, e.g. ssh://agentd@build1.example:22/run/podman/podman.sock`;
    }
    if (parsed.pathname === '' || parsed.pathname === '/') {
      return `${quoted(url)}: an ssh:// url ends with the path of the Podman socket on that host, e.g. /run/podman/podman.sock (rootless: /run/user/UID/podman/podman.sock)`;
    }
    if (parsed.hash !== '' || ![...parsed.searchParams.keys()].every((key) => key === 'secure')) {
      return `${quoted(url)}: an ssh:// url takes no query but ?secure=true`;
    }
    return undefined;
  }
  if (scheme === 'tcp') {
    if (parsed.hostname === '' || parsed.port === '') {
      return `${quoted(url)}: a tcp:// url names the host and the port, e.g. tcp://127.0.0.1:8080`;
    }
    if (parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '') {
      // Not repeated: what is there besides host and port may be a secret.
      return `the tcp:// url of ${parsed.host} has more than a host and a port (not repeated here): a tcp:// url is tcp://host:port and nothing else`;
    }
    if (parsed.pathname !== '' && parsed.pathname !== '/') {
      return `${quoted(url)}: a tcp:// url has no path; write tcp://host:port`;
    }
    return undefined;
  }
  return `${quoted(url)} uses ${scheme}://, which Podman cannot reach; ${example}`;
}
