// agentd benchmarks: `npm run build && npm run bench`. Builds nothing itself; measures dist/.
// Env: BENCH_RUNS (default 7; client latency runs 3x as many), BENCH_HEAVY_RUNS (default 3: throughput, output,
// footprint), BENCH_WARMUP (default 1), BENCH_ONLY (comma list of session,client,throughput,output,footprint,reconcile),
// BENCH_OUTPUT_MB (default 50: what each of the four output-heavy sessions prints),
// BENCH_QUICK=1 (`npm run bench:quick`, for CI: 2 rounds, no warm-up, session and client only, output 5 MB; writes
// bench/results but not docs/benchmarks.md), BENCH_DOC=0/1 (write docs/benchmarks.md; default: unless quick),
// BENCH_REDOC=1 (run nothing: write the documents again from bench/results/latest.json and bench/findings.md),
// BENCH_RECONCILE_RUNS (default 2: every round plants the objects twice, and 2,000 secrets take ~1 minute to
// plant and as long to remove here), BENCH_RECONCILE_SIZES (orphan secrets+dead containers, comma list;
// default 200+50,2000+500; a plain number N is N+50), BENCH_KEEP=1 keeps the temp dir, BENCH_IMAGE.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg } from 'node:os';
import { join } from 'node:path';
import { benchmarksDoc, svgChart } from './lib/doc.mjs';
import {
  CLI,
  cleanupPodman,
  dist,
  IMAGE,
  ROOT,
  removeDir,
  serveRepo,
  startDaemon,
  workDir,
  writeConfig,
} from './lib/fixture.mjs';
import { podman, run } from './lib/proc.mjs';
import {
  callsMarkdown,
  decompositionMarkdown,
  growthMarkdown,
  judge,
  markdown,
  outputMarkdown,
  targetsMarkdown,
} from './lib/report.mjs';
import { clientSuite } from './suites/client.mjs';
import { footprintSuite } from './suites/footprint.mjs';
import { outputSuite } from './suites/output.mjs';
import { reconcileSuite } from './suites/reconcile.mjs';
import { scaleSuite } from './suites/scale.mjs';
import { sessionSuite } from './suites/session.mjs';
import { throughputSuite } from './suites/throughput.mjs';

const int = (name, fallback) => {
  const value = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(value) && value >= 0 ? value : fallback;
};

/** BENCH_RECONCILE_SIZES: `SECRETS+CONTAINERS` pairs, comma separated; a plain number has 50 containers. */
function reconcileSizes(text) {
  return text.split(',').map((item) => {
    const [secrets, containers = '50'] = item.trim().split('+');
    const size = { secrets: Number(secrets), containers: Number(containers) };
    if (
      !Number.isInteger(size.secrets) ||
      !Number.isInteger(size.containers) ||
      size.secrets < 0 ||
      size.containers < 0
    )
      throw new Error(`BENCH_RECONCILE_SIZES: '${item}' is not SECRETS+CONTAINERS (e.g. 2000+500)`);
    return size;
  });
}

function withoutKey(env, key) {
  const copy = { ...env };
  delete copy[key];
  return copy;
}

/** bench/results/latest.md, and docs/benchmarks.{md,svg} when `doc`, from a run's results. */
function writeReports({ meta, rows, ...extra }, doc) {
  const md =
    markdown(rows, meta) +
    targetsMarkdown(rows) +
    decompositionMarkdown(rows, extra.sessionNodeStart, extra.sessionNodeBareStart) +
    callsMarkdown(extra.podmanCalls) +
    outputMarkdown(extra.daemonCpuMsPerMb, meta.outputMb) +
    growthMarkdown(extra.reconcileGrowth);
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.md'), md);
  if (doc) {
    const docs = join(ROOT, 'docs');
    const findingsFile = join(ROOT, 'bench', 'findings.md');
    const findings = existsSync(findingsFile) ? readFileSync(findingsFile, 'utf8') : '';
    writeFileSync(join(docs, 'benchmarks.svg'), svgChart(rows.filter((r) => r.unit !== 'MB')));
    writeFileSync(
      join(docs, 'benchmarks.md'),
      benchmarksDoc({ tableMd: md.split('\n').slice(2).join('\n'), meta, findings }),
    );
  }
  return md;
}

