import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { BIN, CLI, IMAGE, podmanCounter, startDaemon, TOKEN, triggerOnSocket } from '../lib/fixture.mjs';
import { run } from '../lib/proc.mjs';
import { interleave } from '../lib/stats.mjs';

/**
 * One `agentd trigger ... --quiet` as a whole process, as an operator runs it (bin/agentd); with `node`,
 * `node dist/cli/agentd.cjs` instead (no wrapper: NODE_EXTRA_CA_CERTS is loaded when set). Checks the
 * session succeeded.
 */
export async function triggerOnce(socket, repoUrl, { agent = 'demo', env, node = false } = {}) {
  const args = ['trigger', agent, repoUrl, '--quiet', '--socket', socket];
  const result = node ? await run(process.execPath, [CLI, ...args], { env }) : await run(BIN, args, { env });
  if (!/ succeeded/.test(result.stdout)) throw new Error(`trigger did not succeed: ${result.stdout}`);
  return result.ms;
}

/** One bare session from the shell script (5 podman calls whatever BENCH_CREDS is), as a whole process. */
export async function baselineOnce(ctx, { env = {} } = {}) {
  const result = await run('bash', [ctx.baselineScript, IMAGE, ctx.repo.url, ctx.setupFile], {
    env: {
      ...process.env,
      BENCH_TOKEN: TOKEN,
      BENCH_PREFIX: ctx.baselinePrefix,
      BENCH_LABEL: ctx.runId,
      ...env,
    },
  });
  return result.ms;
}

/**
 * A socket that answers every trigger at once with the replies of a real session (accepted, its phases, its
 * outcome): `trigger --quiet` against it is the CLI process alone, whole (start, modules, connect, reading
 * the replies, printing, exit), without the session. Its directory is the run's own (mkdtemp, 0700), so the
 * CLI's ownership check trusts it.
 */
