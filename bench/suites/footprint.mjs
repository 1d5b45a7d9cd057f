import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { memoryOf, request, startDaemon } from '../lib/fixture.mjs';
import { sleep } from '../lib/proc.mjs';
import { summarize } from '../lib/stats.mjs';

const N = 20;
const MB = 1024 * 1024;

async function idleRss(pid) {
  const samples = [];
  for (let i = 0; i < 5; i++) {
    await sleep(200);
    samples.push(memoryOf(pid).rss);
  }
  return summarize(samples).median;
}

/** Daemon RSS idle (fresh) and its peak with 20 `sleep 5` sessions running; reference: an idle bare node. */
export async function footprintSuite(ctx) {
  const idle = [];
  const loaded = [];
  const after = [];
  const nodeIdle = [];
  for (let round = 0; round < ctx.heavyRuns; round++) {
    const dir = join(ctx.dir, `footprint-${round}`);
    const config = ctx.makeConfig(dir, { maxSessions: N });
    const daemon = await startDaemon(dir, config);
    try {
      await sleep(500);
      idle.push(await idleRss(daemon.pid));
      for (let i = 0; i < N; i++) {
        const reply = await request(config.socket, { type: 'trigger', agent: 'sleeper', repo: ctx.repo.url });
        if (reply.type !== 'accepted') throw new Error(`trigger not accepted: ${JSON.stringify(reply)}`);
      }
      let peak = 0;
      let sawAll = false;
      for (;;) {
        peak = Math.max(peak, memoryOf(daemon.pid).rss);
        const status = await request(config.socket, { type: 'status' });
        if (status.running.length === N) sawAll = true;
        if (status.running.length === 0 && status.queued.length === 0) break;
        await sleep(100);
      }
      if (!sawAll) process.stderr.write('  footprint: the 20 sessions never all ran at once\n');
      const { hwm } = memoryOf(daemon.pid);
      loaded.push(Math.max(peak, hwm));
      await sleep(1000);
      after.push(await idleRss(daemon.pid));
    } finally {
      await daemon.stop();
    }
    // Reference: a bare node process that only waits.
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    await sleep(700);
    nodeIdle.push(memoryOf(child.pid).rss);
    child.kill('SIGTERM');
    process.stderr.write(`  footprint: round ${round + 1}/${ctx.heavyRuns}\n`);
  }
  const mb = (s) => summarize(s.map((v) => v / MB));
  const ref = { label: 'bare idle `node`', ...mb(nodeIdle) };
  return {
    rows: [
      {
        id: 'rss-idle',
        unit: 'MB',
        name: 'Daemon RSS, idle (fresh start)',
        a: { label: 'agentd idle', ...mb(idle) },
        b: ref,
        target: { text: 'median < 80 MB', absMax: 80 },
      },
      {
        id: 'rss-20',
        unit: 'MB',
        name: `Daemon RSS, peak with ${N} sessions running`,
        a: { label: `agentd, ${N} sessions`, ...mb(loaded) },
        b: ref,
      },
      {
        id: 'rss-after',
        unit: 'MB',
        name: `Daemon RSS, idle after ${N} sessions`,
        a: { label: 'agentd idle after', ...mb(after) },
        b: ref,
      },
    ],
  };
}
