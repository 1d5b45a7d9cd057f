/**
 * Podman failures: a fake podman first on PATH fails (exit 125) or hangs on the 2nd call of one
 * subcommand. The session that meets the fault ends as `error` naming the operation (or, where agentd
 * retries, succeeds), nothing of it stays in Podman, the daemon stays ready and the next trigger runs.
 * And without podman at all the daemon refuses to start, saying so.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { launchDaemon, prepareDaemon, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { makeTempDir } from '../helpers/resources.js';
import { afterEachTest, agent, FakePodman, type FaultRule, recordFigures } from './harness.js';

let git: GitServer | undefined;
const daemons: TestDaemon[] = [];
const figures = { faultsInjected: 0, sessions: 0, objectsLeftBehind: 0 };

afterAll(async () => {
  await git?.stop();
  await recordFigures('podman-faults', figures);
});

afterEach(() => afterEachTest(figures, daemons));

const TOKEN_ENV = 'AGENTD_REL_FAULT_TOKEN';
const token = `fault-token-${randomBytes(8).toString('hex')}`;

interface FaultCase {
  rule: FaultRule;
  /** What the session that meets the fault ends with. */
  outcome: 'error' | 'succeeded';
  /** Its message names the operation that failed. */
  message?: RegExp;
  podmanTimeout?: string;
  /**
   * The failure was absorbed, and the daemon log says so: a warning (the secrets' removal while the
   * container ran failed; teardown removed them), or at info that a teardown step is tried again.
   */
  logged?: 'session.teardown_warning' | 'session.teardown_retry';
}

const NAME = 'agentd-[0-9a-f]{8}-';
/** podman_timeout of the hang cases: every podman call of those daemons has this long, not only the hung one. */
const HANG_TIMEOUT_S = 10;
const cases: FaultCase[] = [
  {
    rule: { subcommand: 'secret-create', call: 2, action: 'fail' },
    outcome: 'error',
    message: new RegExp(
      `^create secret ${NAME}[0-9a-f]{16}-0 failed \\(exit 125\\): Error: injected failure`,
    ),
  },
  // On the local Podman one `podman run` creates and starts the container.
  {
    rule: { subcommand: 'run', call: 2, action: 'fail' },
    outcome: 'error',
    message: new RegExp(`^run container ${NAME}faulty-[0-9a-f]{16} failed \\(exit 125\\): Error: injected`),
  },
  // Removing the secrets right after start fails: teardown removes them again.
  {
    rule: { subcommand: 'secret-rm', call: 2, action: 'fail' },
    outcome: 'succeeded',
    logged: 'session.teardown_warning',
  },
  // Removing the container fails once: teardown tries again rather than leaving it behind.
  {
    rule: { subcommand: 'rm', call: 2, action: 'fail' },
    outcome: 'succeeded',
    logged: 'session.teardown_retry',
  },
  {
    rule: { subcommand: 'secret-create', call: 2, action: 'hang' },
    outcome: 'error',
    podmanTimeout: `${HANG_TIMEOUT_S}s`,
    message: new RegExp(
      `^create secret ${NAME}[0-9a-f]{16}-0: podman did not answer within ${HANG_TIMEOUT_S}s`,
    ),
  },
  {
    rule: { subcommand: 'run', call: 2, action: 'hang' },
    outcome: 'error',
    podmanTimeout: `${HANG_TIMEOUT_S}s`,
    message: new RegExp(
      `^run container ${NAME}faulty-[0-9a-f]{16}: podman did not answer within ${HANG_TIMEOUT_S}s`,
    ),
  },
];

interface TriggerJson {
  sessionId: string;
  outcome: string;
  message?: string;
}

async function trigger(d: TestDaemon): Promise<TriggerJson> {
  const result = await d.cli(['trigger', 'faulty', '--json']);
  const parsed = JSON.parse(result.stdout) as TriggerJson;
  figures.sessions++;
  return parsed;
}

/** A daemon whose podman is `fake`, with one agent (its command) cloning the suite's repo. */
async function startFaked(
  fake: FakePodman,
  name: string,
  command: string[],
  daemon: Record<string, string> = {},
): Promise<TestDaemon> {
  git ??= await startGitServer();
  const d = await startDaemon(
    { daemon, agents: [agent(name, git.url(), command)] },
    { env: { PATH: fake.path } },
  );
  daemons.push(d);
  return d;
}

