/**
 * The runner over a remote host whose connection drops: the session is not lost at once. Its container
 * runs on; the runner follows it again when the host answers (and reads the real exit code from the
 * engine, not from the dropped stream), or settles it `abandoned` after the grace period.
 */
import { describe, expect, it, vi } from 'vitest';
import { createActor, toPromise } from 'xstate';
import type { AgentConfig } from '../../src/config/types.js';
import { runnerMachineFor } from '../../src/machines/runner.machine.js';
import { runnerActors } from '../../src/runner/actors.js';
import { MASK } from '../../src/runner/mask.js';
import { closeSessionLog, openSessionLog } from '../../src/runner/session-log.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import type { RunResult } from '../../src/sessions/types.js';
import { FakePodman, type Stream, type UnfollowablePodman, unfollowable } from '../helpers/fake-podman.js';
import { AGENTS, request, resolvedCredentials, SECRET, settle } from '../helpers/machine-fakes.js';
import { makeTempDir } from '../helpers/resources.js';

const CONTAINER = 'agentd-eeeeeeee-demo-0123456789abcdef';

function start(
  podman: FakePodman,
  grace = 60_000,
  options: { retryMs?: number; stopExitMs?: number; timeoutMs?: number } = {},
) {
  const { repoToken: _none, ...agent } = AGENTS[0] as AgentConfig;
  const trigger = request('0123456789abcdef');
  if (options.timeoutMs !== undefined) trigger.timeoutMs = options.timeoutMs;
  const session = assembleSession(trigger, agent, {
    credentials: resolvedCredentials().credentials,
  });
  const dir = makeTempDir('agentd-unit-runner-hosts-');
  const output: string[] = [];
  const warnings: string[] = [];
  /** The podman calls made (or under way) when the record said the container's call was started. */
  const containerCalls: string[][] = [];
  const machine = runnerMachineFor({
    instanceId: 'e'.repeat(32),
    stopGraceMs: 1000,
    workDir: '/var/lib/agentd/work',
    hostDownGraceMs: grace,
    // Long: the tests say when the host is back, except where they say otherwise.
    hostRetryMs: options.retryMs ?? 3_600_000,
    // Behind a connection: created, started and removed in calls of their own (RunPlan.mode).
    connectedHosts: ['b1'],
  }).provide({
    actors: runnerActors(podman, {
      logFile: (id) => `${dir}/${id}.log`,
      logMaxBytes: 100_000,
      line: (_, line) => output.push(line.text),
    }),
    actions: {
      warn: (_, { message }) => warnings.push(message),
      announceContainerCall: () => containerCalls.push(podman.calls.map((c) => c.op)),
    },
    ...(options.stopExitMs === undefined ? {} : { delays: { stopExit: options.stopExitMs } }),
  });
  const actor = createActor(machine, { input: { session, host: 'b1' } }).start();
  return {
    actor,
    output,
    warnings,
    containerCalls,
    logFile: `${dir}/${trigger.sessionId}.log`,
    result: toPromise(actor) as Promise<RunResult>,
  };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 2));
  if (!check()) throw new Error(`never happened: ${what}`);
}

/** Runs the setup step's markers up to the command. */
async function toRunning(podman: FakePodman): Promise<Stream> {
  await until(() => podman.stream() !== undefined, 'attached');
  const stream = podman.stream() ?? expect.fail('no stream');
  const marker = podman.markerOf(CONTAINER);
  for (const line of ['started', 'phase cloning', 'phase running']) stream.line(`${marker} ${line}`);
  await settle();
  return stream;
}

function remote(): FakePodman {
  const podman = new FakePodman('auto');
  podman.remote = true;
  return podman;
}

describe('a session on a host behind a connection', () => {
  it("says the container's call is started before `podman create` is asked for, once", async () => {
    const podman = remote();
    const run = start(podman);
    const stream = await toRunning(podman);
    expect(run.containerCalls).toEqual([['createSecret']]);
    expect(podman.calls.map((c) => c.op)).toContain('createContainer');
    stream.exit(0);
    await run.result;
    expect(run.containerCalls).toHaveLength(1);
  });
});

