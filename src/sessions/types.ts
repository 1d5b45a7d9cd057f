import type { CacheConfig, MountConfig, Network, Resources } from '../config/types.js';
import type { OutcomeKind } from '../outcome-kinds.js';
import type { Outcome } from '../outcomes.js';
import type { WorkManifest } from './work.js';

/**
 * The words every layer above shares: how a session ends (src/outcomes.ts, where configuration can
 * reach it too), the phases it goes through, what it runs. Each list exists once; the zod schemas
 * (records.ts) and the types below are derived from it.
 */
export { OUTCOMES, type Outcome } from '../outcomes.js';
/** Outcomes a run can have: all of them (`abandoned`: its host did not come back in time). */
export type RunOutcome = Outcome;

/** The phases of a run, as the runner machine's state tags name them. */
export const RUN_PHASES = ['creating', 'cloning', 'running', 'tearing_down'] as const;
export type Phase = (typeof RUN_PHASES)[number];
export const SESSION_PHASES = ['queued', 'resolving', ...RUN_PHASES, 'finished'] as const;
export type SessionPhase = (typeof SESSION_PHASES)[number];

/** The `version` of a session record (records.ts): the CLI's reply tables check it too. */
export const RECORD_VERSION = 1;

/** Why a trigger is turned away: by checkTrigger (the first five) or by the daemon's state. */
export const REJECTION_CODES = [
  'unknown_agent',
  'no_repo',
  'bad_repo',
  'repo_token_withheld',
  'bad_timeout',
  'bad_input',
  'duplicate_session',
  'not_accepting',
  'state_dir_full',
  'state_dir_unwritable',
  'key_conflict',
  'queue_full',
] as const;
export type RejectionCode = (typeof REJECTION_CODES)[number];

/** What the daemon accepted: the agent, repository and limits of one session. */
export interface SessionRequest {
  sessionId: string;
  agent: string;
  repoUrl: string;
  workUnit?: string;
  timeoutMs?: number;
  /** The trigger's idempotency key. */
  key?: string;
  acceptedAt: string;
  /** The request text and input files the trigger handed over, by digest (the content is in the work dir). */
  work?: WorkManifest;
  /** Set for a session an agent's schedule made: the firing's time (ISO). */
  scheduledFor?: string;
}

/** What the agent is: resolved values only, never credential source strings. */
export interface SessionSpec {
  agent: string;
  image: string;
  command: string[];
  /** Values as bytes, exactly as resolved: never decoded as text on their way to the agent. */
  credentials: { name: string; value: Uint8Array }[];
  env: Record<string, string>;
  network: Network;
  /** `auto`: the container gets a user namespace of its own (`user_namespace:`); the host's when absent. */
  userNamespace?: 'auto';
  /** Limits of the container; the defaults (see src/config/resources.ts) when absent. */
  resources?: Resources;
  /** Capabilities the agent's command gets (`cap_add:`); none when absent. */
  capAdd?: string[];
  timeoutMs?: number;
  /** Host paths mounted into the container (`mounts:`). */
  mounts?: MountConfig[];
  /** Host directory mounted read-only at /agentd/context. */
  context?: string;
  /** Named volumes that outlive the session (`caches:`). */
  caches?: CacheConfig[];
  /** The agent's own exit-code meanings over the convention. */
  exitCodes?: Record<number, OutcomeKind>;
}

/** One run of an agent. */
export interface SessionInvocation {
  sessionId: string;
  repoUrl: string;
  workUnit?: string;
  /** Sent only to the origin of repoUrl: the caller has decided that it may go there. */
  repoToken?: Uint8Array;
  /** Lines agentd adds to the session's output before the container starts (e.g. a withheld token). */
  notices?: string[];
  /** What the trigger handed over (request, inputs), in the session's work directory. */
  work?: WorkManifest;
}

/** What a run ended with. */
export interface RunResult {
  outcome: RunOutcome;
  /** What the command's exit code means (the convention, or the agent's `exit_codes:`); set when the command ended by itself. */
  kind?: OutcomeKind;
  exitCode?: number;
  signal?: string;
  /** The phase the session was in when its fate was decided. */
  phase: Phase;
  /** Milliseconds spent per phase. */
  timings: Partial<Record<Phase, number>>;
  /** Set for every outcome but `succeeded`. */
  message?: string;
}

/** What a session ended with. */
export interface SessionOutcome {
  outcome: Outcome;
  kind?: OutcomeKind;
  phase: SessionPhase;
  exitCode?: number;
  signal?: string;
  message?: string;
  timings?: Partial<Record<Phase, number>>;
}
