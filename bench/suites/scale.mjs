import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, memoryOf, request, startDaemon } from '../lib/fixture.mjs';
import { run, sleep } from '../lib/proc.mjs';
import { interleave, summarize } from '../lib/stats.mjs';

const MB = 1024 * 1024;

/**
 * Finished session records as the daemon writes them (state_dir/sessions/<id>.json), oldest first.
 * The daemon keeps at most `daemon.history` (≤ 200) of them: at start it loads every file and prunes
 * the rest, so this measures loading 10,000 and answering from what is kept.
 */
function plantRecords(stateDir, count, repo) {
  const dir = join(stateDir, 'sessions');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const start = Date.now() - count * 60_000;
  for (let i = 0; i < count; i++) {
    const at = (ms) => new Date(start + i * 60_000 + ms).toISOString();
    const id = `bench-${String(i).padStart(6, '0')}`;
    const record = {
      version: 1,
      id,
      agent: 'demo',
      repo,
      acceptedAt: at(0),
      startedAt: at(10),
      finishedAt: at(500),
      phase: 'finished',
      phases: [
        { phase: 'queued', at: at(0) },
        { phase: 'resolving', at: at(10) },
        { phase: 'finished', at: at(500) },
      ],
      outcome: 'succeeded',
      exitCode: 0,
      durationMs: 490,
    };
    writeFileSync(join(dir, `${id}.json`), `${JSON.stringify(record)}\n`, { mode: 0o600 });
  }
}

/**
 * The daemon itself at scale: RECORDS finished records planted in its state dir, then QUEUED
 * sessions queued behind one that runs (`max_sessions: 1`, `sleep 600`); `agentd status` and
 * `agentd history --limit 20` as whole processes against `node -e 0`, and the daemon's RSS once idle
 * (sampled during those runs, after `scaleSettleMs` without triggers) and right after the triggers.
 */
export async function scaleSuite(ctx) {
  const records = ctx.scaleRecords;
  const queued = ctx.scaleQueued;
  const at = join(ctx.dir, 'scale');
  const config = ctx.makeConfig(at, { maxSessions: 1 });
  const yaml = JSON.parse(readFileSync(config.file, 'utf8'));
  yaml.daemon.history = 200;
  const sleeper = yaml.agents.find((a) => a.name === 'sleeper');
  yaml.agents.push({ ...sleeper, name: 'waiter', command: ['sleep', '600'] });
  writeFileSync(config.file, `${JSON.stringify(yaml, null, 2)}\n`);
  plantRecords(config.stateDir, records, ctx.repo.url);

  const t0 = performance.now();
  const daemon = await startDaemon(at, config);
  const startMs = performance.now() - t0;
  try {
    const idleRecords = memoryOf(daemon.pid).rss;
    const t1 = performance.now();
    for (let i = 0; i < queued + 1; i++) {
      const reply = await request(config.socket, { type: 'trigger', agent: 'waiter', repo: ctx.repo.url });
      if (reply.type !== 'accepted') throw new Error(`trigger not accepted: ${JSON.stringify(reply)}`);
    }
    const queueMs = performance.now() - t1;
    const status = await request(config.socket, { type: 'status' });
    if (status.queued.length < queued) {
      throw new Error(`expected ${queued} queued sessions, status shows ${status.queued.length}`);
    }
    // Idle, as the target means it: the burst of triggers leaves garbage in V8's heap that its memory
    // reducer returns once the daemon has been quiet for a while (some 20 s here); RSS right after the
    // burst is reported beside it.
    await sleep(1000);
    const rssAfterBurst = memoryOf(daemon.pid).rss;
    await sleep(ctx.scaleSettleMs);
    const rssSettled = memoryOf(daemon.pid).rss;
    // A queue that drains (its sessions failing at once, e.g. without CONTAINERS_CONF on these machines)
    // would be measured busy, not idle.
    const settled = await request(config.socket, { type: 'status' });
    if (settled.queued.length !== queued) {
      throw new Error(
        `expected ${queued} sessions still queued after ${ctx.scaleSettleMs / 1000} s, status shows ${settled.queued.length}: are sessions failing? see ${at}`,
      );
    }
    const rss = [];
    const node = process.execPath;
    const results = await interleave(
      {
        status: async () => {
          const r = await run(BIN, ['status', '--socket', config.socket]);
          if (!r.stdout.startsWith('agentd ')) throw new Error(`unexpected status output: ${r.stdout}`);
          return r.ms;
        },
        history: async () => {
          const r = await run(BIN, ['history', '--limit', '20', '--socket', config.socket]);
          if (r.stdout.split('\n').filter(Boolean).length < 20) {
            throw new Error(`history printed fewer than 20 lines: ${r.stdout}`);
          }
          rss.push(memoryOf(daemon.pid).rss);
          return r.ms;
        },
        node: async () => (await run(node, ['-e', '0'])).ms,
      },
      { runs: ctx.clientRuns, warmup: ctx.warmup, label: 'scale' },
    );
    const baseline = { label: '`node -e 0`', ...results.node };
    const label = `${queued} queued, ${records} records planted`;
    process.stderr.write(
      `  scale: start → ready ${Math.round(startMs)} ms with ${records} records; ${queued + 1} triggers in ${Math.round(queueMs)} ms; RSS after start ${(idleRecords / MB).toFixed(1)} MB, 1 s after the triggers ${(rssAfterBurst / MB).toFixed(1)} MB, ${Math.round(ctx.scaleSettleMs / 1000)} s after ${(rssSettled / MB).toFixed(1)} MB\n`,
    );
    return {
      scale: {
        records,
        queued,
        startMs,
        queueMs,
        rssAfterStartMb: idleRecords / MB,
        rssAfterTriggersMb: rssAfterBurst / MB,
        settleS: ctx.scaleSettleMs / 1000,
        rssSettledMb: rssSettled / MB,
      },
      rows: [
        {
          id: 'scale-status',
          name: `\`agentd status\`, ${label}`,
          a: { label: 'agentd status', ...results.status },
          b: baseline,
          target: { text: 'median < 150 ms', absMax: 150 },
        },
        {
          id: 'scale-history',
          name: `\`agentd history --limit 20\`, ${label}`,
          a: { label: 'agentd history --limit 20', ...results.history },
          b: baseline,
          target: { text: 'median < 150 ms', absMax: 150 },
        },
        {
          id: 'scale-rss',
          unit: 'MB',
          name: `Daemon RSS idle (${Math.round(ctx.scaleSettleMs / 1000)} s after the last trigger), ${label}`,
          a: { label: 'agentd', ...summarize(rss.map((v) => v / MB)) },
          b: { label: 'agentd right after start (nothing queued)', ...summarize([idleRecords / MB]) },
          target: { text: 'median < 80 MB', absMax: 80 },
        },
      ],
    };
  } finally {
    await daemon.stop();
  }
}
