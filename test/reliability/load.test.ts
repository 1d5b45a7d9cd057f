/**
 * Load: a burst of 200 triggers from one client with max_sessions 4. Every trigger is accepted, every
 * session runs to `succeeded` with a record on disk, never more than 4 run at once, and nothing is left
 * in Podman.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { afterEachTest, agent, outcomes, recordFigures, waitUntil } from './harness.js';

const BURST = 200;
const MAX_SESSIONS = 4;

let git: GitServer | undefined;
const daemons: TestDaemon[] = [];
const figures: Record<string, number> & { objectsLeftBehind: number } = { objectsLeftBehind: 0 };

afterAll(async () => {
  await git?.stop();
  await recordFigures('load', figures);
});
afterEach(() => afterEachTest(figures, daemons));

/** Sends all triggers on one connection at once and collects the `accepted` replies. */
function burst(path: string, count: number): Promise<{ sessionId: string; queued: boolean }[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const accepted: { sessionId: string; queued: boolean }[] = [];
    createInterface({ input: socket }).on('line', (line) => {
      const reply = JSON.parse(line) as { type: string; sessionId: string; queued: boolean };
      if (reply.type !== 'accepted') {
        socket.destroy();
        reject(new Error(`trigger ${accepted.length + 1} got ${line}`));
        return;
      }
      accepted.push(reply);
      if (accepted.length === count) {
        socket.destroy();
        resolve(accepted);
      }
    });
    socket.on('error', reject);
    const lines = Array.from(
      { length: count },
      (_, i) => `${JSON.stringify({ v: 1, type: 'trigger', agent: 'quick', workUnit: `unit-${i}` })}\n`,
    );
    socket.write(lines.join(''));
  });
}

describe('load', () => {
  it(`runs a burst of ${BURST} triggers with max_sessions ${MAX_SESSIONS}, losing none`, {
    timeout: 600_000,
  }, async () => {
    git = await startGitServer();
    const tokenEnv = 'AGENTD_REL_LOAD_TOKEN';
    const d = await startDaemon(
      {
        daemon: { max_sessions: MAX_SESSIONS },
        agents: [
          agent('quick', git.url(), ['true'], {
            timeout: '5m',
            credentials: [{ name: 'LOAD_TOKEN', source: `env:${tokenEnv}` }],
          }),
        ],
      },
      { env: { [tokenEnv]: `load-${randomBytes(8).toString('hex')}` } },
    );
    daemons.push(d);
    const started = Date.now();
    const accepted = await burst(d.socketPath, BURST);
    const acceptMs = Date.now() - started;
    expect(new Set(accepted.map((a) => a.sessionId)).size).toBe(BURST);
    expect(accepted.filter((a) => a.queued).length).toBeGreaterThanOrEqual(BURST - MAX_SESSIONS);

    const finished = await waitUntil(
      () => {
        const records = d.records().filter((r) => r.outcome !== undefined);
        // The outcome is recorded first, then the session's record is sealed, then the outcome logged.
        return records.length >= BURST && outcomes(d).length >= BURST && records;
      },
      () => `${BURST} outcomes; have ${d.records().filter((r) => r.outcome !== undefined).length}`,
      540_000,
      1000,
    );
    const wallMs = Date.now() - started;
    const ids = new Set(accepted.map((a) => a.sessionId));
    expect(finished.length).toBe(BURST);
    expect(finished.every((r) => ids.has(r.id))).toBe(true);
    const failures = finished.filter((r) => r.outcome !== 'succeeded');
    expect(failures.map((r) => `${r.id}: ${r.outcome}: ${r.message}`)).toEqual([]);
    // Reported as well as recorded: one outcome line per session.
    expect(new Set(outcomes(d).map((l) => l.session)).size).toBe(BURST);

    // Never more than max_sessions out of the queue at once.
    const edges = finished.flatMap((r) => {
      const from = Date.parse(r.phases.find((p) => p.phase === 'resolving')?.at ?? '');
      const to = Date.parse(r.finishedAt ?? '');
      return [
        { at: from, delta: 1 },
        { at: to, delta: -1 },
      ];
    });
    edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
    let concurrent = 0;
    let peak = 0;
    for (const edge of edges) {
      concurrent += edge.delta;
      peak = Math.max(peak, concurrent);
    }
    expect(peak).toBeLessThanOrEqual(MAX_SESSIONS);

    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as {
      state: string;
      running: unknown[];
      queued: unknown[];
    };
    expect(status).toMatchObject({ state: 'ready', running: [], queued: [] });
    expect(await d.leftovers()).toEqual({ containers: [], secrets: [] });
    Object.assign(figures, {
      sessions: BURST,
      loadSucceeded: finished.length - failures.length,
      loadAcceptMs: acceptMs,
      loadWallMs: wallMs,
      loadPeakConcurrent: peak,
      loadSessionsPerMinute: Math.round((BURST / wallMs) * 60_000),
    });
    expect(await d.stop()).toBe(0);
  });
});
