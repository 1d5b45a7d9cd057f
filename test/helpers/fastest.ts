/** The fastest of `rounds` runs of `run`, in ms: for ratios of two costs measured in the same test. */
export function fastest(run: () => void, rounds = 3): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    run();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}
