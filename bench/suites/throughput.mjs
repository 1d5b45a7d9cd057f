import { interleave } from '../lib/stats.mjs';
import { baselineOnce, triggerOnce } from './session.mjs';

const N = 20;

async function wall(fn) {
  const started = performance.now();
  await Promise.all(Array.from({ length: N }, fn));
  return performance.now() - started;
}

/** Throughput: 20 triggers at once (max_sessions 4 and 20) vs 20 bare scripts at once; wall time. */
export async function throughputSuite(ctx) {
  const url = ctx.repo.url;
  const results = await interleave(
    {
      max4: () => wall(() => triggerOnce(ctx.daemon4.config.socket, url)),
      max20: () => wall(() => triggerOnce(ctx.daemon20.config.socket, url)),
      baseline: () => wall(() => baselineOnce(ctx)),
    },
    { runs: ctx.heavyRuns, warmup: ctx.heavyWarmup, label: 'throughput' },
  );
  const b = { label: `${N} bare scripts at once`, ...results.baseline };
  return {
    rows: [
      {
        id: 'throughput-4',
        name: `Throughput: ${N} triggers at once, max_sessions 4`,
        a: { label: `${N} triggers, max 4`, ...results.max4 },
        b,
        target: { text: 'ratio ≤ 1.05', max: 1.05 },
      },
      {
        id: 'throughput-20',
        name: `Throughput: ${N} triggers at once, max_sessions 20`,
        a: { label: `${N} triggers, max 20`, ...results.max20 },
        b,
        target: { text: 'ratio ≤ 1.05', max: 1.05 },
      },
    ],
  };
}