async function main() {
  if (process.env.BENCH_REDOC === '1') {
    // Only the documents again, from the last run's results (after editing bench/findings.md).
    writeReports(JSON.parse(readFileSync(join(ROOT, 'bench', 'results', 'latest.json'), 'utf8')), true);
    process.stdout.write(
      'bench: wrote docs/benchmarks.md and docs/benchmarks.svg from bench/results/latest.json\n',
    );
    return 0;
  }
  if (!existsSync(CLI)) {
    process.stderr.write(
      'bench: dist/ is missing; run `npm run build` first (the bench measures the build)\n',
    );
    return 1;
  }
  const podmanFix = join(ROOT, '.podman', 'containers.conf');
  if (!process.env.CONTAINERS_CONF && existsSync(podmanFix)) {
    // What scripts/podman-env.sh wrote where this machine needs it (see /work/shared/PODMAN.md): without it
    // every session fails at once, and the benchmarks would measure that.
    process.env.CONTAINERS_CONF = podmanFix;
  }
  if ((await run('podman', ['image', 'exists', IMAGE], { allowFail: true })).code !== 0) {
    process.stderr.write(`bench: image ${IMAGE} is missing; build it (see /work/shared/PODMAN.md)\n`);
    return 1;
  }
  const quick = process.env.BENCH_QUICK === '1';
  const runs = Math.max(1, int('BENCH_RUNS', quick ? 2 : 7));
  const heavyRuns = Math.max(1, int('BENCH_HEAVY_RUNS', quick ? 1 : 3));
  const warmup = int('BENCH_WARMUP', quick ? 0 : 1);
  const only = (
    process.env.BENCH_ONLY ??
    (quick ? 'session,client' : 'session,client,throughput,output,footprint,scale,reconcile')
  ).split(',');
  const writeDoc = (process.env.BENCH_DOC ?? (quick ? '0' : '1')) === '1';
  const loadStart = loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
  const sizes = reconcileSizes(process.env.BENCH_RECONCILE_SIZES ?? '200+50,2000+500');

  const { instanceIdOf } = await dist('daemon/instance-id.js');
  const { SETUP_SCRIPT } = await dist('runner/setup-script.js');
  const dir = workDir();
  const runId = dir
    .slice(-6)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x');
  const instanceIds = [];
  const daemons = [];
  const ctx = {
    dir,
    runId,
    runs,
    clientRuns: runs * 3,
    heavyRuns,
    heavyWarmup: Math.min(warmup, 1),
    reconcileRuns: Math.max(1, int('BENCH_RECONCILE_RUNS', Math.min(heavyRuns, 2))),
    reconcileSizes: sizes,
    outputMb: Math.max(1, int('BENCH_OUTPUT_MB', quick ? 5 : 50)),
    scaleRecords: Math.max(1, int('BENCH_SCALE_RECORDS', 10_000)),
    scaleQueued: Math.max(1, int('BENCH_SCALE_QUEUED', 1000)),
    scaleSettleMs: Math.max(0, int('BENCH_SCALE_SETTLE_S', 45)) * 1000,
    warmup,
    baselineScript: join(ROOT, 'bench', 'baseline-session.sh'),
    baselinePrefix: `bench-${runId}-`,
    setupFile: join(dir, 'setup.sh'),
    // Node < 22 parses NODE_EXTRA_CA_CERTS (and its root store) at every start-up: ~75 ms CPU here. When it is
    // set, client processes are also timed without it, to show what a machine without it sees.
    withoutCa: process.env.NODE_EXTRA_CA_CERTS ? withoutKey(process.env, 'NODE_EXTRA_CA_CERTS') : undefined,
    makeConfig(at, options) {
      const config = writeConfig(at, options);
      instanceIds.push(instanceIdOf(config.socket, config.stateDir));
      return config;
    },
  };
  writeFileSync(ctx.setupFile, SETUP_SCRIPT);
  const daemon = async (name, maxSessions) => {
    const at = join(dir, name);
    const config = ctx.makeConfig(at, { maxSessions, outputMb: ctx.outputMb });
    const handle = await startDaemon(at, config);
    daemons.push(handle);
    return { ...handle, config };
  };

  let cleaning;
  /** Stops what the bench started and removes the Podman objects it made; idempotent. */
  const cleanup = () => {
    cleaning ??= (async () => {
      // Planting ends first (what is in flight finishes): then every object it made is found below.
      await ctx.stopPlanting?.();
      for (const d of daemons) await d.stop();
      ctx.repo?.stop();
      const cleaned = await cleanupPodman({
        instanceIds,
        baselineLabel: runId,
        secretPrefixes: [ctx.baselinePrefix, ...instanceIds.map((id) => `agentd-${id.slice(0, 8)}-`)],
      });
      if (cleaned.containers + cleaned.secrets > 0) {
        process.stderr.write(
          `bench: removed ${cleaned.containers} containers, ${cleaned.secrets} secrets left over\n`,
        );
      }
      if (process.env.BENCH_KEEP === '1') process.stderr.write(`bench: kept ${dir}\n`);
      else removeDir(dir);
    })();
    return cleaning;
  };
  const onSignal = () => {
    process.stderr.write('bench: interrupted; cleaning up\n');
    cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const rows = [];
  const extra = {};
  const started = Date.now();
  ctx.repo = await serveRepo(dir);
  try {
    const suites = {
      session: sessionSuite,
      client: clientSuite,
      throughput: throughputSuite,
      output: outputSuite,
      footprint: footprintSuite,
      scale: scaleSuite,
      reconcile: reconcileSuite,
    };
    for (const name of Object.keys(suites)) {
      if (!only.includes(name)) continue;
      if (!ctx.daemon4 && ['session', 'client', 'throughput', 'output'].includes(name))
        ctx.daemon4 = await daemon('d4', 4);
      if (!ctx.daemon20 && name === 'throughput') ctx.daemon20 = await daemon('d20', 20);
      process.stderr.write(`bench: ${name}\n`);
      const result = await suites[name](ctx);
      rows.push(...result.rows.map(judge));
      if (result.calls) extra.podmanCalls = result.calls;
      if (result.nodeStart) extra.sessionNodeStart = result.nodeStart;
      if (result.nodeBareStart) extra.sessionNodeBareStart = result.nodeBareStart;
      if (result.growth) extra.reconcileGrowth = result.growth;
      if (result.scale) extra.scale = result.scale;
      if (result.daemonCpuMsPerMb) extra.daemonCpuMsPerMb = result.daemonCpuMsPerMb;
    }
  } finally {
    await cleanup();
  }

  const meta = {
    date: new Date().toISOString(),
    host: hostname(),
    cpus: cpus().length,
    load: loadavg()
      .map((l) => l.toFixed(1))
      .join(' '),
    loadStart,
    quick,
    outputMb: ctx.outputMb,
    node: process.versions.node,
    podman: (await podman(['version', '--format', '{{.Client.Version}}'])).trim(),
    commit: (
      await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, allowFail: true })
    ).stdout.trim(),
    runs,
    heavyRuns,
    warmup,
    seconds: Math.round((Date.now() - started) / 1000),
  };
  const out = join(ROOT, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'latest.json'), `${JSON.stringify({ meta, rows, ...extra }, null, 2)}\n`);
  const md = writeReports({ meta, rows, ...extra }, writeDoc);
  process.stdout.write(`\n${md}\nbench: wrote bench/results/latest.json and bench/results/latest.md\n`);
  if (writeDoc) process.stdout.write('bench: wrote docs/benchmarks.md and docs/benchmarks.svg\n');
  const missed = rows.filter((r) => r.met === false).map((r) => r.id);
  if (missed.length > 0) process.stderr.write(`bench: targets missed: ${missed.join(', ')}\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`bench: ${error.stack ?? error}\n`);
    process.exitCode = 1;
  },
);
