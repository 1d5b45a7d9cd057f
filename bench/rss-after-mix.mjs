// The daemon's RSS after a soak-like mix of sessions, for settings side by side:
// `npm run build && node bench/rss-after-mix.mjs VARIANT...` (default `base arena2`). Each run starts one
// daemon per variant at once, drives the same mix on each at the same time (RSS_MIX_ROUNDS, default 4,
// rounds of: 3 MB of lines, 2 MB binary, 2 MB without a newline, a printer, true, exit 1, command not
// found; two sessions at a time), waits RSS_SETTLE_S (default 5) seconds, and reads its RSS split from
// /proc/PID/smaps: the brk heap (glibc's main arena), anonymous mappings (V8's heap spaces, glibc's
// other arenas: 64 MiB reservations, counted apart), file-backed pages. RSS_RUNS (default 2) runs, the
// order of the variants reversed each run. Numbers of one machine: compare variants within a run.
// Variants: base (unchanged), arena2 (MALLOC_ARENA_MAX=2), arena1, trim (MALLOC_TRIM_THRESHOLD_=131072
// and MALLOC_MMAP_THRESHOLD_=131072), semi1 (--max-semi-space-size=1), semi2, semi4, arena2semi1.
// RSS_NODE_ARGS (space-separated) go to node before every variant's own (`--trace-gc`: the last
// collection's line of each daemon's log is printed with its figures).
// Makes Podman objects only of its daemons and removes them; its temp dir is removed.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLI,
  cleanupPodman,
  IMAGE,
  instanceOf,
  removeDir,
  serveRepo,
  TOKEN,
  TOKEN_ENV,
  triggerOnSocket,
  untilReady,
  workDir,
} from './lib/fixture.mjs';

const VARIANTS = {
  base: {},
  arena2: { env: { MALLOC_ARENA_MAX: '2' } },
  arena1: { env: { MALLOC_ARENA_MAX: '1' } },
  trim: { env: { MALLOC_TRIM_THRESHOLD_: '131072', MALLOC_MMAP_THRESHOLD_: '131072' } },
  semi1: { nodeArgs: ['--max-semi-space-size=1'] },
  semi2: { nodeArgs: ['--max-semi-space-size=2'] },
  semi4: { nodeArgs: ['--max-semi-space-size=4'] },
  trimarena2: {
    env: { MALLOC_ARENA_MAX: '2', MALLOC_TRIM_THRESHOLD_: '131072', MALLOC_MMAP_THRESHOLD_: '131072' },
  },
  arena2semi1: { env: { MALLOC_ARENA_MAX: '2' }, nodeArgs: ['--max-semi-space-size=1'] },
};
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['base', 'arena2'];
for (const n of names) if (!(n in VARIANTS)) throw new Error(`unknown variant ${n}`);
const rounds = Number(process.env.RSS_MIX_ROUNDS ?? 4);
const runs = Number(process.env.RSS_RUNS ?? 2);
const settleS = Number(process.env.RSS_SETTLE_S ?? 5);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const extraArgs = (process.env.RSS_NODE_ARGS ?? '').split(' ').filter(Boolean);
const MIX = ['flood', 'binary', 'oneline', 'printer', 'ok', 'fail', 'missing'];

function config(dir) {
  mkdirSync(dir, { recursive: true });
  const sh = (s) => ['sh', '-c', s];
  const agent = (name, command) => ({
    name,
    image: IMAGE,
    command,
    network: 'host',
    credentials: [{ name: 'BENCH_TOKEN', source: `env:${TOKEN_ENV}` }],
  });
  const c = {
    daemon: {
      socket: join(dir, 'run', 'agentd.sock'),
      state_dir: join(dir, 'state'),
      max_sessions: 3,
      stop_grace: '2s',
    },
    agents: [
      agent('flood', sh('yes "a line of output that floods the session log" | head -c 3000000')),
      agent('binary', sh('head -c 2000000 /dev/urandom')),
      agent('oneline', sh('head -c 2000000 /dev/zero | tr "\\0" x')),
      agent('printer', sh('for i in $(seq 1 30); do echo "line $i"; sleep 0.05; done')),
      agent('ok', ['true']),
      agent('fail', sh('echo failing; exit 1')),
      agent('missing', ['no-such-command-in-the-image']),
    ],
  };
  const file = join(dir, 'agentd.yaml');
  writeFileSync(file, `${JSON.stringify(c, null, 2)}\n`);
  return { file, socket: c.daemon.socket, stateDir: c.daemon.state_dir };
}

