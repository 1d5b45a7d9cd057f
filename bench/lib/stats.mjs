/** Median, min and max of a list of milliseconds (or bytes). */
export function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n === 0 ? Number.NaN : n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return { median, min: sorted[0], max: sorted[n - 1], n, samples };
}

/**
 * Runs every variant once per round, in turn (A B A B ...), after `warmup` untimed rounds.
 * Each variant is an async function that returns the measured value (ms). Returns { name: summary }.
 */
export async function interleave(variants, { runs, warmup = 1, label = '' }) {
  const names = Object.keys(variants);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = -warmup; round < runs; round++) {
    for (const name of names) {
      const value = await variants[name]();
      if (round >= 0) samples[name].push(value);
    }
    if (label)
      process.stderr.write(
        round < 0 ? `  ${label}: warm-up done\n` : `  ${label}: round ${round + 1}/${runs}\n`,
      );
  }
  return Object.fromEntries(names.map((n) => [n, summarize(samples[n])]));
}
