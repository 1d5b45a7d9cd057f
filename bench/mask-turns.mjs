// How long a session with long credentials holds the daemon's event loop at once:
// `npm run build && node bench/mask-turns.mjs [DIST] [KIND]`. Ten values of 128 KB of one kind (random
// bytes, base64, a PEM key, a JSON service account file; all four without KIND) go through the
// session's masker (its forms made in steps, then the masker) and its output archive's search, while a
// chain of setImmediate callbacks samples the turns of the event loop: for each, the longest turn
// (wall time, and the process CPU in it, which a loaded machine's waiting does not inflate), the
// number of turns and the total CPU. BENCH_ROUNDS (default 3) runs of each kind.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { kinds } from './lib/long-values.mjs';

const dist = pathToFileURL(resolve(process.argv[2] ?? 'dist')).href;
const only = process.argv[3];
const mask = await import(`${dist}/runner/mask.js`);
const actors = await import(`${dist}/runner/actors.js`);
const { SecretValue } = await import(`${dist}/secret-value.js`);

const cpuMs = (used) => (used.user + used.system) / 1000;

/** Runs work with a setImmediate chain beside it: its longest turn (wall, CPU), turns, total CPU. */
async function sampled(work) {
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  let longest = 0;
  let longestCpu = 0;
  let turns = 0;
  let done = false;
  const turn = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    longestCpu = Math.max(longestCpu, cpuMs(process.cpuUsage(lastCpu)));
    last = now;
    lastCpu = process.cpuUsage();
  };
  const tick = () => {
    turn();
    turns++;
    if (!done) setImmediate(tick);
  };
  setImmediate(tick);
  const cpu = process.cpuUsage();
  await work();
  turn();
  done = true;
  return { longest, longestCpu, turns, cpu: cpuMs(process.cpuUsage(cpu)) };
}

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const ms = (x) => `${Math.round(x)} ms`;
console.log(dist);
for (const [kind, make] of Object.entries(kinds)) {
  if (only && kind !== only) continue;
  for (let round = 0; round < rounds; round++) {
    const values = Array.from({ length: 10 }, () => new SecretValue(make()));
    const masker = await sampled(async () => mask.maskerOf(await actors.formsOfSession(values)));
    const search = await sampled(() => actors.outputSearch(values));
    console.log(
      `${kind}: masker: longest turn ${ms(masker.longest)} (CPU ${ms(masker.longestCpu)}), ${masker.turns} turns, CPU ${ms(masker.cpu)}; archive search: longest turn ${ms(search.longest)} (CPU ${ms(search.longestCpu)}), ${search.turns} turns, CPU ${ms(search.cpu)}`,
    );
  }
}
