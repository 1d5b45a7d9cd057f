// Where the daemon's CPU goes under load: `npm run build && node bench/profile.mjs`. Starts a daemon with
// `node --cpu-prof`, runs 20 sessions at once (max_sessions 20), then four sessions at once printing
// BENCH_OUTPUT_MB (default 50) MB each, stops it and prints the functions with the most self time, by
// case, and the daemon's CPU seconds. Cleans up what it made. BENCH_PROFILE_CASES (default twenty,output)
// picks the cases, BENCH_PROFILE_TOP (default 14) how many functions are listed. BENCH_NODE_ARGS adds
// options to the daemon's node (e.g. `--trace-gc`: its output goes to DIR/<case>/daemon-1.log), and
// BENCH_KEEP=1 keeps DIR (the profiles and logs) and prints where it is.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cleanupPodman,
  dist,
  removeDir,
  serveRepo,
  startDaemon,
  workDir,
  writeConfig,
} from './lib/fixture.mjs';
import { triggerOnce } from './suites/session.mjs';

const outputMb = Number(process.env.BENCH_OUTPUT_MB ?? 50);

const top = Number(process.env.BENCH_PROFILE_TOP ?? 14);
const only = (process.env.BENCH_PROFILE_CASES ?? 'twenty,output').split(',');

function summarize(file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = profile.timeDeltas;
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    const us = dt[i] ?? 0;
    total += us;
    self.set(key, (self.get(key) ?? 0) + us);
  });
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top);
  const busy = total - (self.get('(idle)') ?? 0);
  return { totalMs: total / 1000, busyMs: busy / 1000, rows: rows.map(([k, us]) => [k, us / 1000]) };
}

async function profiled(name, dir, repo, maxSessions, run) {
  const at = join(dir, name);
  const config = writeConfig(at, { maxSessions, outputMb });
  const { instanceIdOf } = await dist('daemon/instance-id.js');
  const instanceId = instanceIdOf(config.socket, config.stateDir);
  const profDir = join(at, 'prof');
  const daemon = await startDaemon(at, config, {
    nodeArgs: [
      '--cpu-prof',
      `--cpu-prof-dir=${profDir}`,
      ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
    ],
  });
  try {
    const started = performance.now();
    await run(config.socket, repo);
    const wallMs = performance.now() - started;
    await daemon.stop();
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    return { name, wallMs, ...summarize(join(profDir, file)) };
  } finally {
    await daemon.stop();
    await cleanupPodman({ instanceIds: [instanceId], secretPrefixes: [`agentd-${instanceId.slice(0, 8)}-`] });
  }
}

const dir = workDir();
const repo = await serveRepo(dir);
try {
  const cases = [];
  if (only.includes('twenty'))
    cases.push(
      await profiled('twenty', dir, repo.url, 20, (socket, url) =>
        Promise.all(Array.from({ length: 20 }, () => triggerOnce(socket, url))),
      ),
    );
  if (only.includes('output'))
    cases.push(
      await profiled('output', dir, repo.url, 4, (socket, url) =>
        Promise.all(Array.from({ length: 4 }, () => triggerOnce(socket, url, { agent: 'printer' }))),
      ),
    );
  for (const c of cases) {
    process.stdout.write(
      `\n## ${c.name}: wall ${Math.round(c.wallMs)} ms; daemon profile ${Math.round(c.totalMs)} ms, busy ${Math.round(c.busyMs)} ms\n`,
    );
    for (const [k, ms] of c.rows) process.stdout.write(`${ms.toFixed(0).padStart(7)} ms  ${k}\n`);
  }
} finally {
  repo.stop();
  if (process.env.BENCH_KEEP === '1') process.stdout.write(`kept ${dir}\n`);
  else removeDir(dir);
}
