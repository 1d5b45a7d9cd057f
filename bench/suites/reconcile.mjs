import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { IMAGE, instanceOf, spawnDaemon, untilReady } from '../lib/fixture.mjs';
import { startPlanter } from '../lib/planter.mjs';
import { podman } from '../lib/proc.mjs';
import { interleave, summarize } from '../lib/stats.mjs';

/**
 * Bytes of names one `podman` command line of the floor carries: well under Linux's ARG_MAX (2 MiB, which
 * the environment shares), so the floor batches as far as the kernel lets a shell do it.
 */
const ARGV_BUDGET = 1024 * 1024;

/** Splits names into runs whose argv bytes stay within ARGV_BUDGET. */
function argvBatches(names) {
  const batches = [];
  let batch = [];
  let bytes = 0;
  for (const name of names) {
    const size = Buffer.byteLength(name) + 1;
    if (batch.length > 0 && bytes + size > ARGV_BUDGET) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(name);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/**
 * Plants `secrets` orphan secrets and `containers` dead (created, never started) containers of the
 * instance, as an earlier daemon of it would have left them; returns their names. Every object carries
 * the instance's label and the run's bench label, and secret names its prefix: the bench's cleanup finds
 * them all, and nothing else.
 */
async function plant(ctx, planter, instanceId, { secrets, containers }) {
  const id8 = instanceId.slice(0, 8);
  const session = () => randomBytes(8).toString('hex');
  // As agentd labels a session's objects: a container without its agent label, or not named from it and
  // its session, is not one agentd made, and reconciliation leaves it alone.
  const labels = (s) => ({
    'io.agentd.instance': instanceId,
    'io.agentd.session': s,
    'io.agentd.agent': 'demo',
    'io.agentd.bench': ctx.runId,
  });
  const secretList = Array.from({ length: secrets }, () => {
    const s = session();
    return { name: `agentd-${id8}-${s}-0`, labels: labels(s) };
  });
  const containerList = Array.from({ length: containers }, () => {
    const s = session();
    return { name: `agentd-${id8}-demo-${s}`, labels: labels(s), image: IMAGE };
  });
  await planter.containers(containerList);
  await planter.secrets(secretList);
  return { secretNames: secretList.map((s) => s.name), containerNames: containerList.map((c) => c.name) };
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
    await untilReady(config.socket, { child: daemon.child, everyMs: 5, timeoutMs: 30 * 60_000 });
    return performance.now() - daemon.spawnedAt;
  } finally {
    await daemon.stop();
  }
}

/** "2000+500" → 2,000 orphan secrets + 500 dead containers. */
export const sizeName = ({ secrets, containers }) => `${secrets}+${containers}`;

/**
 * Startup reconciliation with orphans planted vs the floor: the batched removal (`podman rm -f` of every
 * container, then `podman secret rm` of every secret, as few command lines as ARG_MAX allows) plus an
 * empty start, in the same round.
 */
export async function reconcileSuite(ctx) {
  const dir = join(ctx.dir, 'reconcile');
  const config = ctx.makeConfig(dir, { maxSessions: 4 });
  const instanceId = await instanceOf(config);
  const rows = [];
  const growth = [];
  const planter = await startPlanter(ctx.dir);
  ctx.stopPlanting = () => planter.stop();
  try {
    // Warm-up: one start with nothing to reconcile (planting is too slow to repeat for a warm-up round).
    if (ctx.warmup > 0) await timedStart(dir, config);
    for (const size of ctx.reconcileSizes) {
      const label = `reconcile ${size.secrets} secrets + ${size.containers} containers`;
      const results = await interleave(
        {
          agentd: async () => {
            await plant(ctx, planter, instanceId, size);
            const ms = await timedStart(dir, config);
            const left = await leftovers(instanceId);
            if (left !== 0) throw new Error(`reconciliation left ${left} objects`);
            return ms;
          },
          removal: async () => {
            const { secretNames, containerNames } = await plant(ctx, planter, instanceId, size);
            const started = performance.now();
            for (const batch of argvBatches(containerNames))
              await podman(['rm', '-f', '--time', '0', ...batch], { timeoutMs: 0 });
            // Never killed (timeoutMs 0): a `podman secret` command killed mid-write can corrupt the store.
            for (const batch of argvBatches(secretNames))
              await podman(['secret', 'rm', ...batch], { timeoutMs: 0 });
            return performance.now() - started;
          },
          empty: () => timedStart(dir, config),
        },
        { runs: ctx.reconcileRuns, warmup: 0, label },
      );
      // The floor of one round: its batched removal plus its empty start.
      const floor = results.removal.samples.map((ms, i) => ms + results.empty.samples[i]);
      rows.push({
        id: `reconcile-${sizeName(size)}`,
        name: `Start with ${size.secrets} orphan secrets + ${size.containers} dead containers → socket answers`,
        a: { label: 'agentd start', ...results.agentd },
        b: { label: 'floor: batched rm + empty start', ...summarize(floor) },
        target: { text: 'ratio ≤ 1.2', max: 1.2 },
        detail: {
          removal: results.removal,
          emptyStart: results.empty,
          reconcileOverMs: results.agentd.median - results.empty.median,
        },
      });
      growth.push({
        ...size,
        agentdMs: results.agentd.median,
        removalMs: results.removal.median,
        emptyStartMs: results.empty.median,
      });
    }
  } finally {
    await planter.stop();
    ctx.stopPlanting = undefined;
  }
  return { rows, growth };
}
