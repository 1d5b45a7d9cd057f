// The daemon's CPU (utime + stime, from /proc) per session, for two builds side by side:
// `node bench/daemon-cpu.mjs DIST_A DIST_B` (each a dist/ directory; B defaults to this checkout's).
// Starts one daemon of each build, then in BENCH_CPU_ROUNDS (default 6) rounds, alternating A and B,
// triggers BENCH_CPU_SESSIONS (default 5) sessions one after the other on its socket and reads the
// daemon's CPU before and after. Prints each round's ms per session and the medians. Cleans up.
// BENCH_CPU_AGENT=printer (default demo) runs the output-heavy agent instead, BENCH_CPU_AT_ONCE (default
// 1) sessions at once each time, BENCH_OUTPUT_MB (default 50) MB each: then the figure is ms per MB of
// output (`BENCH_CPU_AGENT=printer BENCH_CPU_AT_ONCE=4 BENCH_CPU_SESSIONS=1`: the bench's output case).
// BENCH_CPU_NODE_ARGS_A / _B (space-separated) go to node before B's or A's CLI: one build with two
// settings of node (`BENCH_CPU_NODE_ARGS_B=--max-semi-space-size=1 node bench/daemon-cpu.mjs dist dist`);
// BENCH_CPU_ENV_A / _B (space-separated NAME=VALUE) are added to that daemon's environment
// (`BENCH_CPU_ENV_B=MALLOC_ARENA_MAX=2`).
import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  cleanupPodman,
  removeDir,
  serveRepo,
  TOKEN,
  TOKEN_ENV,
  triggerOnSocket,
  untilReady,
  workDir,
  writeConfig,
} from './lib/fixture.mjs';

const builds = [process.argv[2], process.argv[3] ?? join(import.meta.dirname, '..', 'dist')].map((d) =>
  resolve(d),
);
if (process.argv[2] === undefined) {
  console.error('usage: node bench/daemon-cpu.mjs DIST_A [DIST_B]');
  process.exit(2);
}
const nodeArgs = ['A', 'B'].map((x) =>
  (process.env[`BENCH_CPU_NODE_ARGS_${x}`] ?? '').split(' ').filter(Boolean),
);
const envs = ['A', 'B'].map((x) =>
  Object.fromEntries(
    (process.env[`BENCH_CPU_ENV_${x}`] ?? '')
      .split(' ')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  ),
);
const rounds = Number(process.env.BENCH_CPU_ROUNDS ?? 6);
const perRound = Number(process.env.BENCH_CPU_SESSIONS ?? 5);
const agent = process.env.BENCH_CPU_AGENT ?? 'demo';
const atOnce = Number(process.env.BENCH_CPU_AT_ONCE ?? 1);
const outputMb = Number(process.env.BENCH_OUTPUT_MB ?? 50);
/** What a round's CPU is divided by: sessions, or MB of output for the printer. */
const units = agent === 'printer' ? perRound * atOnce * outputMb : perRound * atOnce;
const unit = agent === 'printer' ? 'MB' : 'session';
// As `agentd trigger --quiet` asks (the bench's output case): no output sent to the follower.
const fields = (url) => ({
  agent,
  repo: url,
  ...(agent === 'printer' ? { output: false, heartbeat: true } : {}),
});
const ticks = 100; // USER_HZ on Linux
const cpuMs = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticks;
};
const sysMs = (pid) =>
  (Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[12]) * 1000) / ticks;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dir = workDir();
const repo = await serveRepo(dir);
const daemons = [];
try {
  for (const [i, build] of builds.entries()) {
    const home = join(dir, `d${i}`);
    const config = writeConfig(home, { maxSessions: 4, outputMb });
    const log = openSync(join(home, 'daemon.log'), 'a');
    const child = spawn(
      process.execPath,
      [...nodeArgs[i], join(build, 'cli', 'index.js'), 'start', '--config', config.file],
      {
        env: { ...process.env, [TOKEN_ENV]: TOKEN, ...envs[i] },
        stdio: ['ignore', log, log],
      },
    );
    await untilReady(config.socket, { child });
    const { instanceIdOf } = await import(join(build, 'daemon', 'instance-id.js'));
    daemons.push({
      index: i,
      build,
      child,
      config,
      instanceId: instanceIdOf(config.socket, config.stateDir),
      per: [],
      sys: [],
    });
  }
  // A warm-up session each: the first one loads modules the others do not.
  for (const d of daemons) await triggerOnSocket(d.config.socket, fields(repo.url));
  for (let r = 0; r < rounds; r++) {
    for (const d of daemons) {
      const before = cpuMs(d.child.pid);
      const sysBefore = sysMs(d.child.pid);
      for (let s = 0; s < perRound; s++)
        await Promise.all(
          Array.from({ length: atOnce }, () => triggerOnSocket(d.config.socket, fields(repo.url))),
        );
      d.per.push((cpuMs(d.child.pid) - before) / units);
      d.sys.push((sysMs(d.child.pid) - sysBefore) / units);
    }
    // Which build goes first alternates from round to round.
    daemons.reverse();
    console.log(
      `round ${r + 1}: ${builds
        .map((_, i) =>
          daemons
            .find((d) => d.index === i)
            .per.at(-1)
            .toFixed(2),
        )
        .join(' vs ')} ms a ${unit}`,
    );
  }
  for (const d of builds.map((_, i) => daemons.find((x) => x.index === i)))
    console.log(
      `${d.build}${nodeArgs[d.index].length > 0 ? ` (node ${nodeArgs[d.index].join(' ')})` : ''}${process.env[`BENCH_CPU_ENV_${'AB'[d.index]}`] ? ` (${process.env[`BENCH_CPU_ENV_${'AB'[d.index]}`]})` : ''}: median ${median(d.per).toFixed(2)} (${Math.min(...d.per).toFixed(2)}-${Math.max(...d.per).toFixed(2)}) ms of daemon CPU a ${unit}, of it system time ${median(d.sys).toFixed(2)}`,
    );
} finally {
  for (const d of daemons) {
    d.child.kill('SIGTERM');
    await new Promise((r) => (d.child.exitCode === null ? d.child.once('exit', r) : r()));
  }
  await cleanupPodman({
    instanceIds: daemons.map((d) => d.instanceId),
    secretPrefixes: daemons.map((d) => `agentd-${d.instanceId.slice(0, 8)}-`),
  });
  repo.stop();
  removeDir(dir);
}
