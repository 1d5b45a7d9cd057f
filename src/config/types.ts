import type { Resources } from './resources.js';

export type { Resources, Size } from './resources.js';

/** Typed settings produced from a validated agentd.yaml. */
export type Network = 'bridge' | 'none' | 'host';

/** Where a credential's value comes from. `raw` is the string the operator wrote, for messages. */
export type CredentialSource =
  | { kind: 'env'; name: string; raw: string }
  | { kind: 'file'; path: string; raw: string };

export interface CredentialConfig {
  /** Variable name inside the session. */
  name: string;
  source: CredentialSource;
}

export interface AgentConfig {
  name: string;
  image: string;
  command: string[];
  /** The normalised repository URL (see src/repo-url.ts). */
  repo?: string;
  timeoutMs?: number;
  network: Network;
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
}

export interface DaemonSettings {
  socket: string;
  stateDir: string;
  maxSessions: number;
  /** Time a stopping container gets between SIGTERM and SIGKILL. */
  stopGraceMs: number;
  /** Deadline of every short podman call (create, rm, secret ...). */
  podmanTimeoutMs: number;
  /** Bytes of output kept per session log file (the newest is kept). */
  logMaxBytes: number;
  /** Finished session records kept in the state dir. */
  historyLimit: number;
}

export interface Settings {
  /** Absolute path of the config file these settings came from. */
  file: string;
  daemon: DaemonSettings;
  agents: AgentConfig[];
}
