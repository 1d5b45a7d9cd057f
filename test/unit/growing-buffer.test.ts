/** GrowingBuffer (src/growing-buffer.ts): bytes in pieces, one buffer, its memory at most twice what it holds. */
import { describe, expect, it } from 'vitest';
import { GrowingBuffer } from '../../src/growing-buffer.js';

describe('GrowingBuffer', () => {
  it('holds bytes sent one at a time in one buffer of at most twice their size, never past its limit', () => {
    const buffer = new GrowingBuffer(10_000);
    let grownTimes = 0;
    let capacity = 0;
    for (let i = 0; i < 9_000; i++) {
      buffer.append(Uint8Array.of(i % 251));
      if (buffer.capacity !== capacity) grownTimes++;
      capacity = buffer.capacity;
      expect(buffer.capacity).toBeLessThanOrEqual(Math.max(2 * buffer.length, 1));
    }
    // Doubling: a few dozen copies for 9,000 pieces, not one per piece.
    expect(grownTimes).toBeLessThan(20);
    expect(buffer.capacity).toBeLessThanOrEqual(10_000);
    const all = buffer.take(Uint8Array.of(7));
    expect(all).toHaveLength(9_001);
    expect([all[0], all[250], all[251], all[9_000]]).toEqual([0, 250, 0, 7]);
    expect(buffer.length).toBe(0);
    expect(buffer.capacity).toBe(0);
  });
});
