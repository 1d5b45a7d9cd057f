import type { Phase } from '../runner/types.js';

/** How a session ended, in the operator's words. */
export type Outcome = 'succeeded' | 'failed' | 'timed_out' | 'cancelled' | 'error' | 'abandoned';
export type SessionPhase = 'queued' | 'resolving' | Phase | 'finished';

/** What the daemon accepted: the agent, repository and limits of one session. */
export interface SessionRequest {
  sessionId: string;
  agent: string;
  repoUrl: string;
  workUnit?: string;
  timeoutMs?: number;
  acceptedAt: string;
}

/** What a session ended with. */
export interface SessionOutcome {
  outcome: Outcome;
  phase: SessionPhase;
  exitCode?: number;
  signal?: string;
  message?: string;
  timings?: Partial<Record<Phase, number>>;
}
