/**
 * Bytes received in pieces (a request line, a request body), held in one buffer grown by doubling: a
 * client sending a byte at a time must not make the daemon keep an object (some 100 bytes) per byte it
 * sent. What bounds count is `capacity`, the memory held.
 */
export class GrowingBuffer {
  private buffer = Buffer.alloc(0);
  length = 0;
  /** @param limit the most it is given: growth stops there (the caller checks the length before each append). */
  constructor(private readonly limit: number) {}

  get capacity(): number {
    return this.buffer.length;
  }

  /** What capacity would be with `more` bytes appended. */
  capacityWith(more: number): number {
    const needed = this.length + more;
    if (needed <= this.buffer.length) return this.buffer.length;
    return Math.max(needed, Math.min(2 * this.buffer.length, this.limit));
  }

  append(bytes: Uint8Array): void {
    const needed = this.length + bytes.length;
    if (needed > this.buffer.length) {
      const grown = Buffer.allocUnsafe(this.capacityWith(bytes.length));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.buffer.set(bytes, this.length);
    this.length = needed;
  }

  /** What it holds, with `last` after it; empty again. */
  take(last?: Uint8Array): Buffer {
    const held = this.buffer.subarray(0, this.length);
    const all =
      last === undefined
        ? held
        : this.length === 0
          ? Buffer.from(last.buffer, last.byteOffset, last.byteLength)
          : Buffer.concat([held, last]);
    this.clear();
    return all;
  }

  clear(): void {
    this.buffer = Buffer.alloc(0);
    this.length = 0;
  }
}
