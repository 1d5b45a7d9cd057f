// What a session with long credentials costs the daemon to mask: `npm run build && node bench/mask-build.mjs [DIST] [KIND]`.
// Ten values of 128 KB of one kind (random bytes, base64, a PEM key, a JSON service account file holding
// a PEM key; all four without KIND) go through the session's two uses of their forms: the output masker
// its attachment builds, and the output archive's search at its end (the lines it leaves out, its
// needles). Prints the medians of BENCH_ROUNDS (default 3) runs, the process's CPU and the wall time of
// each. DIST (default ./dist) lets two builds be compared; a build without runner/actors.js's
// formsOfSession (before the forms were shared) builds both from the values, as it did.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { kinds } from './lib/long-values.mjs';

const dist = pathToFileURL(resolve(process.argv[2] ?? 'dist')).href;
const only = process.argv[3];
const mask = await import(`${dist}/runner/mask.js`);
const actors = await import(`${dist}/runner/actors.js`);
const { NeedleSet } = await import(`${dist}/adapters/output-archive.js`);
const { SecretValue } = await import(`${dist}/secret-value.js`);
const shared = typeof actors.formsOfSession === 'function';

// The archive search's own lines left out, as runner/actors.ts's outputSearch has them (older builds).
const PEM_ARMOUR = /^-----(BEGIN|END) [A-Z0-9 ]+-----$/;
const WORD = /[A-Za-z0-9]{4}/;
function exceptOf(raw) {
  const lines = new Set();
  for (const bytes of raw) {
    const text = bytes.toString('utf8');
    const split = text.split(/\r\n|\r|\n/);
    if (split.length < 2) continue;
    let json = false;
    try {
      json = /^\s*[[{]/.test(text) && JSON.parse(text.trim()) !== undefined;
    } catch {}
    for (const line of split) if (json || PEM_ARMOUR.test(line) || !WORD.test(line)) lines.add(line);
  }
  return lines;
}

async function session(values) {
  if (shared) return mask.maskerOf(await actors.formsOfSession(values));
  return mask.createMaskerYielding(values.map((value) => value.bytes()));
}

async function archive(values) {
  if (shared) return actors.outputSearch(values);
  const raw = values.map((value) => value.bytes());
  const masking = await mask.createMaskerYielding(raw, { except: exceptOf(raw) });
  const needles = masking.identifying.map((form) => Buffer.from(form, 'utf8'));
  return new NeedleSet([...needles, ...raw.filter((bytes) => bytes.length >= 4)]);
}

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs) => Math.round([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);
console.log(`${dist}: ${shared ? 'forms made once per session' : 'forms made for each build'}`);
for (const [kind, make] of Object.entries(kinds)) {
  if (only && kind !== only) continue;
  const times = { session: [], archive: [], sessionCpu: [], archiveCpu: [] };
  for (let round = 0; round < rounds; round++) {
    const values = Array.from({ length: 10 }, () => new SecretValue(make()));
    for (const [name, use] of [
      ['session', session],
      ['archive', archive],
    ]) {
      const cpu = process.cpuUsage();
      const wall = performance.now();
      await use(values);
      times[name].push(performance.now() - wall);
      const used = process.cpuUsage(cpu);
      times[`${name}Cpu`].push((used.user + used.system) / 1000);
    }
  }
  const total = (a, b) => times[a].map((x, i) => x + times[b][i]);
  console.log(
    `${kind}: CPU ms: masker ${median(times.sessionCpu)}, archive search ${median(times.archiveCpu)}, both ${median(total('sessionCpu', 'archiveCpu'))}; wall ms: ${median(times.session)}, ${median(times.archive)}, ${median(total('session', 'archive'))}`,
  );
}
