/**
 * Where a session log keeps what it has not written yet: copies in slabs it reuses, instead of new
 * buffers and the container's pipe chunks. Buffers live outside V8's heap; one that outlives two
 * young collections is freed only by a full one, and holding a flood's pipe chunks until the next
 * write (100 ms to 1 s) let nearly every one of them outlive young collections. A slab is allocated
 * once and reused, so the log's own holding allocates nothing while a flood goes on, and the pipe
 * chunks die young. (Measured with the old generation's growth: a third less daemon CPU per MB of
 * output; see bench/findings.md.)
 */

/** One slab: `used` bytes of it are taken, by `refs` views still pending in the log. */
export interface Slab {
  readonly buffer: Buffer;
  used: number;
  refs: number;
}

/** A copy in the arena, and the slab it is in (none: a buffer of its own, larger than a slab). */
export interface Held {
  bytes: Buffer;
  slab: Slab | undefined;
}

/**
 * Slabs of SLAB_BYTES filled in order. A view is taken with `copy` or `encode` and given back with
 * `release` once the log has written or dropped it; a slab with no view left is used again (the current
 * one from its start, another from a free list). Nothing outside the log may keep a view: what leaves
 * it (a reader's unwritten part) is copied out.
 */
export class LogArena {
  private current: Slab | undefined;
  private free: Buffer[] = [];

  constructor(private readonly slabBytes = SLAB_BYTES) {}

  /** A copy of `bytes`. */
  copy(bytes: Buffer): Held {
    if (bytes.length > this.slabBytes) return { bytes: Buffer.from(bytes), slab: undefined };
    const slab = this.room(bytes.length);
    const at = slab.used;
    bytes.copy(slab.buffer, at);
    return this.take(slab, at, bytes.length);
  }

  /** `text` as UTF-8. */
  encode(text: string): Held {
    // At most 3 bytes a UTF-16 unit: room is made without measuring the string first.
    if (text.length * 3 > this.slabBytes) return { bytes: Buffer.from(text), slab: undefined };
    const slab = this.room(text.length * 3);
    const at = slab.used;
    return this.take(slab, at, slab.buffer.write(text, at));
  }

  /**
   * `text` encoded after `held`, which must be the newest view of its slab: one view for both when
   * there is room, else undefined (and nothing taken).
   */
  extend(held: Held, text: string): Held | undefined {
    const { slab } = held;
    if (slab === undefined || slab !== this.current) return undefined;
    const end = held.bytes.byteOffset - slab.buffer.byteOffset + held.bytes.length;
    if (end !== slab.used || slab.used + text.length * 3 > slab.buffer.length) return undefined;
    const written = slab.buffer.write(text, slab.used);
    slab.used += written;
    return { bytes: slab.buffer.subarray(end - held.bytes.length, slab.used), slab };
  }

  /** A view is no longer pending: its slab is reused once it has none. */
  release(held: Held): void {
    const { slab } = held;
    if (slab === undefined || --slab.refs > 0) return;
    if (slab === this.current) slab.used = 0;
    else this.free.push(slab.buffer);
  }

  /** The log went quiet: free slabs are let go (the current one is kept for the next lines). */
  shrink(): void {
    this.free = [];
  }

  /** The log is closed: nothing is kept. */
  clear(): void {
    this.free = [];
    this.current = undefined;
  }

  /** Slabs held, in use or free (tests). */
  get slabs(): number {
    return this.free.length + (this.current === undefined ? 0 : 1);
  }

  private room(bytes: number): Slab {
    const current = this.current;
    if (current !== undefined && current.used + bytes <= current.buffer.length) return current;
    // The current slab is full: it is freed by its last view's release (or now, if it has none).
    if (current !== undefined && current.refs === 0) this.free.push(current.buffer);
    const next: Slab = {
      buffer: this.free.pop() ?? Buffer.allocUnsafeSlow(this.slabBytes),
      used: 0,
      refs: 0,
    };
    this.current = next;
    return next;
  }

  private take(slab: Slab, at: number, length: number): Held {
    slab.used = at + length;
    slab.refs++;
    return { bytes: slab.buffer.subarray(at, at + length), slab };
  }
}

/**
 * Bytes of a slab: a pipe chunk's worth (a block of lines is at most 64 KiB, the reader's bytes per
 * turn), so a quiet session holds one small slab, and a flood about log_max_bytes of them.
 */
export const SLAB_BYTES = 64 * 1024;
