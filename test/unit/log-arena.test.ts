import { describe, expect, it } from 'vitest';
import { type Held, LogArena } from '../../src/runner/log-arena.js';

describe('LogArena', () => {
  it('copies bytes and encodes text into one slab until it is full, then into the next', () => {
    const arena = new LogArena(64);
    const source = Buffer.from('0123456789'.repeat(3));
    const a = arena.copy(source);
    source.fill(0x78);
    // A copy: what the caller's buffer becomes later does not change it.
    expect(a.bytes.toString()).toBe('0123456789'.repeat(3));
    const b = arena.encode('é€😀'); // 2 + 3 + 4 bytes
    expect(b.bytes.toString()).toBe('é€😀');
    expect(b.slab).toBe(a.slab);
    expect(a.slab?.refs).toBe(2);
    const c = arena.copy(Buffer.alloc(40, 0x61));
    expect(c.slab).not.toBe(a.slab);
    expect(arena.slabs).toBe(1);
  });

  it('reuses a slab once every view of it is released, and never while one is held', () => {
    const arena = new LogArena(64);
    const first = arena.copy(Buffer.alloc(40, 0x61));
    const second = arena.copy(Buffer.alloc(40, 0x62)); // a second slab
    const firstBuffer = first.slab?.buffer;
    // Still held: the next slab is a new one, and the first view is intact.
    const third = arena.copy(Buffer.alloc(40, 0x63));
    expect(third.slab?.buffer).not.toBe(firstBuffer);
    expect(first.bytes.every((b) => b === 0x61)).toBe(true);
    arena.release(first);
    arena.release(second);
    // The first slab is free now: the next full slab is replaced by it, not by a new buffer.
    const fourth = arena.copy(Buffer.alloc(40, 0x64));
    expect([firstBuffer, second.slab?.buffer]).toContain(fourth.slab?.buffer);
    expect(third.bytes.every((b) => b === 0x63)).toBe(true);
  });

  it('starts the current slab over once its views are released', () => {
    const arena = new LogArena(64);
    const a = arena.copy(Buffer.alloc(50, 0x61));
    arena.release(a);
    const b = arena.copy(Buffer.alloc(50, 0x62));
    expect(b.slab).toBe(a.slab);
    expect(b.bytes.byteOffset).toBe(a.bytes.byteOffset);
    expect(arena.slabs).toBe(1);
  });

  it('extends the newest view of the current slab in place, and only that one', () => {
    const arena = new LogArena(64);
    const a = arena.encode('abc');
    const extended = arena.extend(a, 'def') as Held;
    expect(extended.bytes.toString()).toBe('abcdef');
    expect(extended.slab?.refs).toBe(1);
    const b = arena.copy(Buffer.from('xyz'));
    // `extended` is no longer the newest view of the slab.
    expect(arena.extend(extended, 'ghi')).toBeUndefined();
    // No room: undefined, nothing taken.
    expect(arena.extend(b, 'q'.repeat(30))).toBeUndefined();
    expect(b.slab?.used).toBe(9);
  });

  it('gives what is larger than a slab a buffer of its own, never reused', () => {
    const arena = new LogArena(64);
    const big = arena.copy(Buffer.alloc(100, 0x61));
    expect(big.slab).toBeUndefined();
    expect(big.bytes.length).toBe(100);
    const text = arena.encode('é'.repeat(30)); // could be 90 bytes: more than a slab
    expect(text.slab).toBeUndefined();
    expect(text.bytes.toString()).toBe('é'.repeat(30));
    arena.release(big);
    expect(arena.slabs).toBe(0);
  });

  it('lets free slabs go when shrunk, and everything when cleared', () => {
    const arena = new LogArena(64);
    const views = Array.from({ length: 4 }, () => arena.copy(Buffer.alloc(40)));
    for (const view of views) arena.release(view);
    expect(arena.slabs).toBe(4);
    arena.shrink();
    expect(arena.slabs).toBe(1);
    arena.clear();
    expect(arena.slabs).toBe(0);
  });
});
