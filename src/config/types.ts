import type { OutcomeKind } from '../outcome-kinds.js';
import type { Outcome } from '../outcomes.js';
import type { HttpListen, HttpScope } from './http.js';
import type { MinFree, Resources } from './resources.js';

/** `user_namespace:` host (no user namespace: the container's uids are the host's) or auto (a range of its own). */
export const USER_NAMESPACES = ['host', 'auto'] as const;
/** A schedule's `overlap:` and `catch_up:`. */
export const OVERLAPS = ['skip', 'queue'] as const;
export const CATCH_UPS = ['none', 'latest'] as const;

export type { Resources, Size } from './resources.js';

/** Typed settings produced from a validated agentd.yaml. */
export type Network = 'bridge' | 'none' | 'host';
/** `host`: the container's uids are the host's (uid 61000 for every agent); `auto`: Podman's `--userns=auto`. */
export type UserNamespace = 'host' | 'auto';

/** Where a credential's value comes from. `raw` is the string the operator wrote, for messages. */
export type CredentialSource =
  | { kind: 'env'; name: string; raw: string }
  | { kind: 'file'; path: string; raw: string };

export interface CredentialConfig {
  /** Variable name inside the session. */
  name: string;
  source: CredentialSource;
}

/** A host path the agent's sessions see (`mounts:`). */
export interface MountConfig {
  /** Absolute host path; it existed when the configuration was read. */
  source: string;
  /** Absolute path inside the container. */
  target: string;
  /** The agent cannot write to it (the default). */
  readOnly: boolean;
}

/** A named volume of the agent's that outlives its sessions (`caches:`). */
export interface CacheConfig {
  name: string;
  /** Absolute path inside the container. */
  target: string;
}

/** When a session of an agent is running from its schedule and the next firing comes. */
export type Overlap = 'skip' | 'queue';
/** What a daemon that was down does about the firings it missed. */
export type CatchUp = 'none' | 'latest';

/** An agent's `schedule:`: when it runs by itself. */
export interface ScheduleConfig {
  /** Five fields, or six with leading seconds, as croner reads them (see config/schedule.ts). */
  cron: string;
  /** IANA time zone; the daemon's own when absent. */
  timezone?: string;
  /** The work unit of each scheduled session, with {agent}, {date}, {time}, {firing} replaced. */
  workUnit?: string;
  overlap: Overlap;
  catchUp: CatchUp;
}

/** A webhook told of every outcome (`notify:`): a POST of the session record, signed. */
export interface NotifyTarget {
  url: string;
  /** Key of the HMAC-SHA256 signature. */
  secret: CredentialSource;
  /** POSTs at most, the first included. */
  attempts: number;
  /** Wait before the second attempt; it doubles after each failed one. */
  backoffMs: number;
  /** Only sessions ending so are told (`outcomes:`); every outcome when absent. */
  outcomes?: Outcome[];
}

export interface AgentConfig {
  name: string;
  image: string;
  command: string[];
  /** The normalised repository URL (see src/repo-url.ts). */
  repo?: string;
  timeoutMs?: number;
  network: Network;
  /** `user_namespace:`: `auto` runs each session in a user namespace of its own (a range of host uids). */
  userNamespace: UserNamespace;
  env: Record<string, string>;
  credentials: CredentialConfig[];
  repoToken?: CredentialSource;
  /** Origins `repo_token` may be sent to: the repo's own (https, or http when allowed) and `repo_token_hosts`. */
  repoTokenOrigins: string[];
  /** Reject a trigger whose repository may not receive the token, instead of cloning without it. */
  repoTokenRequired: boolean;
  /** The token may travel over plain http:// (for a loopback test server). */
  allowInsecureHttp: boolean;
  /** Limits of each session container: the agent's own, else the daemon's defaults, else built-in ones. */
  resources: Resources;
  /** Capabilities the agent's command gets on top of none (`cap_add:`), by name without CAP_. */
  capAdd: string[];
  /** Host paths mounted into every session. */
  mounts: MountConfig[];
  /** Host directory mounted read-only at /agentd/context. */
  context?: string;
  caches: CacheConfig[];
  /** The agent's own exit-code meanings (`exit_codes:`), over the convention. */
  exitCodes: Record<number, OutcomeKind>;
  schedule?: ScheduleConfig;
  /** Webhooks told of this agent's outcomes, besides the daemon's. */
  notify: NotifyTarget[];
  /** Sessions of this agent running at once (`max_concurrent:`); unlimited but for max_sessions when absent. */
  maxConcurrent?: number;
  /** The only hosts its sessions may run on (`hosts:`); any host when absent. */
  hosts?: string[];
  /** Labels a host must have for its sessions (`host_labels:`); empty for any host. */
  hostLabels: Record<string, string>;
}

