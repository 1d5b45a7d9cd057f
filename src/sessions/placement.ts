import { hostAllowed } from '../config/hosts.js';
import type { AgentConfig } from '../config/types.js';

/** A host as placement sees it: its limit, what runs on it and whether it takes new sessions. */
export interface HostSlots {
  name: string;
  maxSessions: number;
  running: number;
  labels: Record<string, string>;
  /** Reachable, reconciled and not drained. */
  accepting: boolean;
}

/** What of an agent decides the hosts it may run on. */
export type HostChoice = Pick<AgentConfig, 'hosts' | 'hostLabels'>;

export interface Placement<T> {
  session: T;
  host: string;
}

/**
 * Which queued sessions start now, and where. The queue is walked oldest first; each session goes to
 * the host with the most free slots among those its agent may use that take sessions (ties go to the
 * host listed first). A session with no such host, or that `admit` turns away (its agent's own limit),
 * waits without holding back younger sessions that can run; the daemon-wide limit (`free`) ends the
 * walk. `admit` is asked only for a session that has a host, and counts it as started when it says yes.
 */
export function placeQueued<T extends { agent: HostChoice }>(
  queue: readonly T[],
  hosts: readonly HostSlots[],
  free: number,
  admit: (session: T) => boolean = () => true,
  /** Where a session may run: its agent's `hosts` and `host_labels` (by default as it was accepted). */
  where: (session: T) => HostChoice = (session) => session.agent,
): Placement<T>[] {
  const running = new Map(hosts.map((h) => [h.name, h.running]));
  const placed: Placement<T>[] = [];
  for (const session of queue) {
    if (placed.length >= free) break;
    let best: HostSlots | undefined;
    let bestFree = 0;
    for (const host of hosts) {
      if (!host.accepting || !hostAllowed(where(session), host)) continue;
      const hostFree = host.maxSessions - (running.get(host.name) ?? 0);
      if (hostFree > bestFree) {
        best = host;
        bestFree = hostFree;
      }
    }
    if (best === undefined || !admit(session)) continue;
    running.set(best.name, (running.get(best.name) ?? 0) + 1);
    placed.push({ session, host: best.name });
  }
  return placed;
}
