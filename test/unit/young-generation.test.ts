import { setImmediate as turn } from 'node:timers/promises';
import { getHeapSpaceStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { collectStartGarbage, releaseYoungGeneration } from '../../src/daemon/young-generation.js';

function youngBytes(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
}

describe('young generation once the daemon is up', () => {
  it("grows under allocation, but its semi-spaces stop at 4 MB (8 MB at worst) instead of V8's 16 MB", async () => {
    releaseYoungGeneration();
    let kept: { n: number; s: string }[] = [];
    let largest = 0;
    // Much of what is allocated lives through a scavenge or two (as lines in flight do): V8 grows
    // the young generation then, up to 32 MB (two semi-spaces of 16 MB) without the cap. A turn
    // allocates about what a turn of the daemon's output path may (its reader's budget per turn).
    for (let round = 0; round < 1500; round++) {
      for (let i = 0; i < 2_000; i++) kept.push({ n: i, s: `line ${round} ${i}` });
      if (kept.length > 200_000) kept = kept.slice(100_000);
      largest = Math.max(largest, youngBytes());
      await turn();
    }
    expect(kept.length).toBeGreaterThan(0);
    expect(largest).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    // Both semi-spaces; the growth is checked after each scavenge, so a second one before the check
    // may double them once more.
    expect(largest).toBeLessThanOrEqual(16 * 1024 * 1024);
  });

  it('collects the garbage a start leaves at once, and leaves no gc() behind', () => {
    let records: { id: string; body: string }[] | undefined = [];
    for (let i = 0; i < 200_000; i++)
      records.push({ id: `r${i}`, body: `{"id":"r${i}","phase":"finished"}` });
    expect(records.length).toBe(200_000);
    records = undefined;
    const before = process.memoryUsage().heapUsed;
    collectStartGarbage();
    const after = process.memoryUsage().heapUsed;
    expect(before - after).toBeGreaterThan(10 * 1024 * 1024);
    expect('gc' in globalThis).toBe(false);
  });

  it('compacts: the old generation gives back pages the garbage left sparse', () => {
    // Objects that live through two scavenges reach the old generation; keeping one in sixteen
    // leaves its pages mostly garbage, which a full collection without compaction keeps (V8 moves
    // only pages it finds fragmented past its own thresholds).
    let all: { id: number; body: string }[] | undefined = [];
    for (let i = 0; i < 400_000; i++) all.push({ id: i, body: `record ${i} finished` });
    collectStartGarbage();
    const kept = all.filter((_, i) => i % 16 === 0);
    all = undefined;
    const before = oldBytes();
    collectStartGarbage();
    const after = oldBytes();
    expect(kept.length).toBe(25_000);
    expect(before - after).toBeGreaterThan(10 * 1024 * 1024);
  });
});

function oldBytes(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'old_space')?.space_size ?? 0;
}