/** A Podman host sessions run on (`hosts:`). */
export interface HostConfig {
  name: string;
  /**
   * The host's Podman API as `podman --url` takes it: unix:///path, ssh://user@host[:port]/path or
   * tcp://host:port. Absent: the Podman of the machine agentd runs on, as the podman command reaches it.
   */
  url?: string;
  /** The private key ssh:// connections use (`podman --identity`). */
  identity?: string;
  /** Sessions this host runs at once. */
  maxSessions: number;
  labels: Record<string, string>;
}

/** A bearer token of the HTTP API: its value comes from a credential source, and only its name is logged. */
export interface HttpToken {
  name: string;
  source: CredentialSource;
  scopes: HttpScope[];
}

/** `daemon.http`: the HTTP API, off unless configured. */
export interface HttpSettings {
  listen: HttpListen;
  tokens: HttpToken[];
  /** PEM files (absolute paths); plain HTTP without them. */
  tls?: { cert: string; key: string };
  /** Largest request body taken. */
  bodyLimitBytes: number;
}

export interface DaemonSettings {
  socket: string;
  stateDir: string;
  maxSessions: number;
  /** Time a stopping container gets between SIGTERM and SIGKILL. */
  stopGraceMs: number;
  /** Deadline of every short podman call (create, rm, secret ...). */
  podmanTimeoutMs: number;
  /** Deadline of the `podman pull` of a registry image a session needs and the host lacks. */
  pullTimeoutMs: number;
  /** Bytes of output kept per session log file (the newest is kept). */
  logMaxBytes: number;
  /** Finished session records kept in the state dir. */
  historyLimit: number;
  /** Where sealed session records are kept: <records_dir>/<agent>/<session>/. */
  recordsDir: string;
  /** How often every host is probed. */
  hostProbeIntervalMs: number;
  /** How long a probe may take before the host counts as down. */
  hostProbeTimeoutMs: number;
  /** How long a session whose host went down waits for it to come back before it is settled `abandoned`. */
  hostDownGraceMs: number;
  /** Sealed records older than this are removed. */
  recordsMaxAgeMs: number;
  /** The oldest sealed records are removed while all of them take more bytes than this. */
  recordsMaxBytes: number;
  /** ... and while there are more of them than this (each costs the daemon memory: its index entry). */
  recordsMaxCount: number;
  /**
   * ... and, while the records' filesystem has less free than this, the oldest sealed ones beyond the
   * newest few, until it has (`{ bytes: 0 }`: no floor).
   */
  recordsMinFree: MinFree;
  /** Webhooks told of every agent's outcomes. */
  notify: NotifyTarget[];
  /** The HTTP API, when configured. */
  http?: HttpSettings;
}

export interface Settings {
  /** Absolute path of the config file these settings came from. */
  file: string;
  daemon: DaemonSettings;
  agents: AgentConfig[];
  /** The hosts of `hosts:`; empty when there is none (sessions run on the local Podman: see hostsOf). */
  hosts: HostConfig[];
}