describe('a session whose host stops answering', () => {
  it('waits, follows its container again when the host is back, and ends with the real exit code', async () => {
    const podman = remote();
    const run = start(podman);
    const first = await toRunning(podman);
    first.line('before');
    // Podman's copy is its first: it begins with the setup step's first line.
    const marker = podman.markerOf(CONTAINER);
    const copy = ['started', 'phase cloning', 'phase running'].map((m) => `${marker} ${m}`);
    copy.push('before', `after ${SECRET}`);
    podman.held.set(CONTAINER, copy);
    podman.goDown();
    await until(() => run.warnings.length > 0, 'the runner noticed');
    expect(run.warnings[0]).toMatch(/lost the connection to the host/);
    // Not lost: no outcome, the container runs on.
    expect(run.actor.getSnapshot().status).toBe('active');
    expect(run.actor.getSnapshot().hasTag('running')).toBe(true);
    expect(podman.containers.get(CONTAINER)).toBe('running');
    podman.comeBack();
    run.actor.send({ type: 'host.up' });
    await until(() => podman.stream() !== undefined, 'followed again');
    const again = podman.stream() ?? expect.fail('no stream');
    // The engine replays the whole log; what was written already is skipped.
    for (const line of copy) again.line(line);
    again.exit(7);
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 7, phase: 'running' });
    expect(run.output).toEqual(['before', `after ${MASK}`]);
    expect([...podman.secrets, ...podman.containers.keys()]).toEqual([]);
  });

  it("follows again from the log's last line, after a note, when the host's copy was emptied while it was away", async () => {
    const podman = remote();
    const run = start(podman);
    const first = await toRunning(podman);
    first.line('before');
    podman.goDown();
    await until(() => run.warnings.length > 0, 'the runner noticed');
    // Meanwhile the container printed more than Podman's copy holds: it begins after 'before'.
    podman.held.set(CONTAINER, ['x2', 'x3']);
    podman.comeBack();
    run.actor.send({ type: 'host.up' });
    await until(() => podman.stream() !== undefined, 'followed again');
    const again = podman.stream() ?? expect.fail('no stream');
    expect(again.since, "Podman's copy is read whole, never from a time").toBeUndefined();
    again.line('x2');
    again.line('x3');
    again.exit(0);
    expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(run.output).toEqual([
      'before',
      "[agentd: some output is missing: Podman's own copy was emptied before it was read]",
      'x2',
      'x3',
    ]);
  });

  it('reads the exit code of a container that ended while its host was away', async () => {
    const podman = remote();
    const run = start(podman);
    await toRunning(podman);
    podman.goDown();
    await until(() => run.warnings.length > 0, 'the runner noticed');
    podman.exitUnwatched(CONTAINER, 5);
    podman.comeBack();
    run.actor.send({ type: 'host.up' });
    await until(() => podman.stream() !== undefined, 'followed again');
    (podman.stream() ?? expect.fail('no stream')).exit(5);
    expect(await run.result).toMatchObject({ outcome: 'failed', exitCode: 5 });
  });

  it('reads the log of a container that exited as its stream dropped, for the lines and the report it left out', async () => {
    const podman = remote();
    const run = start(podman);
    const first = await toRunning(podman);
    first.line('before');
    const marker = podman.markerOf(CONTAINER);
    const copy = ['started', 'phase cloning', 'phase running'].map((m) => `${marker} ${m}`);
    copy.push('before', `after ${SECRET}`, `${marker} ended 5 0`);
    podman.held.set(CONTAINER, copy);
    // The container exits as the connection drops: the engine says so, the stream never did.
    podman.exitUnwatched(CONTAINER, 5);
    first.drop();
    expect(await run.result).toMatchObject({ outcome: 'failed', exitCode: 5, phase: 'running' });
    expect(run.output).toEqual([
      'before',
      "[agentd: Podman's attachment did not hand on all the container printed: the rest was read from Podman's log of it]",
      `after ${MASK}`,
    ]);
  });

  it('follows again at once when only the stream dropped and the host still answers', async () => {
    const podman = remote();
    const run = start(podman);
    const first = await toRunning(podman);
    // podman --url says 0 when the connection drops: the engine says the container still runs.
    first.drop();
    await until(() => podman.stream() !== undefined, 'followed again');
    expect(run.warnings).toEqual([]);
    (podman.stream() ?? expect.fail('no stream')).exit(0);
    expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
  });

  it("follows again from the log's last line, after a note, when only the stream dropped and the copy was emptied meanwhile", async () => {
    const podman = remote();
    const run = start(podman);
    const first = await toRunning(podman);
    first.line('before');
    // More than Podman's copy holds came meanwhile: it begins after 'before'.
    podman.held.set(CONTAINER, ['x2', 'x3']);
    first.drop();
    await until(() => podman.stream() !== undefined, 'followed again');
    const again = podman.stream() ?? expect.fail('no stream');
    again.line('x2');
    again.line('x3');
    again.exit(0);
    expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(run.output).toEqual([
      'before',
      "[agentd: some output is missing: Podman's own copy was emptied before it was read]",
      'x2',
      'x3',
    ]);
    expect(again.since, "Podman's copy is read whole, never from a time").toBeUndefined();
  });

  it('is abandoned when the host does not answer within the grace period', async () => {
    const podman = remote();
    const run = start(podman, 50);
    await toRunning(podman);
    podman.goDown();
    const result = await run.result;
    expect(result.outcome).toBe('abandoned');
    expect(result.message).toMatch(
      /lost the connection to host b1 while running: it did not answer again within/,
    );
    // Its container could not be removed: the host's reconciliation does that when it is back.
    expect(podman.containers.get(CONTAINER)).toBe('running');
  });

  it('is abandoned when its container is gone once the host answers again', async () => {
    const podman = remote();
    const run = start(podman);
    await toRunning(podman);
    podman.goDown();
    await until(() => run.warnings.length > 0, 'the runner noticed');
    podman.containers.delete(CONTAINER);
    podman.comeBack();
    run.actor.send({ type: 'host.up' });
    expect(await run.result).toMatchObject({
      outcome: 'abandoned',
      message: expect.stringMatching(/the container was gone/),
    });
  });

  it.each([4, 5] as const)(
    'is abandoned, not succeeded, when its host restarted meanwhile (Podman %i reset the container: exit 0)',
    async (version) => {
      const RESTARTED =
        /lost the connection to host b1 while running: it restarted meanwhile: Podman reset the container/;
      // Found when the host answers again.
      const away = remote();
      const run = start(away);
      await toRunning(away);
      away.goDown();
      await until(() => run.warnings.length > 0, 'the runner noticed');
      away.resetByRestart(CONTAINER, version);
      away.comeBack();
      run.actor.send({ type: 'host.up' });
      expect(await run.result).toMatchObject({
        outcome: 'abandoned',
        message: expect.stringMatching(RESTARTED),
      });
      expect([...away.secrets, ...away.containers.keys()]).toEqual([]);

      // Found where the attachment's end is confirmed: the stream dropped (podman says 0).
      const dropped = remote();
      const second = start(dropped);
      const first = await toRunning(dropped);
      dropped.resetByRestart(CONTAINER, version);
      first.drop();
      expect(await second.result).toMatchObject({
        outcome: 'abandoned',
        message: expect.stringMatching(RESTARTED),
      });

      // Found where a resumed follow's end is confirmed: `wait` answers 0 for such a container.
      const resumed = remote();
      const third = start(resumed);
      await toRunning(resumed);
      resumed.goDown();
      await until(() => third.warnings.length > 0, 'the runner noticed');
      resumed.comeBack();
      third.actor.send({ type: 'host.up' });
      await until(() => resumed.stream() !== undefined, 'followed again');
      // `wait` and the follow end with 0; the engine, asked next, has the container created again.
      (resumed.stream() ?? expect.fail('no stream')).exit(0);
      resumed.resetByRestart(CONTAINER, version);
      expect(await third.result).toMatchObject({
        outcome: 'abandoned',
        message: expect.stringMatching(RESTARTED),
      });
    },
  );

  it('is cancelled at once while its host is away, not after the grace period', async () => {
    const podman = remote();
    const run = start(podman);
    await toRunning(podman);
    run.actor.send({ type: 'host.down' });
    podman.goDown();
    run.actor.send({ type: 'cancel' });
    expect(await run.result).toMatchObject({ outcome: 'cancelled' });
  });
});

