import type { SessionRecord } from './records.js';
import type { SessionPhase } from './types.js';

export type BusEvent =
  | { type: 'phase'; sessionId: string; agent: string; phase: SessionPhase }
  | { type: 'output'; sessionId: string; line: string }
  | { type: 'outcome'; sessionId: string; record: SessionRecord };

type Listener = (event: BusEvent) => void;

/**
 * Fans a session's phases, output and outcome out to the clients that follow it. Every phase a
 * session enters is published once, `queued` (when it is accepted) included, and its outcome last.
 */
export class SessionBus {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly everything = new Set<Listener>();

  /** Every session's events (used by `subscribe`). */
  followAll(listener: Listener): () => void {
    this.everything.add(listener);
    return () => this.everything.delete(listener);
  }

  follow(sessionId: string, listener: Listener): () => void {
    let set = this.listeners.get(sessionId);
    if (!set) {
      set = new Set();
      this.listeners.set(sessionId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(sessionId) === set) this.listeners.delete(sessionId);
    };
  }

  publish(event: BusEvent): void {
    for (const listener of [...this.everything]) listener(event);
    const set = this.listeners.get(event.sessionId);
    if (!set) return;
    for (const listener of [...set]) listener(event);
  }
}