async function answeringSocket(dir, { record, phases }) {
  const path = join(dir, 'answers.sock');
  const sessionId = record.id;
  const lines = [
    { v: 2, type: 'accepted', sessionId, queued: false, position: 0 },
    ...phases
      .filter(([phase]) => phase !== 'accepted')
      .map(([phase]) => ({ v: 2, type: 'phase', sessionId, agent: record.agent, phase })),
    { v: 2, type: 'outcome', sessionId, agent: record.agent, outcome: record.outcome, record },
  ];
  const replies = `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`;
  const server = createServer((connection) => {
    connection.on('error', () => {});
    let text = '';
    connection.on('data', (chunk) => {
      text += chunk;
      if (text.includes('\n')) {
        text = '';
        connection.end(replies);
      }
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return { path, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** Session overhead: trigger end to end against a running daemon vs the bare script; then podman calls. */
export async function sessionSuite(ctx) {
  const { socket } = ctx.daemon4.config;
  const answers = await answeringSocket(
    ctx.dir,
    await triggerOnSocket(socket, { agent: 'demo', repo: ctx.repo.url }),
  );
  const results = await interleave(
    {
      agentd: () => triggerOnce(socket, ctx.repo.url),
      baseline: () => baselineOnce(ctx),
      agentd10: () => triggerOnce(socket, ctx.repo.url, { agent: 'demo10' }),
      baseline10: () => baselineOnce(ctx, { env: { BENCH_CREDS: '10' } }),
      // Decomposition: the daemon's part alone (trigger on the socket, no CLI process) and bare Node start-up.
      socket: async () => (await triggerOnSocket(socket, { agent: 'demo', repo: ctx.repo.url })).ms,
      node: async () => (await run(process.execPath, ['-e', '0'])).ms,
      // Lower bounds from bash (no daemon, no CLI, the secret's removal not counted): agentd's own podman calls
      // on a session's critical path, and the least any session with a secret could make; and Node's start-up
      // as bin/agentd runs it.
      floorKept: () => baselineOnce(ctx, { env: { BENCH_FLOOR: 'kept' } }),
      floorRemoved: () => baselineOnce(ctx, { env: { BENCH_FLOOR: 'removed' } }),
      nodeBare: async () =>
        (await run(process.execPath, ['-e', '0'], { env: ctx.withoutCa ?? process.env })).ms,
      // bin/agentd runs `trigger` without NODE_EXTRA_CA_CERTS; when it is set, also what Node costs with it.
      ...(ctx.withoutCa ? { agentdNode: () => triggerOnce(socket, ctx.repo.url, { node: true }) } : {}),
      // The CLI's own part, measured whole rather than as the difference of two session medians.
      cliAlone: () => triggerOnce(answers.path, ctx.repo.url),
    },
    { runs: ctx.runs, warmup: ctx.warmup, label: 'session' },
  );
  await answers.close();
  const calls = await countCalls(ctx);
  return {
    rows: [
      {
        id: 'session',
        name: 'Session overhead: `trigger --quiet` vs bare script',
        a: { label: 'agentd trigger', ...results.agentd },
        b: { label: 'bare session script', ...results.baseline },
        target: { text: 'ratio ≤ 0.9', max: 0.9 },
      },
      {
        id: 'session-10',
        name: 'Session with 10 credentials: `trigger --quiet` vs bare script (10 values, one secret)',
        a: { label: 'agentd trigger, 10 credentials', ...results.agentd10 },
        b: { label: 'bare session script, 10 values', ...results.baseline10 },
        target: { text: 'ratio ≤ 0.9', max: 0.9 },
      },
      {
        id: 'session-daemon',
        name: 'Session, daemon side only: trigger on the socket (no CLI process) vs bare script',
        a: { label: 'socket trigger, follow', ...results.socket },
        b: { label: 'bare session script', ...results.baseline },
      },
      {
        id: 'session-floor',
        name: "Floor of agentd's calls (not agentd): `secret create`, `run`, `rm -f` from bash vs bare script",
        a: { label: 'secret create + run + rm -f', ...results.floorKept },
        b: { label: 'bare session script', ...results.baseline },
      },
      {
        id: 'session-floor-rm',
        name: 'Floor of any session (not agentd): `secret create` + one `run --rm` from bash vs bare script',
        a: { label: 'secret create + run --rm', ...results.floorRemoved },
        b: { label: 'bare session script', ...results.baseline },
      },
      {
        id: 'session-cli',
        name: 'The CLI process alone: `trigger --quiet` answered at once with a recorded session vs `node -e 0`',
        a: { label: 'agentd trigger, answered at once', ...results.cliAlone },
        b: { label: '`node -e 0` (no CA file)', ...results.nodeBare },
      },
      ...(ctx.withoutCa
        ? [
            {
              id: 'session-node',
              name: 'Session overhead, `node dist/cli/agentd.cjs trigger` (no bin/agentd: NODE_EXTRA_CA_CERTS loaded)',
              a: { label: 'node dist/cli/agentd.cjs trigger', ...results.agentdNode },
              b: { label: 'bare session script', ...results.baseline },
            },
          ]
        : []),
    ],
    nodeStart: results.node,
    nodeBareStart: results.nodeBare,
    calls,
  };
}

/** Podman processes per session: a counting `podman` first on PATH of a separate daemon and of the script. */
async function countCalls(ctx) {
  const dir = join(ctx.dir, 'count');
  const logFile = join(ctx.dir, 'podman-calls.log');
  const bin = await podmanCounter(ctx.dir, logFile);
  const config = ctx.makeConfig(dir, { maxSessions: 4 });
  const daemon = await startDaemon(dir, config, { pathPrefix: bin });
  const startup = readLog(logFile);
  const sessions = 3;
  const perSession = [];
  const perSession10 = [];
  try {
    for (let i = 0; i < sessions; i++) {
      writeFileSync(logFile, '');
      await triggerOnce(config.socket, ctx.repo.url);
      perSession.push(readLog(logFile));
    }
    for (let i = 0; i < 2; i++) {
      writeFileSync(logFile, '');
      await triggerOnce(config.socket, ctx.repo.url, { agent: 'demo10' });
      perSession10.push(readLog(logFile));
    }
  } finally {
    await daemon.stop();
  }
  writeFileSync(logFile, '');
  await baselineOnce(ctx, { env: { PATH: `${bin}:${process.env.PATH}` } });
  const baseline = readLog(logFile);
  return { startup, agentd: perSession, agentd10: perSession10, baseline };
}

function readLog(file) {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean);
}
