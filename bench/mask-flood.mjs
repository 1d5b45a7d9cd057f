// What hostile output costs the masker of a session with a PEM key, a JSON service account file and
// a token: `npm run build && node bench/mask-flood.mjs [DIST] [KIND...]`. 60 KB lines of each KIND
// (default: all) go through the masker (as SessionOutput masks a whole line), BENCH_FLOOD_MB (default 8)
// MB each; prints CPU ms per MB. `random` is random printable ASCII; the others are worst cases built
// from the credentials' forms (see lib/mask-flood-lines.mjs). DIST (default ./dist) lets two builds be
// compared.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { credentials, floodLines } from './lib/mask-flood-lines.mjs';

const dist = pathToFileURL(resolve(process.argv[2] ?? 'dist')).href;
const only = process.argv.slice(3);
const { createMasker } = await import(`${dist}/runner/mask.js`);
const values = credentials();
const masker = createMasker(values);
const mb = Number(process.env.BENCH_FLOOD_MB ?? 8);
console.log(`${masker.forms.length} forms`);
for (const [kind, line] of Object.entries(floodLines(values, masker.forms))) {
  if (only.length > 0 && !only.includes(kind)) continue;
  const lines = Math.ceil((mb * 1024 * 1024) / line.length);
  masker(line);
  const cpu = process.cpuUsage();
  let masked = 0;
  for (let i = 0; i < lines; i++) if (masker(line) !== line) masked++;
  const used = process.cpuUsage(cpu);
  const ms = (used.user + used.system) / 1000;
  console.log(
    `${kind.padEnd(12)} ${(ms / ((lines * line.length) / 1024 / 1024)).toFixed(1).padStart(7)} ms CPU/MB (${masked ? 'masked' : 'nothing masked'})`,
  );
}
