import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGE, instanceOf, spawnDaemon, untilReady } from '../lib/fixture.mjs';
import { podman, run } from '../lib/proc.mjs';
import { interleave, summarize } from '../lib/stats.mjs';

const CONTAINERS = 50;
/** Parallel shell loops used to plant objects (planting is never timed). */
const PLANTERS = 4;

/** Runs `podman ...` once per line of args, in PLANTERS parallel shell loops. */
async function plantAll(dir, lines) {
  const slices = Array.from({ length: PLANTERS }, () => []);
  lines.forEach((line, i) => {
    slices[i % PLANTERS].push(line);
  });
  await Promise.all(
    slices
      .filter((s) => s.length > 0)
      .map((slice, i) => {
        const file = join(dir, `plant-${i}.sh`);
        writeFileSync(file, `set -e\n${slice.map((l) => `podman ${l} >/dev/null`).join('\n')}\n`);
        return run('sh', [file], { timeoutMs: 600_000 });
      }),
  );
}

/** Plants `secrets` orphan secrets and CONTAINERS dead containers of the instance; returns their names. */
async function plant(ctx, instanceId, secrets) {
  const id8 = instanceId.slice(0, 8);
  const session = () => randomBytes(8).toString('hex');
  const secretNames = Array.from({ length: secrets }, () => `agentd-${id8}-${session()}-0`);
  const containers = Array.from({ length: CONTAINERS }, () => {
    const s = session();
    return { name: `agentd-${id8}-demo-${s}`, session: s };
  });
  const label = `--label io.agentd.instance=${instanceId}`;
  await plantAll(ctx.dir, [
    ...secretNames.map((n) => `secret create ${label} ${n} ${ctx.secretValueFile}`),
    ...containers.map(
      (c) =>
        `create --name ${c.name} ${label} --label io.agentd.session=${c.session} --pull never ${IMAGE} true`,
    ),
  ]);
  return { secretNames, containerNames: containers.map((c) => c.name) };
}

async function leftovers(instanceId) {
  const prefix = `agentd-${instanceId.slice(0, 8)}-`;
  const secrets = (await podman(['secret', 'ls', '--format', '{{.Name}}'])).split('\n');
  const containers = (await podman(['ps', '-a', '-q', '--filter', `label=io.agentd.instance=${instanceId}`]))
    .split('\n')
    .filter(Boolean);
  return secrets.filter((n) => n.startsWith(prefix)).length + containers.length;
}

/** Spawn `agentd start` → connect + hello answered; then stop it (not timed). */
async function timedStart(dir, config) {
  const daemon = spawnDaemon(dir, config);
  try {
    await untilReady(config.socket, { child: daemon.child, everyMs: 5 });
    return performance.now() - daemon.spawnedAt;
  } finally {
    await daemon.stop();
  }
}

/** Startup reconciliation with orphans planted vs batched removal + an empty start. */
export async function reconcileSuite(ctx) {
  const dir = join(ctx.dir, 'reconcile');
  const config = ctx.makeConfig(dir, { maxSessions: 4 });
  const instanceId = await instanceOf(config);
  writeFileSync(ctx.secretValueFile, 'orphan-secret-value');
  const sizes = ctx.reconcileSizes;
  const rows = [];
  const growth = [];
  // Warm-up: one start with nothing to reconcile (planting is too slow to repeat for a warm-up round).
  if (ctx.warmup > 0) await timedStart(dir, config);
  for (const secrets of sizes) {
    const runs = ctx.reconcileRuns;
    const results = await interleave(
      {
        agentd: async () => {
          await plant(ctx, instanceId, secrets);
          const ms = await timedStart(dir, config);
          const left = await leftovers(instanceId);
          if (left !== 0) throw new Error(`reconciliation left ${left} objects`);
          return ms;
        },
        removal: async () => {
          const { secretNames, containerNames } = await plant(ctx, instanceId, secrets);
          const started = performance.now();
          await podman(['secret', 'rm', ...secretNames]);
          await podman(['rm', '-f', '--time', '0', ...containerNames]);
          return performance.now() - started;
        },
        empty: () => timedStart(dir, config),
      },
      { runs, warmup: 0, label: `reconcile ${secrets} secrets` },
    );
    // The floor of one round: its batched removal plus its empty start.
    const floor = results.removal.samples.map((ms, i) => ms + results.empty.samples[i]);
    const primary = secrets === 200;
    rows.push({
      id: `reconcile-${secrets}`,
      name: `Start with ${secrets} orphan secrets + ${CONTAINERS} dead containers → socket answers`,
      a: { label: 'agentd start', ...results.agentd },
      b: { label: 'floor: batched rm + empty start', ...summarize(floor) },
      ...(primary ? { target: { text: 'ratio ≤ 1.2', max: 1.2 } } : {}),
      detail: {
        removal: results.removal,
        emptyStart: results.empty,
        reconcileOverMs: results.agentd.median - results.empty.median,
      },
    });
    growth.push({
      secrets,
      agentdMs: results.agentd.median,
      removalMs: results.removal.median,
      emptyStartMs: results.empty.median,
    });
  }
  return { rows, growth };
}
