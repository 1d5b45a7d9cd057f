import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * V8's young generation while `agentd start` loads its modules. Loading allocates fast, and V8 doubles
 * its semi-spaces each time a scavenge finds much alive, up to 16 MB each, and keeps them until its
 * memory reducer finds the daemon without load (measured: some 20 to 30 s). Holding the growth factor
 * at 1 keeps them at their initial 1 MB until the daemon is up (idle RSS 88 → 76 MB); released then,
 * so sessions' output gets V8's growing young generation as before (held for good, the output path
 * took 16 % more CPU per MB). Growth is read at each scavenge: the flag works when set at run time (on
 * the command line Node 20 ignores it), and before the daemon's modules are imported.
 */
export function holdYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

/**
 * Once up: V8's default growth (2) again, but only up to CAP_SEMI_SPACE_BYTES a semi-space instead of
 * V8's 16 MB (`--max-semi-space-size` is read only on Node's command line). Output floods fill the
 * young generation with pipe chunks that die young; a semi-space of 16 MB let them, and the 64 KiB
 * buffers they hold outside the heap, pile up to some 50 MB between scavenges (the hostile-output
 * test's peak RSS under a loaded CI machine went past 200 MB). After each scavenge the growth is held
 * at 1 while the semi-space is at the cap, and allowed again once V8's memory reducer has shrunk it.
 * The check comes after the scavenge, as a task: a second scavenge before it may double the semi-space
 * once more (8 MB at worst).
 */
export function releaseYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=2');
  if (observer !== undefined) return;
  let held = false;
  observer = new PerformanceObserver(() => {
    const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
    if (young === undefined) return;
    // new_space is both semi-spaces.
    const atCap = young.space_size / 2 >= CAP_SEMI_SPACE_BYTES;
    if (atCap === held) return;
    held = atCap;
    setFlagsFromString(atCap ? '--semi-space-growth-factor=1' : '--semi-space-growth-factor=2');
  });
  observer.observe({ entryTypes: ['gc'] });
}

let observer: PerformanceObserver | undefined;
const CAP_SEMI_SPACE_BYTES = 4 * 1024 * 1024;

/**
 * One full, compacting garbage collection once the daemon is up: the start's own work (reading every
 * record in the state dir, recovery, reconciliation) leaves garbage in the old generation that V8
 * collects only when it next grows it or after some 30 s idle, and RSS keeps the pages until then.
 * Compacting moves what lives out of the pages the garbage left sparse, so they are returned rather
 * than kept a quarter full (measured after a start on 10,000 records: 80 MB without, 73 MB with; V8
 * compacts on its own only pages it finds fragmented enough). `gc` is exposed just long enough to
 * take it (a vm context made while `--expose-gc` is on has it).
 */
export function collectStartGarbage(): void {
  setFlagsFromString('--expose-gc');
  setFlagsFromString('--compact-on-every-full-gc');
  try {
    const gc = runInNewContext('gc') as unknown;
    if (typeof gc === 'function') gc();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
    setFlagsFromString('--no-expose-gc');
  }
}

/**
 * A full garbage collection of the calling thread's heap, without compaction, for a reload's thread
 * (reload-worker.ts), which takes it once the YAML's tokens are garbage (LoadOptions.collect): V8
 * collects its old space only once it has grown as much again as was live at the last collection,
 * which was while the tokens lived, so the 300 MB they take for a 4 MiB file stayed under everything
 * made after them. Compacting too (as collectStartGarbage does) took the thread's process 100 MB higher:
 * what lives is copied while the pages it leaves are still held. `gc` is exposed as for
 * collectStartGarbage (a thread cannot be given --expose-gc: ERR_WORKER_INVALID_EXEC_ARGV), and a vm
 * context's `gc` collects the heap of the thread that made it.
 */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  try {
    const gc = runInNewContext('gc') as unknown;
    if (typeof gc === 'function') gc();
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
