import type { Network } from '../config/types.js';

/** What the agent is: resolved values only, never credential source strings. */
export interface SessionSpec {
  agent: string;
  image: string;
  command: string[];
  credentials: { name: string; value: string }[];
  env: Record<string, string>;
  network: Network;
  timeoutMs?: number;
}

/** One run of an agent. */
export interface SessionInvocation {
  sessionId: string;
  repoUrl: string;
  workUnit?: string;
  repoToken?: string;
}

export type Phase = 'creating' | 'cloning' | 'running' | 'tearing_down';
export type RunOutcome = 'succeeded' | 'failed' | 'timed_out' | 'cancelled' | 'error';

export interface RunResult {
  outcome: RunOutcome;
  exitCode?: number;
  signal?: string;
  /** The phase the session was in when its fate was decided. */
  phase: Phase;
  /** Milliseconds spent per phase. */
  timings: Partial<Record<Phase, number>>;
  /** Set for every outcome but `succeeded`. */
  message?: string;
}

export type RunEvent =
  | { type: 'phase'; phase: Phase }
  | { type: 'output'; stream: 'stdout' | 'stderr'; line: string }
  /** Container exists: ids for records and crash recovery. */
  | { type: 'container'; name: string };

export interface RunOptions {
  signal: AbortSignal;
  onEvent: (event: RunEvent) => void;
  /** Per-session log file (bounded); output is appended there as well. */
  logFile: string;
}

/** The runner adapter the daemon calls; the implementation lives in src/runner. */
export interface Runner {
  run(spec: SessionSpec, invocation: SessionInvocation, options: RunOptions): Promise<RunResult>;
}
