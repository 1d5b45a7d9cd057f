import { linesOfBlock, type OutputBlock, type OutputLine } from '../runner/session-log.js';
import type { SessionRecord } from './records.js';
import type { SessionPhase } from './types.js';

export type BusEvent =
  | { type: 'phase'; sessionId: string; agent: string; phase: SessionPhase }
  /**
   * The lines a session printed since the last event: one batch per turn, in order. `bytes`, when
   * given, is the UTF-8 size of their texts (counted without making the lines).
   */
  | { type: 'output'; sessionId: string; readonly lines: readonly OutputLine[]; readonly bytes?: number }
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
  private readonly pending = new Map<string, (OutputLine | OutputBlock)[]>();
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

  /** One line of a session's output, or a block of them: published with the others of this turn. */
  publishLine(sessionId: string, line: OutputLine | OutputBlock): void {
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
    this.deliver(new OutputBatch(sessionId, lines));
  }

  private deliver(event: BusEvent): void {
    if (this.everything.size > 0) for (const listener of [...this.everything]) call(listener, event);
    const set = this.listeners.get(event.sessionId);
    if (!set) return;
    if (set.size === 1) for (const listener of set) call(listener, event);
    else for (const listener of [...set]) call(listener, event);
  }
}

/**
 * An `output` event: its lines are made (a block's decoded and split) the first time a follower asks,
 * once for all of them; with nobody following, never. A follower asks while the event is handed to it:
 * a block's bytes may be the output reader's buffer, which it reads into again after this turn's
 * immediates (see OutputBlock).
 */
class OutputBatch {
  readonly type = 'output';
  private made: OutputLine[] | undefined;

  constructor(
    readonly sessionId: string,
    private readonly parts: readonly (OutputLine | OutputBlock)[],
  ) {}

  get lines(): readonly OutputLine[] {
    if (this.made === undefined) {
      const parts = this.parts;
      this.made =
        parts.length === 1 && !isBlock(parts[0] as OutputLine | OutputBlock)
          ? [parts[0] as OutputLine]
          : parts.flatMap((part) => (isBlock(part) ? linesOfBlock(part) : [part]));
    }
    return this.made;
  }

  get bytes(): number {
    let bytes = 0;
    for (const part of this.parts)
      bytes += isBlock(part) ? part.bytes.length - part.count : Buffer.byteLength(part.text);
    return bytes;
  }
}

function isBlock(part: OutputLine | OutputBlock): part is OutputBlock {
  return 'count' in part;
}

function call(listener: Listener, event: BusEvent): void {
  try {
    listener(event);
  } catch {
    // A broken follower affects that follower only.
  }
}
