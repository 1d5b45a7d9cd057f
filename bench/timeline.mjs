// Where one session's wall time goes: `npm run build && node bench/timeline.mjs`. Starts a daemon whose
// `podman` is a wrapper that notes when each call starts and ends (the wrapper's own bash start, about
// 5 ms a call, is in the figures), triggers BENCH_TIMELINE_RUNS (default 8) sessions on the socket one
// after the other and prints, per session, each call as `call@start+duration` in ms from the trigger,
// and the gap from the last call's end to the outcome. Cleans up what it made.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cleanupPodman,
  dist,
  removeDir,
  serveRepo,
  startDaemon,
  triggerOnSocket,
  workDir,
  writeConfig,
} from './lib/fixture.mjs';
import { run } from './lib/proc.mjs';

const dir = workDir();
const repo = await serveRepo(dir);
const real = (await run('sh', ['-c', 'command -v podman'])).stdout.trim();
const bin = join(dir, 'tbin');
mkdirSync(bin, { recursive: true });
const log = join(dir, 'calls.log');
writeFileSync(
  join(bin, 'podman'),
  `#!/bin/bash\ns=$(date +%s%3N)\n'${real}' "$@"\nrc=$?\nprintf '%s %s %s %s\\n' "$s" "$(date +%s%3N)" "$1" "$2" >> '${log}'\nexit $rc\n`,
);
chmodSync(join(bin, 'podman'), 0o755);
const config = writeConfig(join(dir, 'd'), { maxSessions: 4 });
const { instanceIdOf } = await dist('daemon/instance-id.js');
const instanceId = instanceIdOf(config.socket, config.stateDir);
const daemon = await startDaemon(join(dir, 'd'), config, { pathPrefix: bin });
try {
  for (let i = 0; i < Number(process.env.BENCH_TIMELINE_RUNS ?? 8); i++) {
    writeFileSync(log, '');
    const t0 = Date.now();
    const r = await triggerOnSocket(config.socket, { agent: 'demo', repo: repo.url });
    const t1 = Date.now();
    const calls = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '));
    const parts = calls.map(([s, e, a, b]) => `${a}${a === 'secret' ? ` ${b}` : ''}@${s - t0}+${e - s}`);
    console.log(
      `total ${t1 - t0} (${Math.round(r.ms)}): ${parts.join('  ')}  end-gap ${t1 - Math.max(...calls.map((c) => Number(c[1])))}`,
    );
  }
} finally {
  await daemon.stop();
  await cleanupPodman({ instanceIds: [instanceId], secretPrefixes: [`agentd-${instanceId.slice(0, 8)}-`] });
  repo.stop();
  removeDir(dir);
}
