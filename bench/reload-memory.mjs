// The daemon's memory through a reload of a configuration near its 4 MiB bound: `npm run build && node
// bench/reload-memory.mjs`. For each shape of file (RELOAD_MEM_SHAPES, comma list of `one` (one-line agents)
// and `long` (agents of 15 lines); default both), as many agents as fit in 4 MiB and MAX_AGENTS (10,000)
// allows, each agent padded so that the file is near 4 MiB, it starts a real daemon on it, reads its RSS
// once up (the baseline), then rewrites the file so that every agent changed and reloads (`changed`), then
// reloads it as it is (`unchanged`), the peak of each (VmHWM, reset through /proc/PID/clear_refs before
// it) as a ratio of the baseline, with the size of the reply. Numbers of one run on one machine: compare
// them with a run of another tree on the same machine, not with a bound.
// Before MAX_AGENTS the files held some 52,000 one-line agents and 12,000 of 15 lines. Measured then on 2
// cores at load 12 to 17, at f58dccb: `one` 135 MB idle, changed 638 MB (4.72x),
// unchanged 673 MB (4.98x), replies of 722 and 528 bytes; `long` 103 MB, 455 MB (4.41x), 473 MB (4.58x);
// and at 46fc9a6, before 53ca082 (the reload's thread collects its heap once the tokens are garbage) and
// f58dccb (the reply's lists cut to 20 names): `one` 841 MB (6.21x), 780 MB (5.76x), replies of 921,436 and
// 460,857 bytes; `long` 528 MB (5.14x), 507 MB (4.94x). The reload's thread makes most of the
// peak (the YAML library's tokens of the file, then the document, see LoadOptions.collect); it ends with
// the reload and its memory is given back. Makes no Podman object; its temp dir is removed.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dist, memoryOf, removeDir, request, spawnDaemon, untilReady, workDir } from './lib/fixture.mjs';

const { MAX_AGENTS } = await dist('config/load.js');

const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
const IMAGE = process.env.BENCH_IMAGE ?? 'localhost/agentd-base:bookworm';
const SHAPES = (process.env.RELOAD_MEM_SHAPES ?? 'one,long').split(',').map((s) => s.trim());

/**
 * The file's text: as many agents as fit in 4 MiB less 64 KiB, at most MAX_AGENTS, each with a note as
 * long as fills the file; `variant` changes every agent's command.
 */
function configText(dir, shape, variant) {
  const head = `daemon:\n  socket: ${join(dir, 'agentd.sock')}\n  state_dir: ${join(dir, 'state')}\n  stop_grace: 2s\nagents:\n`;
  const entry = (n, note) =>
    shape === 'one'
      ? `  - {name: a${n}, image: ${IMAGE}, command: [echo, v${variant}], env: {NOTE: "${note}"}}\n`
      : `  - name: agent-${n}\n    image: ${IMAGE}\n    network: none\n    command: [sh, -c, 'echo hello from agent ${n} v${variant}; exit 0']\n    timeout: 10m\n    env:\n      LOG_LEVEL: debug\n      WHO: agent-${n}\n      MODE: review\n      NOTE: "${note}"\n    resources:\n      memory: 512m\n      cpus: 1\n      pids: 256\n    exit_codes:\n      3: nothing_ready\n`;
  const room = Math.floor((MAX_CONFIG_BYTES - 65_536 - head.length) / MAX_AGENTS);
  const note = 'n'.repeat(Math.max(0, room - entry(MAX_AGENTS, '').length));
  let text = head;
  for (let n = 0; n < MAX_AGENTS; n++) {
    const next = entry(n, note);
    if (text.length + next.length > MAX_CONFIG_BYTES - 65_536) return { text, agents: n };
    text += next;
  }
  return { text, agents: MAX_AGENTS };
}

/**
 * The RSS once it no longer falls: the start's garbage is collected once the daemon is up, and its pages
 * given back over some seconds (390 MB at the first hello for the `long` file, 103 MB after).
 */
async function settled(pid) {
  let last = memoryOf(pid).rss;
  for (let i = 0; i < 60; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = memoryOf(pid).rss;
    if (now > last * 0.98) return now;
    last = now;
  }
  return last;
}

const mb = (bytes) => `${Math.round(bytes / 1048576)} MB`;

async function measure(shape) {
  const dir = workDir();
  const file = join(dir, 'agentd.yaml');
  const first = configText(dir, shape, 0);
  writeFileSync(file, first.text);
  const config = { file, socket: join(dir, 'agentd.sock'), stateDir: join(dir, 'state') };
  const daemon = spawnDaemon(dir, config);
  try {
    await untilReady(config.socket, { child: daemon.child, timeoutMs: 600_000, everyMs: 200 });
    const baseline = await settled(daemon.pid);
    const rows = [];
    for (const [name, variant] of [
      ['changed', 1],
      ['unchanged', 1],
    ]) {
      writeFileSync(file, configText(dir, shape, variant).text);
      writeFileSync(`/proc/${daemon.pid}/clear_refs`, '5');
      const started = performance.now();
      const reply = await request(config.socket, { type: 'reload' }, 600_000);
      const seconds = (performance.now() - started) / 1000;
      if (reply.type !== 'reloaded') throw new Error(`reload ${name}: ${reply.message ?? reply.type}`);
      const { hwm, rss } = memoryOf(daemon.pid);
      rows.push({ name, hwm, rss, seconds, bytes: JSON.stringify(reply).length, counts: reply.counts });
    }
    console.log(
      `${shape}: ${first.agents} agents, ${first.text.length} bytes; baseline (idle RSS) ${mb(baseline)}`,
    );
    for (const row of rows) {
      console.log(
        `  reload ${row.name.padEnd(9)} peak ${mb(row.hwm).padStart(7)} = ${(row.hwm / baseline).toFixed(2)} x baseline, RSS after ${mb(row.rss)}, ${row.counts?.changed} agents changed, reply ${row.bytes} bytes, ${row.seconds.toFixed(1)} s`,
      );
    }
  } finally {
    await daemon.stop();
    removeDir(dir);
  }
}

for (const shape of SHAPES) await measure(shape);
