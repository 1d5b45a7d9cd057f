import { BIN, CLI } from '../lib/fixture.mjs';
import { run } from '../lib/proc.mjs';
import { interleave } from '../lib/stats.mjs';

/**
 * Client latency: whole processes, spawn to exit, against `node -e 0`; `agentd` as installed (bin/agentd,
 * which runs socket clients without NODE_EXTRA_CA_CERTS).
 */
export async function clientSuite(ctx) {
  const { socket } = ctx.daemon4.config;
  const node = process.execPath;
  const results = await interleave(
    {
      status: async () => {
        const r = await run(BIN, ['status', '--socket', socket]);
        if (!r.stdout.startsWith('agentd ')) throw new Error(`unexpected status output: ${r.stdout}`);
        return r.ms;
      },
      version: async () => (await run(BIN, ['--version'])).ms,
      node: async () => (await run(node, ['-e', '0'])).ms,
      ...(ctx.withoutCa
        ? {
            statusNode: async () => (await run(node, [CLI, 'status', '--socket', socket])).ms,
            nodeNoCa: async () => (await run(node, ['-e', '0'], { env: ctx.withoutCa })).ms,
          }
        : {}),
    },
    { runs: ctx.clientRuns, warmup: ctx.warmup, label: 'client' },
  );
  const baseline = { label: '`node -e 0`', ...results.node };
  const noCa = ctx.withoutCa
    ? [
        {
          id: 'status-no-ca',
          name: '`agentd status` (bin/agentd: without NODE_EXTRA_CA_CERTS) vs `node -e 0` without it',
          a: { label: 'agentd status', ...results.status },
          b: { label: '`node -e 0` (no CA file)', ...results.nodeNoCa },
          target: { text: 'median < 150 ms', absMax: 150 },
        },
        {
          id: 'status-node',
          name: '`node dist/cli/agentd.cjs status` (no bin/agentd: NODE_EXTRA_CA_CERTS loaded)',
          a: { label: 'node dist/cli/agentd.cjs status', ...results.statusNode },
          b: { label: '`node -e 0`', ...results.node },
        },
      ]
    : [];
  return {
    rows: [
      {
        id: 'status',
        name: '`agentd status` (running daemon)',
        a: { label: 'agentd status', ...results.status },
        b: baseline,
        target: { text: 'median < 150 ms', absMax: 150 },
      },
      {
        id: 'version',
        name: '`agentd --version`',
        a: { label: 'agentd --version', ...results.version },
        b: baseline,
      },
      ...noCa,
    ],
  };
}
