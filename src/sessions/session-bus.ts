import type { OutputLine } from '../runner/session-log.js';
import type { SessionRecord } from './records.js';
import type { SessionPhase } from './types.js';

export type BusEvent =
  | { type: 'phase'; sessionId: string; agent: string; phase: SessionPhase }
  /** The lines a session printed since the last event: one batch per turn, in order. */
  | { type: 'output'; sessionId: string; lines: OutputLine[] }
  | { type: 'outcome'; sessionId: string; record: SessionRecord };

type Listener = (event: BusEvent) => void;

/**
 * Fans a session's phases, output and outcome out to the clients that follow it. Every phase a
 * session enters is published once, `queued` (when it is accepted) included, and its outcome last.
 * Output lines are batched: whatever a session printed in one turn of the event loop goes out as one
 * event, so the cost per follower is per batch, not per line. A phase or outcome first sends the lines
 * before it.
 */
export class SessionBus {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly everything = new Set<Listener>();
  private readonly pending = new Map<string, OutputLine[]>();
  private scheduled = false;

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

  /** One line of a session's output: published with the others of this turn. */
  publishLine(sessionId: string, line: OutputLine): void {
    const lines = this.pending.get(sessionId);
    if (lines) lines.push(line);
    else this.pending.set(sessionId, [line]);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      for (const id of [...this.pending.keys()]) this.flush(id);
    });
  }

  /** Hands the event to every follower; one that throws does not keep it from the others (or the session). */
  publish(event: BusEvent): void {
    if (event.type !== 'output') this.flush(event.sessionId);
    this.deliver(event);
  }

  private flush(sessionId: string): void {
    const lines = this.pending.get(sessionId);
    if (!lines) return;
    this.pending.delete(sessionId);
    this.deliver({ type: 'output', sessionId, lines });
  }

  private deliver(event: BusEvent): void {
    if (this.everything.size > 0) for (const listener of [...this.everything]) call(listener, event);
    const set = this.listeners.get(event.sessionId);
    if (!set) return;
    if (set.size === 1) for (const listener of set) call(listener, event);
    else for (const listener of [...set]) call(listener, event);
  }
}

function call(listener: Listener, event: BusEvent): void {
  try {
    listener(event);
  } catch {
    // A broken follower affects that follower only.
  }
}
