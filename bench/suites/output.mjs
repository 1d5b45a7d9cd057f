import { readFileSync } from 'node:fs';
import { IMAGE } from '../lib/fixture.mjs';
import { run } from '../lib/proc.mjs';
import { interleave, summarize } from '../lib/stats.mjs';
import { triggerOnce } from './session.mjs';

const N = 4;
const TICKS = 100; // USER_HZ on Linux

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat(5): the 12th and 13th after the state.
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/**
 * Output-heavy: four sessions at once, each printing `ctx.outputMb` MB, through agentd (max_sessions 4)
 * vs the same bare sessions with `podman start --attach` to /dev/null; wall time, and the daemon's CPU
 * seconds per MB of output.
 */
export async function outputSuite(ctx) {
  const { daemon4 } = ctx;
  const mb = ctx.outputMb;
  const cpu = [];
  const results = await interleave(
    {
      agentd: async () => {
        const before = cpuSeconds(daemon4.pid);
        const started = performance.now();
        await Promise.all(
          Array.from({ length: N }, () =>
            triggerOnce(daemon4.config.socket, ctx.repo.url, { agent: 'printer' }),
          ),
        );
        const ms = performance.now() - started;
        cpu.push((cpuSeconds(daemon4.pid) - before) / (N * mb));
        return ms;
      },
      baseline: async () => {
        const started = performance.now();
        await Promise.all(
          Array.from({ length: N }, () =>
            run(
              'bash',
              [
                ctx.baselineScript,
                IMAGE,
                ctx.repo.url,
                ctx.setupFile,
                'sh',
                '-c',
                `yes ${'x'.repeat(99)} | head -c ${mb * 1024 * 1024}`,
              ],
              {
                env: {
                  ...process.env,
                  BENCH_TOKEN: 'bench-token-value',
                  BENCH_PREFIX: ctx.baselinePrefix,
                  BENCH_LABEL: ctx.runId,
                },
              },
            ),
          ),
        );
        return performance.now() - started;
      },
    },
    { runs: ctx.heavyRuns, warmup: ctx.heavyWarmup, label: 'output' },
  );
  // The warm-up round's CPU is not a sample.
  const perMb = summarize(cpu.slice(-ctx.heavyRuns).map((s) => s * 1000));
  return {
    rows: [
      {
        id: 'output-4x',
        name: `Output-heavy: ${N} sessions at once, each printing ${mb} MB`,
        a: { label: `agentd, ${N} × ${mb} MB`, ...results.agentd },
        b: { label: `${N} bare scripts, output to /dev/null`, ...results.baseline },
        target: { text: 'ratio ≤ 1.1', max: 1.1 },
      },
    ],
    daemonCpuMsPerMb: perMb,
  };
}