/** RSS split of pid from smaps, in kB. */
function split(pid) {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const out = { rss: 0, brk: 0, anon: 0, arenas: 0, file: 0, arenaCount: 0 };
  const blocks = text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  const maps = blocks.map((b) => {
    const head = b.split('\n')[0].trim().split(/\s+/);
    const [lo, hi] = head[0].split('-').map((x) => BigInt(`0x${x}`));
    return { lo, hi, perms: head[1], path: head[5] ?? '', rss: Number(/\nRss:\s+(\d+)/.exec(b)?.[1] ?? 0) };
  });
  const ARENA = 64n * 1024n * 1024n;
  for (const [i, m] of maps.entries()) {
    out.rss += m.rss;
    if (m.path === '[heap]') out.brk += m.rss;
    else if (m.path === '' || m.path.startsWith('[anon')) {
      // A glibc arena: a 64 MiB-aligned rw mapping followed by its ---p rest, 64 MiB in all.
      const next = maps[i + 1];
      const isArena =
        m.lo % ARENA === 0n &&
        m.perms.startsWith('rw') &&
        next &&
        next.lo === m.hi &&
        next.perms === '---p' &&
        next.hi - m.lo === ARENA;
      if (isArena) {
        out.arenas += m.rss;
        out.arenaCount++;
      } else out.anon += m.rss;
    } else if (!m.path.startsWith('[')) out.file += m.rss;
  }
  return out;
}

const mb = (kb) => (kb / 1024).toFixed(0);
const results = Object.fromEntries(names.map((n) => [n, []]));
const dir = workDir();
const repo = await serveRepo(dir);
const instanceIds = [];
try {
  for (let run = 0; run < runs; run++) {
    const order = run % 2 === 0 ? names : [...names].reverse();
    const daemons = [];
    for (const name of order) {
      const home = join(dir, `r${run}-${name}`);
      const cfg = config(home);
      const v = VARIANTS[name];
      const child = spawn(
        process.execPath,
        [...extraArgs, ...(v.nodeArgs ?? []), CLI, 'start', '--config', cfg.file],
        {
          env: { ...process.env, [TOKEN_ENV]: TOKEN, ...(v.env ?? {}) },
          stdio: ['ignore', openSync(join(home, 'daemon.log'), 'a'), openSync(join(home, 'daemon.log'), 'a')],
        },
      );
      daemons.push({ name, child, cfg, log: join(home, 'daemon.log') });
      instanceIds.push(await instanceOf(cfg));
    }
    for (const d of daemons) await untilReady(d.cfg.socket, { child: d.child });
    // Warm-up: one of each, then the baseline.
    await Promise.all(daemons.map((d) => triggerOnSocket(d.cfg.socket, { agent: 'ok', repo: repo.url })));
    await sleep(settleS * 1000);
    for (const d of daemons) d.before = split(d.child.pid);
    const started = performance.now();
    await Promise.all(
      daemons.map(async (d) => {
        const queue = [];
        for (let r = 0; r < rounds; r++) queue.push(...MIX);
        const worker = async () => {
          while (queue.length > 0) {
            const agent = queue.shift();
            await triggerOnSocket(d.cfg.socket, { agent, repo: repo.url, output: true });
          }
        };
        await Promise.all([worker(), worker()]);
      }),
    );
    await sleep(settleS * 1000);
    for (const d of daemons) {
      const after = split(d.child.pid);
      results[d.name].push({ before: d.before, after });
      console.log(
        `run ${run + 1} ${d.name.padEnd(12)} baseline ${mb(d.before.rss)} MB -> ${mb(after.rss)} MB` +
          ` (brk ${mb(d.before.brk)}->${mb(after.brk)}, arenas ${after.arenaCount}: ${mb(d.before.arenas)}->${mb(after.arenas)},` +
          ` other anon ${mb(d.before.anon)}->${mb(after.anon)}, file ${mb(d.before.file)}->${mb(after.file)})`,
      );
      const gcLine = readFileSync(d.log, 'utf8')
        .split('\n')
        .filter((l) => /ms: (Scavenge|Mark-Compact|Mark-sweep|Mark-Compact \(reduce\))/.test(l))
        .at(-1);
      if (gcLine) console.log(`  last gc: ${gcLine.trim()}`);
    }
    console.log(
      `  mix of ${rounds * MIX.length} sessions a daemon in ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
    for (const d of daemons) {
      d.child.kill('SIGTERM');
      await new Promise((r) => (d.child.exitCode === null ? d.child.once('exit', r) : r()));
    }
  }
  for (const n of names) {
    const ends = results[n].map((r) => mb(r.after.rss));
    console.log(`${n.padEnd(12)} end RSS ${ends.join(', ')} MB`);
  }
} finally {
  await cleanupPodman({ instanceIds, secretPrefixes: instanceIds.map((id) => `agentd-${id.slice(0, 8)}-`) });
  repo.stop();
  removeDir(dir);
}
