import type { Outcome } from '../sessions/types.js';

/** Exit codes of `agentd trigger` (and the other client commands where they apply). Documented in the README. */
export const EXIT = {
  succeeded: 0,
  failed: 1,
  usage: 2,
  rejected: 3,
  infrastructure: 4,
  cancelled: 5,
  unreachable: 69,
  interrupted: 130,
  timedOut: 124,
} as const;

export function exitCodeForOutcome(outcome: Outcome): number {
  switch (outcome) {
    case 'succeeded':
      return EXIT.succeeded;
    case 'failed':
      return EXIT.failed;
    case 'cancelled':
      return EXIT.cancelled;
    case 'timed_out':
      return EXIT.timedOut;
    default:
      // error, abandoned: something around the agent failed, not the agent.
      return EXIT.infrastructure;
  }
}
