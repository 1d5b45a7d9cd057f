/**
 * Followers outlive the daemon: `agentd logs --follow` and a following `agentd trigger` that lose the
 * daemon (SIGKILL, then a new start that adopts the session) reconnect and resume after the last line
 * they showed: every line once, in order, none missing. A reader that resumes after lines the bounded
 * log no longer holds gets one marker for the gap.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchDaemon, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { afterEachTest, agent, crash, killOrphans, recordFigures, sleep, waitUntil } from './harness.js';

const LINES = 300;

let git: GitServer;
const daemons: TestDaemon[] = [];
const figures: Record<string, number> & { objectsLeftBehind: number } = { objectsLeftBehind: 0 };

beforeAll(async () => {
  git = await startGitServer();
});
afterAll(async () => {
  await git?.stop();
  await recordFigures('resume', figures);
});
afterEach(() => afterEachTest(figures, daemons));

/** The `line N` lines of a CLI's output, as numbers, in the order printed. */
function numbered(stdout: string): number[] {
  return [...stdout.matchAll(/^line (\d+)$/gm)].map((m) => Number(m[1]));
}

describe('resuming a followed session', () => {
  // The daemon that adopts the session replays the container's output and skips what its log holds: by
  // count when the log holds all of it, else (a log bounded to 4 KiB) from 2 s before the log's last
  // line, dropping the lines the replay begins with that the log holds.
  it.each([
    { how: 'counted from the start', daemon: {}, crashAt: 60 },
    { how: 'resumed by time', daemon: { log_max_bytes: 4096 }, crashAt: 150 },
  ])(
    'logs --follow and trigger resume after a daemon crash ($how): every line once, in order',
    {
      timeout: 180_000,
    },
    async ({ daemon, crashAt }) => {
      const count = `i=1; while [ $i -le ${LINES} ]; do echo "line $i"; i=$((i+1)); sleep 0.03; done`;
      const d = await startDaemon({ daemon, agents: [agent('counter', git.url(), ['sh', '-c', count])] });
      daemons.push(d);
      const trigger = d.spawnCli(['trigger', 'counter']);
      const id = (await trigger.waitForStdout(/session ([0-9a-f]{16}) accepted/))[1] as string;
      const follower = d.spawnCli(['logs', id, '--follow']);
      const at = new RegExp(`^line ${crashAt}$`, 'm');
      await follower.waitForStdout(at, 60_000);
      await trigger.waitForStdout(at, 60_000);
      await crash(d);
      await killOrphans(d);
      await sleep(1000);
      const next = launchDaemon(d.files);
      daemons.push(next);
      await next.ready();
      const followed = await follower.result;
      const triggered = await trigger.result;
      const outcome = await next.waitForOutcome(id, 60_000);
      expect(outcome.outcome).toBe('succeeded');
      const all = Array.from({ length: LINES }, (_, i) => i + 1);
      for (const [who, result] of [
        ['logs --follow', followed],
        ['trigger', triggered],
      ] as const) {
        expect(result.code, `${who}: ${result.stderr}`).toBe(0);
        expect(result.stderr, who).toMatch(/reconnected; the output goes on after line \d+/);
        expect(numbered(result.stdout), who).toEqual(all);
      }
      figures.resumedFollowers = (figures.resumedFollowers ?? 0) + 2;
      figures.linesCheckedAfterCrash = (figures.linesCheckedAfterCrash ?? 0) + 2 * LINES;
    },
  );

  it('a reader that resumes after what the bounded log still holds gets one marker for the gap', async () => {
    const print = `i=1; while [ $i -le 2000 ]; do echo "line $i"; i=$((i+1)); done`;
    const d = await startDaemon({
      daemon: { log_max_bytes: 4096 },
      agents: [agent('printer', git.url(), ['sh', '-c', print])],
    });
    daemons.push(d);
    const id = (await d.cli(['trigger', 'printer', '--detach'])).stdout.trim();
    await d.waitForOutcome(id);
    const resumed = await waitUntil(
      async () => {
        const r = await d.cli(['logs', id, '--after', '10', '--json']);
        return r.code === 0 && r.stdout.includes('line 2000') && r;
      },
      () => 'the whole log',
    );
    const lines = resumed.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number | null; text: string; skipped?: { fromSeq: number } });
    const first = lines[0];
    expect(first?.seq).toBeNull();
    expect(first?.skipped?.fromSeq).toBe(11);
    expect(first?.text).toMatch(/^\[agentd: \d+ line\(s\) skipped \(seq 11-\d+\): earlier output dropped/);
    // Then the newest lines, in order, with no other marker.
    const rest = lines.slice(1);
    expect(rest.every((l) => typeof l.seq === 'number')).toBe(true);
    expect(rest.at(-1)?.text).toBe('line 2000');
    expect(rest.every((l, i) => i === 0 || (l.seq as number) === (rest[i - 1]?.seq as number) + 1)).toBe(
      true,
    );
  });
});
