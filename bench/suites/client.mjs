import { CLI } from '../lib/fixture.mjs';
import { run } from '../lib/proc.mjs';
import { interleave } from '../lib/stats.mjs';

/** Client latency: whole processes, spawn to exit, against `node -e 0`. */
export async function clientSuite(ctx) {
  const { socket } = ctx.daemon4.config;
  const node = process.execPath;
  const results = await interleave(
    {
      status: async () => {
        const r = await run(node, [CLI, 'status', '--socket', socket]);
        if (!r.stdout.startsWith('agentd ')) throw new Error(`unexpected status output: ${r.stdout}`);
        return r.ms;
      },
      version: async () => (await run(node, [CLI, '--version'])).ms,
      node: async () => (await run(node, ['-e', '0'])).ms,
      ...(ctx.withoutCa
        ? {
            statusNoCa: async () =>
              (await run(node, [CLI, 'status', '--socket', socket], { env: ctx.withoutCa })).ms,
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
          name: '`agentd status` without NODE_EXTRA_CA_CERTS',
          a: { label: 'agentd status', ...results.statusNoCa },
          b: { label: '`node -e 0` (same env)', ...results.nodeNoCa },
          target: { text: 'median < 150 ms', absMax: 150 },
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