describe('podman failures', () => {
  it.each(cases)('podman $rule.subcommand: $rule.action on call $rule.call', async (c) => {
    git ??= await startGitServer();
    const fake = new FakePodman();
    fake.setRules([c.rule]);
    const d = await startDaemon(
      {
        daemon: { podman_timeout: c.podmanTimeout ?? '30s' },
        agents: [
          agent('faulty', git.url(), ['sh', '-c', 'echo ran'], {
            credentials: [{ name: 'REL_TOKEN', source: `env:${TOKEN_ENV}` }],
          }),
        ],
      },
      { env: { PATH: fake.path, [TOKEN_ENV]: token } },
    );
    daemons.push(d);

    expect(await trigger(d), 'the call before the fault').toMatchObject({ outcome: 'succeeded' });
    const started = Date.now();
    const faulty = await trigger(d);
    expect(fake.faults(), 'the fault was hit').toBe(1);
    figures.faultsInjected++;
    expect(faulty.outcome, faulty.message).toBe(c.outcome);
    if (c.message) expect(faulty.message).toMatch(c.message);
    // The hung call is cut short at podman_timeout, and the rest of the session takes seconds.
    if (c.podmanTimeout)
      expect(Date.now() - started, 'cut short by podman_timeout').toBeLessThan(
        HANG_TIMEOUT_S * 1000 + 15_000,
      );
    expect(d.record(faulty.sessionId)).toMatchObject({ outcome: c.outcome, phase: 'finished' });
    expect(await d.leftovers(), 'the faulty session cleaned up after itself').toEqual({
      containers: [],
      secrets: [],
    });
    const told = d
      .logs()
      .filter((l) => l.event === 'session.teardown_warning' || l.event === 'session.teardown_retry')
      .map((l) => l.event);
    expect([...new Set(told)], 'what the daemon log says of teardown').toEqual(c.logged ? [c.logged] : []);
    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as { state: string };
    expect(status.state).toBe('ready');

    expect(await trigger(d), 'the next trigger').toMatchObject({ outcome: 'succeeded' });
    for (const text of [d.stderr(), d.stateDirText(), faulty.message ?? ''])
      expect(text).not.toContain(token);
    expect(await d.stop()).toBe(0);
  });

  it('a probe of the local Podman that fails while a session runs: the session runs on to its outcome', async () => {
    const fake = new FakePodman();
    const d = await startFaked(fake, 'steady', ['sh', '-c', 'echo begun; sleep 6; echo finished'], {
      host_probe_interval: '1s',
    });
    const id = (await d.cli(['trigger', 'steady', '--detach'])).stdout.trim();
    await d.waitForPhase(id, 'running');
    // Every probe fails for a while (as a slow or briefly broken Podman does), then they pass again.
    fake.setRules([{ subcommand: 'version', call: '*', action: 'fail' }]);
    await d.waitForLog((l) => l.event === 'host.down', 10_000);
    figures.faultsInjected++;
    fake.setRules([]);
    const outcome = await d.waitForOutcome(id);
    figures.sessions++;
    // Before, the runner left its `podman run` for the lost host: the container got the SIGTERM (143).
    expect(outcome).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect((await d.cli(['logs', id])).stdout).toContain('finished');
    expect(await d.leftovers()).toEqual({ containers: [], secrets: [] });
    expect(await d.stop()).toBe(0);
  });

  it('a cancel while the session tears down is refused as too late, and the outcome stays the command’s', async () => {
    const fake = new FakePodman();
    // Every container removal takes 3 s: the session stays tearing down that long.
    fake.setRules([{ subcommand: 'rm', call: '*', action: { sleepSeconds: 3 } }]);
    const d = await startFaked(fake, 'brief', ['sh', '-c', 'echo done']);
    const id = (await d.cli(['trigger', 'brief', '--detach'])).stdout.trim();
    await d.waitForPhase(id, 'tearing_down');
    figures.faultsInjected++;
    const cancel = await d.cli(['cancel', id]);
    // Before, it said "is being cancelled" (exit 0) and the session still ended succeeded.
    expect(cancel.code, cancel.stdout + cancel.stderr).toBe(6);
    expect(cancel.stderr).toContain(`session ${id} is finishing: its outcome is decided`);
    const outcome = await d.waitForOutcome(id);
    figures.sessions++;
    expect(outcome).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(await d.leftovers()).toEqual({ containers: [], secrets: [] });
    expect(await d.stop()).toBe(0);
  });

  it('what a teardown could not remove is removed once Podman answers again, while the daemon runs', async () => {
    const fake = new FakePodman();
    const d = await startFaked(fake, 'sticky', ['sh', '-c', 'echo done'], { host_probe_interval: '1s' });
    // Every container removal fails: both of teardown's tries.
    fake.setRules([{ subcommand: 'rm', call: '*', action: 'fail' }]);
    const run = await d.cli(['trigger', 'sticky', '--json']);
    const reply = JSON.parse(run.stdout) as TriggerJson;
    figures.faultsInjected++;
    figures.sessions++;
    expect(reply.outcome).toBe('error');
    expect(reply.message).toMatch(/teardown failed/);
    expect((await d.leftovers()).containers).toHaveLength(1);
    fake.setRules([]);
    // Before, it stayed until the next start's reconciliation.
    await expect.poll(() => d.leftovers(), { timeout: 15_000 }).toEqual({ containers: [], secrets: [] });
    // Logged once podman has answered (the test may see the container gone a moment before).
    const removed = await d.waitForLog((l) => l.event === 'session.leftovers_removed', 10_000);
    expect(removed.removed).toHaveLength(1);
    expect(await d.stop()).toBe(0);
  });

  it('refuses to start without podman, saying it is not installed', async () => {
    const files = prepareDaemon({ agents: [agent('faulty', 'git://127.0.0.1:9/none.git', ['true'])] });
    const d = launchDaemon(files, { env: { PATH: makeTempDir('agentd-rel-nopath-') } });
    daemons.push(d);
    const { code } = await d.exited;
    figures.faultsInjected++;
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    // A plain line for the operator, not only the JSON log line.
    expect(d.stderr()).toMatch(
      /^agentd: .*could not start: list containers: podman is not installed or not on PATH/m,
    );
    expect(d.logs().map((l) => l.event)).not.toContain('daemon.ready');
  });
});
