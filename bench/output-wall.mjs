// Where the output-heavy case's wall time goes: `node bench/output-wall.mjs [DIST]`.
// One daemon (DIST, default this checkout's dist/) and the bench's bare script, in turn for
// BENCH_WALL_ROUNDS (default 4) rounds after a warm-up each: four sessions at once, each printing
// BENCH_OUTPUT_MB (default 50) MB. While a round runs, /proc is read every 50 ms and each process's
// utime + stime is added up by kind (the daemon, the podman CLIs, their conmons, the containers' processes,
// the bare scripts' shells and this script, the rest of the machine), with the machine's idle time from
// /proc/stat (a process that lives under 50 ms may be missed). Prints each round and the medians. Cleans up.
import { execFile, spawn } from 'node:child_process';
import { openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  cleanupPodman,
  IMAGE,
  printerCommand,
  ROOT,
  removeDir,
  serveRepo,
  TOKEN,
  TOKEN_ENV,
  triggerOnSocket,
  untilReady,
  workDir,
  writeConfig,
} from './lib/fixture.mjs';

const build = resolve(process.argv[2] ?? join(import.meta.dirname, '..', 'dist'));
const rounds = Number(process.env.BENCH_WALL_ROUNDS ?? 4);
const mb = Number(process.env.BENCH_OUTPUT_MB ?? 50);
const N = 4;
const ticks = 100;

function procs() {
  const out = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(name), { comm, ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / ticks });
    } catch {}
  }
  return out;
}
/** The machine's idle + iowait and steal seconds (all cores). */
function machine() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: (f[3] + f[4]) / ticks, steal: (f[7] ?? 0) / ticks };
}

/**
 * Samples every process until stop(); returns CPU seconds by kind. A process is this case's when it
 * descends from the daemon or from this script (podman CLIs, the bare scripts), or is a conmon of one of
 * this case's containers (named with `names`) or descends from one (the container's processes); every
 * other process of the machine is `rest`.
 */
function sampler(daemonPid, names) {
  const start = procs();
  const seen = new Map(); // pid -> {comm, ppid, first, last, ours}
  const ours = (pid, table) => {
    for (let at = pid, hops = 0; at > 1 && hops < 64; hops++) {
      if (at === daemonPid || at === process.pid) return true;
      const p = table.get(at);
      if (p === undefined) return false;
      if (p.comm === 'conmon') {
        try {
          const argv = readFileSync(`/proc/${at}/cmdline`, 'utf8').split('\0');
          const name = argv[argv.indexOf('-n') + 1] ?? '';
          return names.some((prefix) => name.startsWith(prefix));
        } catch {
          return false;
        }
      }
      at = p.ppid;
    }
    return false;
  };
  const tick = () => {
    const table = procs();
    for (const [pid, p] of table) {
      const s = seen.get(pid);
      if (s) {
        s.last = p.cpu;
        s.comm = p.comm;
        if (!s.ours) s.ours = ours(pid, table);
      } else
        seen.set(pid, {
          comm: p.comm,
          first: start.get(pid)?.cpu ?? 0,
          last: p.cpu,
          ours: ours(pid, table),
        });
    }
  };
  const timer = setInterval(tick, 50);
  const machine0 = machine();
  return () => {
    clearInterval(timer);
    tick();
    const by = { daemon: 0, podman: 0, conmon: 0, container: 0, script: 0, rest: 0 };
    for (const [pid, s] of seen) {
      const d = s.last - s.first;
      if (d <= 0) continue;
      if (pid === daemonPid) by.daemon += d;
      else if (pid === process.pid) by.script += d;
      else if (!s.ours) by.rest += d;
      else if (s.comm === 'podman') by.podman += d;
      else if (s.comm === 'conmon') by.conmon += d;
      else if (s.comm === 'bash') by.script += d;
      else by.container += d;
    }
    const machine1 = machine();
    by.idle = machine1.idle - machine0.idle;
    by.steal = machine1.steal - machine0.steal;
    return by;
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const dir = workDir();
const repo = await serveRepo(dir);
const runId = dir
  .slice(-6)
  .toLowerCase()
  .replace(/[^a-z0-9]/g, 'x');
const { SETUP_SCRIPT } = await import(join(build, 'runner', 'setup-script.js'));
const setupFile = join(dir, 'setup.sh');
writeFileSync(setupFile, SETUP_SCRIPT);
const home = join(dir, 'd');
const config = writeConfig(home, { maxSessions: 4, outputMb: mb });
const log = openSync(join(dir, 'daemon.log'), 'a');
const child = spawn(process.execPath, [join(build, 'cli', 'index.js'), 'start', '--config', config.file], {
  env: { ...process.env, [TOKEN_ENV]: TOKEN },
  stdio: ['ignore', log, log],
});
const { instanceIdOf } = await import(join(build, 'daemon', 'instance-id.js'));
const instanceId = instanceIdOf(config.socket, config.stateDir);
const results = { agentd: [], baseline: [] };
const bare = () =>
  new Promise((res, rej) =>
    execFile(
      'bash',
      [join(ROOT, 'bench', 'baseline-session.sh'), IMAGE, repo.url, setupFile, ...printerCommand(mb)],
      {
        env: { ...process.env, BENCH_TOKEN: TOKEN, BENCH_PREFIX: `bench-${runId}-`, BENCH_LABEL: runId },
        maxBuffer: 1 << 20,
      },
      (e) => (e ? rej(e) : res()),
    ),
  );
const agentd = () => triggerOnSocket(config.socket, { agent: 'printer', repo: repo.url, output: false });
try {
  await untilReady(config.socket, { child });
  await Promise.all(Array.from({ length: N }, agentd));
  await Promise.all(Array.from({ length: N }, bare));
  const cases = [
    ['agentd', agentd],
    ['baseline', bare],
  ];
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of r % 2 ? [...cases].reverse() : cases) {
      const stop = sampler(child.pid, [`agentd-${instanceId.slice(0, 8)}-`, `bench-${runId}-`]);
      const t0 = performance.now();
      await Promise.all(Array.from({ length: N }, fn));
      const wall = (performance.now() - t0) / 1000;
      const by = stop();
      results[name].push({ wall, ...by });
      console.log(
        `${r + 1} ${name.padEnd(8)} wall ${wall.toFixed(2)} s  daemon ${by.daemon.toFixed(2)} podman ${by.podman.toFixed(2)} conmon ${by.conmon.toFixed(2)} container ${by.container.toFixed(2)} scripts ${by.script.toFixed(2)} rest of the machine ${by.rest.toFixed(2)} idle ${by.idle.toFixed(2)} steal ${by.steal.toFixed(2)}  load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`,
      );
    }
  }
  for (const name of ['agentd', 'baseline']) {
    const rs = results[name];
    const m = (k) => median(rs.map((x) => x[k])).toFixed(2);
    console.log(
      `${name} median: wall ${m('wall')} daemon ${m('daemon')} podman ${m('podman')} conmon ${m('conmon')} container ${m('container')} scripts ${m('script')} rest ${m('rest')} idle ${m('idle')} steal ${m('steal')}`,
    );
  }
  const ratios = results.agentd.map((a, i) => a.wall / results.baseline[i].wall);
  console.log(
    `paired ratios ${ratios.map((x) => x.toFixed(2)).join(' ')} median ${median(ratios).toFixed(2)}`,
  );
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r()));
  await cleanupPodman({
    instanceIds: [instanceId],
    baselineLabel: runId,
    secretPrefixes: [`bench-${runId}-`, `agentd-${instanceId.slice(0, 8)}-`],
  });
  repo.stop();
  removeDir(dir);
}