/** The run's result, or undefined when it has none within `ms`. */
async function within(run: { result: Promise<RunResult> }, ms: number): Promise<RunResult | undefined> {
  return Promise.race([
    run.result,
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms)),
  ]);
}

describe('a session whose host answers but cannot be followed', () => {
  /**
   * Runs a session (grace 150 ms, probe interval 5 ms) to its command, then breaks its host with the
   * clock faked: the result, if any, 140 ms after the loss (short of the grace) and 10 ms past the grace
   * and the time a follow takes to fail (it ends what it was doing first).
   */
  async function abandonedOnTime(podman: UnfollowablePodman) {
    // Faked before the actor starts, so that its delays are on the fake clock too; a millisecond at a
    // time, with a turn of the real event loop between, for what is not a timer (the session log's writes).
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'],
    });
    const advance = async (ms: number) => {
      for (let i = 0; i < ms; i++) {
        await vi.advanceTimersByTimeAsync(1);
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    try {
      const run = start(podman, 150, { retryMs: 5 });
      for (let i = 0; i < 1000 && podman.stream() === undefined; i++) await advance(1);
      const first = podman.stream() ?? expect.fail('never attached');
      const marker = podman.markerOf(CONTAINER);
      for (const line of ['started', 'phase cloning', 'phase running']) first.line(`${marker} ${line}`);
      await advance(1);
      let result: RunResult | undefined;
      void run.result.then((r) => {
        result = r;
      });
      podman.broken = true;
      first.drop();
      await advance(140);
      const beforeGrace = result;
      const followsBeforeGrace = podman.follows;
      await advance(150 + podman.failAfterMs + 10 - 140);
      // The clock stands still while what is not a timer ends (a follow's loss closes the session log).
      for (let i = 0; i < 20_000 && result === undefined; i++)
        await new Promise((resolve) => setImmediate(resolve));
      const afterGrace = result;
      if (afterGrace === undefined) run.actor.stop();
      return { beforeGrace, afterGrace, followsBeforeGrace };
    } finally {
      vi.useRealTimers();
    }
  }

  it('is abandoned at the end of the grace period counted from the first loss, not restarted by each try', async () => {
    const podman = unfollowable();
    const { beforeGrace, afterGrace, followsBeforeGrace } = await abandonedOnTime(podman);
    expect(beforeGrace, 'abandoned before the grace period was over').toBeUndefined();
    // It did go round: followed again several times before the grace was over.
    expect(followsBeforeGrace).toBeGreaterThan(2);
    expect(
      afterGrace,
      'no outcome at the end of the grace: it started over at a loss, or is longer',
    ).toMatchObject({
      outcome: 'abandoned',
      phase: 'running',
    });
  });

  it('is abandoned at the end of the grace though each follow fails only after longer than a probe interval', async () => {
    const podman = unfollowable();
    podman.failAfterMs = 25;
    const { beforeGrace, afterGrace } = await abandonedOnTime(podman);
    expect(beforeGrace, 'abandoned before the grace period was over').toBeUndefined();
    expect(
      afterGrace,
      'no outcome at the end of the grace: each follow that lasted a probe interval started it over',
    ).toMatchObject({ outcome: 'abandoned' });
  });

  it('starts a new grace period for a loss after it was followed again for a whole grace period', async () => {
    const podman = unfollowable();
    const run = start(podman, 150, { retryMs: 5 });
    const first = await toRunning(podman);
    podman.broken = true;
    first.drop();
    await until(() => podman.follows > 2, 'going round');
    // Followed again, and for longer than the grace period: this outage is over.
    podman.broken = false;
    await until(() => podman.stream() !== undefined, 'followed again');
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(run.actor.getSnapshot().status).toBe('active');
    podman.broken = true;
    const lostAgainAt = performance.now();
    (podman.stream() ?? expect.fail('no stream')).lose(new Error('connection reset'));
    const result = await within(run, 2_000);
    if (result === undefined) run.actor.stop();
    expect(result).toMatchObject({ outcome: 'abandoned' });
    // Not at once: its own grace period, from the second loss.
    expect(performance.now() - lostAgainAt).toBeGreaterThan(140);
  });

  it('holds nothing of each attachment that went round: the session log keeps one drain listener, not one per follow', async () => {
    const podman = unfollowable();
    const run = start(podman, 3_600_000, { retryMs: 1, stopExitMs: 50 });
    const first = await toRunning(podman);
    podman.broken = true;
    first.drop();
    // Each round is an attachment of its own (a new SessionOutput on the session's one open log).
    for (let i = 0; i < 2000 && podman.follows < 100; i++)
      await new Promise((resolve) => setTimeout(resolve, 2));
    expect(podman.follows).toBeGreaterThanOrEqual(100);
    // The log still being written (the session runs on): the one every attachment wrote to.
    const log = openSessionLog(run.logFile, 100_000);
    const listeners = (log as unknown as { drainListeners: { length?: number; size?: number } })
      .drainListeners;
    const count = listeners.length ?? listeners.size ?? 0;
    podman.broken = false;
    run.actor.send({ type: 'cancel' });
    await run.result;
    await closeSessionLog(run.logFile);
    // The attachment under way at most: each earlier one kept its output (masker, run, handlers) alive.
    expect(count).toBeLessThanOrEqual(1);
  });

  it('ends a cancel within a bound though the attachment never reports the exit', async () => {
    const podman = unfollowable();
    const run = start(podman, 3_600_000, { retryMs: 5, stopExitMs: 50 });
    const first = await toRunning(podman);
    podman.broken = true;
    first.drop();
    await until(() => podman.follows > 2, 'going round');
    run.actor.send({ type: 'cancel' });
    const result = await within(run, 2_000);
    if (result === undefined) run.actor.stop();
    expect(result, 'no outcome: the stop waits for an exit that never comes').toBeDefined();
    expect(result).toMatchObject({ outcome: 'cancelled', phase: 'running' });
    expect(podman.calls.filter((c) => c.op === 'stopContainer')).toHaveLength(1);
    expect(run.warnings).toContainEqual(
      expect.stringMatching(/exit did not come through its attachment .*; teardown removes it/),
    );
    // Teardown removed what the session made.
    expect([...podman.secrets, ...podman.containers.keys()]).toEqual([]);
  });

  it('ends at its timeout within a bound though the attachment never reports the exit', async () => {
    const podman = unfollowable();
    const run = start(podman, 3_600_000, { retryMs: 5, stopExitMs: 50, timeoutMs: 300 });
    const first = await toRunning(podman);
    podman.broken = true;
    first.drop();
    await until(() => podman.follows > 2, 'going round');
    const result = await within(run, 2_000);
    if (result === undefined) run.actor.stop();
    expect(result, 'no outcome: the stop waits for an exit that never comes').toBeDefined();
    expect(result).toMatchObject({ outcome: 'timed_out', phase: 'running' });
    expect([...podman.secrets, ...podman.containers.keys()]).toEqual([]);
  });
});
