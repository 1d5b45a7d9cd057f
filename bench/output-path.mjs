// The daemon's output path without Podman: `npm run build && node bench/output-path.mjs [DIST]`.
// BENCH_OUTPUT_MB (default 50) MB of 100-byte lines go through LineSplitter -> SessionOutput (masking
// one value, the setup marker looked for; whole lines at once where the build can) -> SessionLog (the
// default 1 MiB bound), a chunk a turn as the reader takes them, as fast as the log
// takes them; prints the process's CPU per MB. DIST (default ./dist) lets two builds be compared.
// BENCH_OUTPUT_TEXT=log prints log-like lines instead (below); BENCH_OUTPUT_TEXT=flood:KIND masks a
// PEM key, a JSON service account file and a token instead, in 60 KB lines of KIND (a worst case of
// bench/lib/mask-flood-lines.mjs, or `random`, `base64`).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = pathToFileURL(resolve(process.argv[2] ?? 'dist')).href;
const { LineSplitter } = await import(`${dist}/adapters/output-reader.js`);
const { SessionOutput } = await import(`${dist}/runner/session-output.js`);
const { createMasker } = await import(`${dist}/runner/mask.js`);
const { findCommandEnd } = await import(`${dist}/runner/command-end.js`);

const mb = Number(process.env.BENCH_OUTPUT_MB ?? 50);
const dir = mkdtempSync(join(tmpdir(), 'agentd-output-path-'));
// BENCH_OUTPUT_TEXT=log: log-like lines of varied characters instead of the benchmark's `x`s (what a
// search of the text for the masked forms costs depends on which bytes are common in it).
const flood = process.env.BENCH_OUTPUT_TEXT?.startsWith('flood:')
  ? await import('./lib/mask-flood-lines.mjs')
  : undefined;
const values = flood ? flood.credentials() : ['bench-token-value-1234'];
const masker = createMasker(values);
const chunk = flood
  ? Buffer.from(`${flood.floodLines(values, masker.forms)[process.env.BENCH_OUTPUT_TEXT.slice(6)]}\n`)
  : process.env.BENCH_OUTPUT_TEXT === 'log'
    ? Buffer.from(
        Array.from(
          { length: 560 },
          (_, i) =>
            `2026-12-07T07:${String(i % 60).padStart(2, '0')}:00.${i % 1000}Z INFO request ${i} handled in ${(i * 7) % 300}ms path=/api/v1/items/${i * 31} status=200\n`,
        ).join(''),
      )
    : Buffer.from(`${'x'.repeat(99)}\n`.repeat(655));
const marker = 'AGENTD-0123456789abcdef';
const started = process.cpuUsage();
const wall = performance.now();
try {
  const out = new SessionOutput(
    { logFile: join(dir, 'session.log'), logMaxBytes: 1_048_576, onLine: () => {} },
    masker,
  );
  out.setMarker(marker);
  let drained = () => {};
  out.log.onDrain(() => drained());
  const markerBytes = Buffer.from(marker);
  const { handler } = out.reader(
    (text, end, cont) => {
      if (end) findCommandEnd(marker, text);
      out.write(text, cont);
    },
    // As the attachment does once the command runs (builds without blocks ignore it).
    (bytes, lines, stream) => bytes.indexOf(markerBytes) === -1 && out.writeBlock(bytes, lines, stream),
  );
  const splitter = new LineSplitter(64 * 1024);
  const blocks = typeof splitter.block === 'function' && handler.block !== undefined;
  for (let sent = 0; sent < mb * 1024 * 1024; sent += chunk.length) {
    splitter.feed(chunk);
    for (;;) {
      const block = blocks ? splitter.block() : undefined;
      if (block !== undefined && handler.block(block, splitter.blockLines, 'stdout')) {
        splitter.took(block);
        continue;
      }
      const text = splitter.next();
      if (text === undefined) break;
      handler(text, splitter.end, 'stdout');
    }
    if (out.log.backlogged) await new Promise((resolve) => (drained = resolve));
    // The next chunk in a later turn, as the reader takes them from the pipe.
    else await new Promise((resolve) => setImmediate(resolve));
  }
  await out.close();
  const cpu = process.cpuUsage(started);
  process.stdout.write(
    `${mb} MB: ${((cpu.user + cpu.system) / 1000 / mb).toFixed(2)} ms CPU/MB, wall ${Math.round(performance.now() - wall)} ms\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
