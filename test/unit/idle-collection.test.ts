/**
 * The idle collection (src/daemon/idle-collection.ts): one collection of the daemon's heap once it has
 * been idle IDLE_COLLECT_MS after a busy spell; none while anything runs or waits, none at the start
 * (the start collects on its own), none after stop. Fake timers and a fake machine; no daemon.
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { collectWhenIdle, IDLE_COLLECT_MS } from '../../src/daemon/idle-collection.js';

afterEach(() => {
  vi.useRealTimers();
});

function watched() {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  let busy = 0;
  let listener: (() => void) | undefined;
  let collections = 0;
  const watch = collectWhenIdle({
    idle: () => busy === 0,
    subscribe: (l) => {
      listener = l;
      return () => {
        listener = undefined;
      };
    },
    collect: () => collections++,
    log,
    rss: () => 100 * 1024 * 1024,
  });
  /** The machine takes a step with `n` sessions running or queued. */
  const step = (n: number) => {
    busy = n;
    listener?.();
  };
  return { watch, step, collections: () => collections, lines, subscribed: () => listener !== undefined };
}

describe('the idle collection', () => {
  it('collects once, IDLE_COLLECT_MS after the last session of a spell ended, and says so at debug', () => {
    const { step, collections, lines } = watched();
    step(1);
    step(2);
    step(1);
    vi.advanceTimersByTime(IDLE_COLLECT_MS * 3);
    expect(collections()).toBe(0);
    step(0);
    vi.advanceTimersByTime(IDLE_COLLECT_MS - 1);
    expect(collections()).toBe(0);
    vi.advanceTimersByTime(1);
    expect(collections()).toBe(1);
    // Idle steps after it (a status, a history) collect no more.
    step(0);
    step(0);
    vi.advanceTimersByTime(IDLE_COLLECT_MS * 10);
    expect(collections()).toBe(1);
    expect(lines.filter((l) => l.event === 'daemon.idle_collected')).toMatchObject([
      { level: 20, rssBeforeMb: 100, rssAfterMb: 100 },
    ]);
  });

  it('none at the start, and none while the daemon stays idle', () => {
    const { step, collections } = watched();
    step(0);
    vi.advanceTimersByTime(IDLE_COLLECT_MS * 10);
    expect(collections()).toBe(0);
  });

  it('a session that starts before the delay is over puts it off until the next spell ends', () => {
    const { step, collections } = watched();
    step(1);
    step(0);
    vi.advanceTimersByTime(IDLE_COLLECT_MS - 1000);
    step(1);
    vi.advanceTimersByTime(IDLE_COLLECT_MS * 5);
    expect(collections()).toBe(0);
    step(0);
    vi.advanceTimersByTime(IDLE_COLLECT_MS);
    expect(collections()).toBe(1);
    // A second spell: one more.
    step(3);
    step(0);
    vi.advanceTimersByTime(IDLE_COLLECT_MS);
    expect(collections()).toBe(2);
  });

  it('stop cancels a pending collection and unsubscribes', () => {
    const { watch, step, collections, subscribed } = watched();
    step(1);
    step(0);
    watch.stop();
    vi.advanceTimersByTime(IDLE_COLLECT_MS * 2);
    expect(collections()).toBe(0);
    expect(subscribed()).toBe(false);
  });
});
