/**
 * The runner machine over a fake PodmanPort, scenario by scenario: what the model-based test
 * (runner.model.test.ts) cannot see, since it emits no output: masking, withheld output, the setup
 * step's out-of-memory report, and a secret create that a cancel must not cut short.
 */

import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createActor, toPromise } from 'xstate';
import type { ResolvedCredentials } from '../../src/adapters/credentials.js';
import type { AttachedRun, OutputHandler } from '../../src/adapters/podman.js';
import type { AgentConfig } from '../../src/config/types.js';
import { LABEL_SECRETS } from '../../src/constants.js';
import { type AdoptedSession, decidedOf, runnerMachineFor } from '../../src/machines/runner.machine.js';
import { runnerActors } from '../../src/runner/actors.js';
import { bundleCredentials, unbundle } from '../../src/runner/credential-bundle.js';
import { MASK } from '../../src/runner/mask.js';
import { SecretValue } from '../../src/secret-value.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import type { RunFate } from '../../src/sessions/run-outcome.js';
import type { RunResult } from '../../src/sessions/types.js';
import { FakePodman, type HeldPiece } from '../helpers/fake-podman.js';
import {
  AGENTS,
  REPO_TOKEN,
  request,
  resolvedCredentials,
  SECRET,
  settle,
} from '../helpers/machine-fakes.js';
import { makeTempDir } from '../helpers/resources.js';
import { secretFormsIn } from '../helpers/secret-forms.js';

const SETTINGS = { instanceId: 'e'.repeat(32), stopGraceMs: 1000, workDir: '/var/lib/agentd/work' };
const CONTAINER = 'agentd-eeeeeeee-demo-0123456789abcdef';
/** A container left running was given a secret (whose copy a test may make unreadable). */
const GIVEN_SECRET = [{ name: 'agentd-test-secret', target: '/run/secrets/agentd/bundle.0' }];

function start(
  podman: FakePodman,
  adopted?: AdoptedSession,
  dir = makeTempDir('agentd-unit-runner-'),
  resolved: ResolvedCredentials = { credentials: resolvedCredentials().credentials },
) {
  const { repoToken: _none, ...agent } = AGENTS[0] as AgentConfig;
  const session = assembleSession(
    request('0123456789abcdef'),
    resolved.repoToken ? (AGENTS[0] as AgentConfig) : agent,
    resolved,
  );
  const output: string[] = [];
  const phases: string[] = [];
  /** What the daemon's record keeps as the outcome when the teardown begins (main.ts). */
  const decided: RunFate[] = [];
  const warnings: { message: string; retrying: boolean }[] = [];
  /** The podman calls made (or under way) when the record said the container's call was started. */
  const containerCalls: string[][] = [];
  const machine = runnerMachineFor(SETTINGS).provide({
    actors: runnerActors(podman, {
      logFile: (id) => `${dir}/${id}.log`,
      logMaxBytes: 100_000,
      line: (_, line) => output.push(line.text),
    }),
    actions: {
      announcePhase: ({ context }, { phase }) => {
        phases.push(phase);
        if (phase === 'tearing_down') decided.push(decidedOf(context));
      },
      warn: (_, { message }) => warnings.push({ message, retrying: false }),
      noteTeardownRetry: (_, { message }) => warnings.push({ message, retrying: true }),
      announceContainerCall: () => containerCalls.push(podman.calls.map((c) => c.op)),
    },
  });
  const actor = createActor(machine, { input: { session, ...(adopted ? { adopted } : {}) } }).start();
  return {
    actor,
    output,
    phases,
    decided,
    warnings,
    containerCalls,
    result: toPromise(actor) as Promise<RunResult>,
  };
}

/**
 * Waits until `check` holds, letting the fake's promises and the actor run in between (and the
 * session log's writes, which go to a real file, finish). The deadline only ends a wait that failed:
 * beside the Podman suites on two cores, a real file write has taken seconds.
 */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check() && Date.now() < deadline) await settle();
  if (!check()) throw new Error(`never happened: ${what}`);
}

/**
 * Takes a session of `start` (on a manual FakePodman) through its secret create and the setup step's
 * start, to the secrets' removal while the container runs, which it returns unsettled; `exit` then
 * ends the command with 0 and the container with it.
 */
async function untilRemovalWhileRunning(podman: FakePodman) {
  await until(() => podman.pending('createSecret') !== undefined, 'secret create');
  podman.pending('createSecret')?.succeed();
  await until(() => podman.stream() !== undefined, 'attached');
  const stream = podman.stream() ?? expect.fail('no stream');
  const marker = podman.markerOf(CONTAINER);
  stream.line(`${marker} started`);
  await until(() => podman.pending('removeSecrets') !== undefined, 'removal while it runs');
  const removal = podman.pending('removeSecrets') ?? expect.fail('no removal');
  const exit = () => {
    for (const line of ['phase cloning', 'phase running', 'ended 0 0']) stream.line(`${marker} ${line}`);
    stream.exit(0);
  };
  return { removal, exit };
}

describe('runner machine', () => {
  it('runs a session, masks a credential the agent prints, and leaves nothing in Podman', async () => {
    const podman = new FakePodman('auto');
    const run = start(podman);
    await until(() => podman.stream() !== undefined, 'attached');
    const stream = podman.stream() ?? expect.fail('no stream');
    const marker = podman.markerOf(CONTAINER);
    stream.line(`${marker} started`);
    stream.line(`${marker} phase cloning`);
    stream.line(`${marker} phase running`);
    stream.line(`key=${SECRET}`);
    stream.line(`b64=${Buffer.from(SECRET).toString('base64')}`);
    stream.line(`${marker} ended 0 0`);
    stream.exit(0);
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, phase: 'running' });
    expect(run.output).toEqual([`key=${MASK}`, `b64=${MASK}`]);
    expect(run.phases).toEqual(['creating', 'cloning', 'running', 'tearing_down']);
    expect([...podman.secrets, ...podman.containers.keys()]).toEqual([]);
    // The secret went to podman as its bytes (in the session's one bundle), and was removed while
    // the container ran; the container was made and run by one `podman run`, and removed at teardown.
    const bundles = [...podman.values.values()];
    expect(bundles).toHaveLength(1);
    expect(unbundle(new Map([['bundle.0', bundles[0] as Buffer]])).map(String)).toEqual([SECRET]);
    expect(podman.calls.map((c) => c.op)).toEqual([
      'createSecret',
      'runAttached',
      'removeSecrets',
      'removeContainers',
    ]);
    const removals = podman.calls.filter((c) => c.op === 'removeSecrets');
    expect(removals.length).toBeGreaterThan(0);
  });

  it("says the container's call is started once its secrets exist and before podman is asked to make it", async () => {
    // A restarted daemon runs again a session whose record does not say so, when no container of it is
    // left (recovery.ts): said after the call, a kill in between would run its command twice.
    for (const credentials of [resolvedCredentials().credentials, []]) {
      const podman = new FakePodman('auto');
      const run = start(podman, undefined, undefined, { credentials });
      await until(() => podman.stream() !== undefined, 'attached');
      // Said once, when the secret (if any) was made and `podman run` was not asked for yet.
      expect(run.containerCalls).toEqual([credentials.length === 0 ? [] : ['createSecret']]);
      run.actor.send({ type: 'cancel' });
      await until(() => podman.stream()?.signal?.aborted === true, 'the run cut short');
      podman.stream()?.exit(143);
      expect(await run.result).toMatchObject({ outcome: 'cancelled', phase: 'creating' });
      expect(run.containerCalls).toHaveLength(1);
    }
  });

  it('reports an out-of-memory kill the setup step saw, which Podman does not', async () => {
    const podman = new FakePodman('auto');
    const run = start(podman);
    await until(() => podman.stream() !== undefined, 'attached');
    const stream = podman.stream() ?? expect.fail('no stream');
    const marker = podman.markerOf(CONTAINER);
    for (const line of ['started', 'phase cloning', 'phase running']) stream.line(`${marker} ${line}`);
    stream.line(`partial output${marker} ended 137 1`);
    stream.exit(137);
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 137, signal: 'SIGKILL' });
    expect(result.message).toMatch(/^out of memory \(limit \S+\): command killed by SIGKILL/);
    expect(run.output).toEqual(['partial output']);
  });

  it('tells a 127 of the command it started from the setup step not finding the command', async () => {
    // Measured: a `set -e` script whose tool was missing ended "command not found: sh (exit 127); check
    // the agent's command and the image", though sh was found and ran: the setup step's report says so.
    const ran = async (lines: string[]) => {
      const podman = new FakePodman('auto');
      const run = start(podman);
      await until(() => podman.stream() !== undefined, 'attached');
      const stream = podman.stream() ?? expect.fail('no stream');
      const marker = podman.markerOf(CONTAINER);
      for (const line of ['started', 'phase cloning', 'phase running']) stream.line(`${marker} ${line}`);
      for (const line of lines) stream.line(line.replace('MARKER', marker));
      stream.exit(127);
      return await run.result;
    };
    const own = await ran(['tool: not found', 'MARKER ended 127 0']);
    expect(own).toMatchObject({ outcome: 'failed', kind: 'not_found', exitCode: 127 });
    expect(own.message).toMatch(
      /^command \S+ was started and exited with code 127: its interpreter or something it ran was not found$/,
    );
    const missing = await ran(['agentd: x: command not found in the image']);
    expect(missing).toMatchObject({ outcome: 'failed', kind: 'not_found', exitCode: 127 });
    expect(missing.message).toMatch(/^command not found: \S+ \(exit 127\); check the agent's command/);
  });

  it("says Podman lost the container's exit, not that the command was not found, when podman run's 127 is its own", async () => {
    // Measured (scripts/chaos.mjs, CHAOS_FAULTS=podman, the session's conmon killed while `sleep 6` ran):
    // `podman run` exited 127 twenty seconds later ("getting exit code of container ... from DB: no such
    // exit code (container in state running)"), and the session ended failed, "command not found: sh
    // (exit 127); check the agent's command and the image", though sh had run for seconds.
    const podman = new FakePodman('auto');
    const run = start(podman);
    await until(() => podman.stream() !== undefined, 'attached');
    const stream = podman.stream() ?? expect.fail('no stream');
    const marker = podman.markerOf(CONTAINER);
    for (const line of ['started', 'phase cloning', 'phase running']) stream.line(`${marker} ${line}`);
    stream.exit(127);
    // Podman's records still say the container runs: nothing recorded its exit.
    podman.containers.set(CONTAINER, 'running');
    podman.exitCodes.set(CONTAINER, 0);
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'error', phase: 'running' });
    expect(result.message).toMatch(/podman run exited 127 .*still lists container \S+ as running/);
    expect(result.message).not.toMatch(/command not found/);
    expect(podman.containers.has(CONTAINER)).toBe(false);
  });

  it('follows the container on when its podman run is killed and the container runs on', async () => {
    // Measured (scripts/chaos.mjs, CHAOS_FAULTS=podman, the session's `podman run` killed from outside
    // while `sleep 6; echo long-done` ran): the session ended failed, "command exited with code -1",
    // though the container (run with --sig-proxy=false) ran on and printed its last line.
    const podman = new FakePodman('auto');
    const run = start(podman);
    await until(() => podman.stream() !== undefined, 'attached');
    const attached = podman.stream() ?? expect.fail('no stream');
    const marker = podman.markerOf(CONTAINER);
    const printed = ['started', 'phase cloning', 'phase running'].map((line) => `${marker} ${line}`);
    for (const line of printed) attached.line(line);
    attached.line('first line');
    await until(() => run.phases.includes('running'), 'running');
    attached.exit(-1);
    podman.containers.set(CONTAINER, 'running');
    podman.exitCodes.delete(CONTAINER);
    // Podman's copy of the output holds what the container printed so far, and the follow replays it.
    const copy = [...printed, 'first line'];
    podman.held.set(CONTAINER, copy);
    await until(() => podman.streams.length === 2, 'followed');
    const followed = podman.stream() ?? expect.fail('no follow');
    for (const line of [...copy, 'second line', `${marker} ended 0 0`]) followed.line(line);
    followed.exit(0);
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, phase: 'running' });
    expect(run.output).toEqual(['first line', 'second line']);
  });

  it('names the signal that ended a cancelled command, not only its exit code', async () => {
    const podman = new FakePodman('auto');
    const run = start(podman);
    await until(() => podman.stream() !== undefined, 'attached');
    const stream = podman.stream() ?? expect.fail('no stream');
    const marker = podman.markerOf(CONTAINER);
    for (const line of ['started', 'phase cloning', 'phase running']) stream.line(`${marker} ${line}`);
    run.actor.send({ type: 'cancel' });
    await until(() => podman.calls.some((c) => c.op === 'stopContainer'), 'the stop');
    stream.line(`${marker} ended 143 0`);
    stream.exit(143);
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'cancelled', exitCode: 143, signal: 'SIGTERM' });
  });

  it('lets a secret create that a cancel interrupts finish, then removes the secret', async () => {
    const podman = new FakePodman();
    const run = start(podman);
    await until(() => podman.pending('createSecret') !== undefined, 'secret create');
    run.actor.send({ type: 'cancel' });
    await settle();
    const create = podman.pending('createSecret') ?? expect.fail('create was dropped');
    expect(create.signal, 'never aborted').toBeUndefined();
    expect(run.actor.getSnapshot().matches('tearingDown')).toBe(false);
    create.succeed();
    await until(() => podman.pending('removeSecrets') !== undefined, 'teardown');
    podman.pending('removeSecrets')?.succeed();
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'cancelled', phase: 'creating' });
    expect([...podman.secrets]).toEqual([]);
    expect(podman.calls.some((c) => c.op === 'createContainer')).toBe(false);
  });

  it('lets a secret removal that the container exit overtakes finish, and teardown waits for that one', async () => {
    const podman = new FakePodman();
    const run = start(podman);
    const { removal: early, exit } = await untilRemovalWhileRunning(podman);
    exit();
    await until(() => podman.pending('removeContainers') !== undefined, 'teardown');
    podman.pending('removeContainers')?.succeed();
    await settle();
    // Not aborted (Podman rewrites its secrets file in place), and not made a second time.
    expect(early.signal, 'never aborted').toBeUndefined();
    expect(early.settled).toBe(false);
    expect(run.actor.getSnapshot().matches('done')).toBe(false);
    expect(podman.calls.filter((c) => c.op === 'removeSecrets')).toHaveLength(1);
    early.succeed();
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect([...podman.secrets, ...podman.containers.keys()]).toEqual([]);
    expect(podman.calls.filter((c) => c.op === 'removeSecrets')).toHaveLength(1);
  });

  it('removes the secrets again at teardown when the removal while it ran failed', async () => {
    const podman = new FakePodman();
    const run = start(podman);
    const { removal, exit } = await untilRemovalWhileRunning(podman);
    removal.fail('database is locked');
    exit();
    await until(() => podman.pending('removeContainers') !== undefined, 'teardown');
    podman.pending('removeContainers')?.succeed();
    await until(() => podman.pending('removeSecrets') !== undefined, 'removal at teardown');
    podman.pending('removeSecrets')?.succeed();
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect([...podman.secrets, ...podman.containers.keys()]).toEqual([]);
    expect(podman.calls.filter((c) => c.op === 'removeSecrets')).toHaveLength(2);
  });

  it('tells of a teardown step that failed once as a retry, and of one that failed twice as a warning', async () => {
    const podman = new FakePodman();
    const run = start(podman);
    const { removal, exit } = await untilRemovalWhileRunning(podman);
    removal.succeed();
    exit();
    await until(() => podman.pending('removeContainers') !== undefined, 'teardown');
    podman.pending('removeContainers')?.fail('userdata/shm: device or resource busy');
    await until(() => run.warnings.length > 0, 'the first failure told');
    expect(run.warnings).toEqual([{ message: 'teardown step failed; trying once more', retrying: true }]);
    await until(() => podman.pending('removeContainers') !== undefined, 'second try');
    podman.pending('removeContainers')?.fail('userdata/shm: device or resource busy');
    // Teardown removes the secrets too, whatever the container's removal does.
    await until(() => podman.pending('removeSecrets') !== undefined, 'removal at teardown');
    podman.pending('removeSecrets')?.succeed();
    const result = await run.result;
    expect(run.warnings).toEqual([
      { message: 'teardown step failed; trying once more', retrying: true },
      { message: 'teardown failed', retrying: false },
    ]);
    expect(result.outcome).toBe('error');
  });

  it("masks an adopted session's output with the values its container holds", async () => {
    const podman = new FakePodman('auto');
    const options = { name: CONTAINER, image: 'x', labels: {}, secrets: GIVEN_SECRET, network: 'none' };
    const rotated = 'rotated-value-the-container-has';
    podman.leaveRunning(
      { ...options, env: { AGENTD_SETUP_MARKER: '@@m@@' }, entrypoint: [], args: [] },
      new Map([['API_KEY', Buffer.from(rotated)]]),
    );
    const run = start(podman, { container: CONTAINER, phase: 'running' });
    await until(() => podman.stream() !== undefined, 'following');
    expect(run.actor.getSnapshot().matches({ live: { attached: { progress: 'running' } } })).toBe(true);
    podman.stream()?.line(`value=${rotated}`);
    podman.stream()?.exit(0);
    expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(run.output).toEqual([`value=${MASK}`]);
    // The values read back are held as SecretValue, which JSON shows as [redacted]: kept as bytes,
    // they would show as a byte array or base64, not as the plain text.
    const snapshot = JSON.stringify(run.actor.getSnapshot());
    expect(snapshot).toContain('[redacted]');
    expect(secretFormsIn(snapshot, rotated)).toEqual([]);
  });

  it("waits out an adopted session's deadline longer than setTimeout's bound instead of stopping it at once", async () => {
    const podman = new FakePodman('auto');
    const options = { name: CONTAINER, image: 'x', labels: {}, secrets: GIVEN_SECRET, network: 'none' };
    podman.leaveRunning(
      { ...options, env: { AGENTD_SETUP_MARKER: '@@m@@' }, entrypoint: [], args: [] },
      new Map([['API_KEY', Buffer.from('value')]]),
    );
    // Past 2^31-1 ms, setTimeout fires at once: the session would be stopped as timed out on adoption.
    const run = start(podman, { container: CONTAINER, phase: 'running', remainingMs: 2 ** 32 });
    await until(() => podman.stream() !== undefined, 'following');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(podman.calls.filter((c) => c.op === 'stopContainer')).toEqual([]);
    podman.stream()?.exit(0);
    expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
  });

  describe('an adopted session whose log stream ended before its output did (Podman 4 behind a slow reader)', () => {
    const options = { name: CONTAINER, image: 'x', labels: {}, secrets: GIVEN_SECRET, network: 'none' };
    const leave = (podman: FakePodman) =>
      podman.leaveRunning(
        { ...options, env: { AGENTD_SETUP_MARKER: '@@m@@' }, entrypoint: [], args: [] },
        new Map([['API_KEY', Buffer.from('value')]]),
      );

    it('reads the rest once more, skipping what the stream handed on', async () => {
      const podman = new FakePodman('auto');
      leave(podman);
      podman.held.set(CONTAINER, ['@@m@@ started', 'a', 'b', 'a', 'c', '@@m@@ ended 137 1']);
      const run = start(podman, { container: CONTAINER, phase: 'running' });
      await until(() => podman.stream() !== undefined, 'following');
      podman.stream()?.line('@@m@@ started');
      podman.stream()?.line('a');
      podman.stream()?.line('b');
      podman.stream()?.exit(137);
      // The setup step's report, read back, says what Podman cannot: the command ran out of memory.
      const result = await run.result;
      expect(result).toMatchObject({ outcome: 'failed', exitCode: 137, signal: 'SIGKILL' });
      expect(result.message).toMatch(/^out of memory/);
      expect(run.output).toEqual(['a', 'b', 'a', 'c']);
      // Once to see that Podman's copy is its first (it begins with the setup step's first line), twice
      // to catch up (to find what the stream handed on, to hand on the rest).
      expect(podman.reads).toEqual([undefined, undefined, undefined]);
    });

    /** Adopts a session whose log holds `logged`; Podman's copy is `held`, the stream hands on `followed`. */
    const adoptWith = async (
      logged: string[],
      held: string[],
      followed: string[],
      phase: 'running' | 'cloning' = 'running',
    ) => {
      const podman = new FakePodman('auto');
      leave(podman);
      const dir = makeTempDir('agentd-unit-runner-');
      const at = new Date(Date.now() - 60_000).toISOString();
      writeFileSync(
        `${dir}/0123456789abcdef.log`,
        logged.map((line, i) => `${i + 1} ${at} out ${line}\n`).join(''),
      );
      podman.held.set(CONTAINER, held);
      const run = start(podman, { container: CONTAINER, phase }, dir);
      await until(() => podman.stream() !== undefined, 'following');
      for (const line of followed) podman.stream()?.line(line);
      podman.stream()?.exit(0);
      return { run, result: await run.result };
    };

    it('hands on what the reader skipped as logged when the stream left out a logged line before it', async () => {
      // The log holds a and b; the stream left out b, so the reader took d for it.
      const { run } = await adoptWith(
        ['a', 'b'],
        ['@@m@@ started', 'a', 'b', 'c', 'd', '@@m@@ ended 0 0'],
        ['@@m@@ started', 'a', 'd'],
      );
      expect(run.output).toEqual(['c', 'd']);
    });

    it("hands on what the stream left out though it handed on the setup step's report", async () => {
      const { run, result } = await adoptWith(
        [],
        ['@@m@@ started', 'a', 'b', 'c', '@@m@@ ended 0 0'],
        ['@@m@@ started', 'a', '@@m@@ ended 0 0'],
      );
      expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual([
        'a',
        "[agentd: Podman's log stream left out some lines: they follow, out of order]",
        'b',
        'c',
      ]);
    });

    it("reads the setup step's markers the stream left out before the command started", async () => {
      const commit = `@@m@@ commit ${'a'.repeat(40)}`;
      const { run, result } = await adoptWith(
        [],
        ['@@m@@ started', '@@m@@ phase cloning', commit, '@@m@@ phase running', 'x', '@@m@@ ended 0 0'],
        ['@@m@@ started', '@@m@@ phase cloning'],
        'cloning',
      );
      expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, phase: 'running' });
      expect(run.output).toEqual(['x']);
    });

    it('does not take the last line the stream stopped inside for an earlier line it starts like', async () => {
      const output = await resumeAfterGap(
        ['x1', 'ab', 'x2', 'x3', 'abc', 'x4'],
        ['x1', 'ab', 'x2', 'x3', 'ab'],
      );
      expect(output).toEqual(['x1', 'ab', 'x2', 'x3', 'ab', 'abc', 'x4']);
    });

    it('ends a line the stream stopped inside before handing on what it left out, and hands that line on whole', async () => {
      const podman = new FakePodman('auto');
      leave(podman);
      const dir = makeTempDir('agentd-unit-runner-');
      const at = new Date(Date.now() - 60_000).toISOString();
      writeFileSync(`${dir}/0123456789abcdef.log`, `- ${at} note [agentd: 1 line(s) missing here]\n`);
      // A line in two pieces (over 64 KiB in life), and y before it that the stream left out.
      podman.held.set(CONTAINER, ['x1', 'y', { text: 'L1', end: false }, 'L2', 'z']);
      const run = start(podman, { container: CONTAINER, phase: 'running' }, dir);
      await until(() => podman.stream() !== undefined, 'following');
      podman.stream()?.line('x1');
      podman.stream()?.piece('L1', false);
      podman.stream()?.exit(0);
      expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual([
        'x1',
        'L1',
        "[agentd: Podman's log stream left out some lines: they follow, out of order]",
        'y',
        'L1L2',
        'z',
      ]);
    });

    it("does not hand on as output the setup step's markers the stream left out", async () => {
      const commit = `@@m@@ commit ${'a'.repeat(40)}`;
      const { run, result } = await adoptWith(
        [],
        ['@@m@@ started', '@@m@@ phase cloning', commit, '@@m@@ phase running', 'x', 'y', '@@m@@ ended 0 0'],
        ['@@m@@ started', '@@m@@ phase running', 'x', '@@m@@ ended 0 0'],
        'cloning',
      );
      expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual([
        'x',
        "[agentd: Podman's log stream left out some lines: they follow, out of order]",
        'y',
      ]);
    });

    it('hands on once, after a note, what the stream left out, though counting from the start would do', async () => {
      const podman = new FakePodman('auto');
      leave(podman);
      podman.held.set(CONTAINER, ['@@m@@ started', 'a', 'b', 'c', 'd', 'e', '@@m@@ ended 0 0']);
      const run = start(podman, { container: CONTAINER, phase: 'running' });
      await until(() => podman.stream() !== undefined, 'following');
      for (const line of ['@@m@@ started', 'a', 'd']) podman.stream()?.line(line);
      podman.stream()?.exit(0);
      expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual([
        'a',
        'd',
        "[agentd: Podman's log stream left out some lines: they follow, out of order]",
        'b',
        'c',
        'e',
      ]);
    });

    it("replays Podman's copy whole, after a note, when Podman emptied it past the log's last line while no daemon ran", async () => {
      const podman = new FakePodman('auto');
      leave(podman);
      const dir = makeTempDir('agentd-unit-runner-');
      const at = new Date(Date.now() - 60_000).toISOString();
      // The whole output so far, one line: counting would skip the copy's first line.
      writeFileSync(`${dir}/0123456789abcdef.log`, `1 ${at} out early\n`);
      podman.held.set(CONTAINER, ['x5', 'x6', '@@m@@ ended 0 0']);
      const run = start(podman, { container: CONTAINER, phase: 'running' }, dir);
      await until(() => podman.stream() !== undefined, 'following');
      expect(podman.stream()?.since).toBeUndefined();
      podman.stream()?.line('x5');
      podman.stream()?.line('x6');
      podman.stream()?.line('@@m@@ ended 0 0');
      podman.stream()?.exit(0);
      expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual([
        "[agentd: some output is missing: Podman's own copy was emptied before it was read]",
        'x5',
        'x6',
      ]);
      // Once to see where Podman's copy begins, once to find the log's last line in it (not there), once
      // to find what the stream handed on (all of it): each from the copy's start, never from a time.
      expect(podman.reads).toEqual([undefined, undefined, undefined]);
    });

    it('without a count, goes on after the last lines the stream handed on', async () => {
      const podman = new FakePodman('auto');
      leave(podman);
      const dir = makeTempDir('agentd-unit-runner-');
      const at = new Date(Date.now() - 60_000).toISOString();
      // A gap in the log: the count of lines handed on is not known; where it left off is found by content.
      writeFileSync(
        `${dir}/0123456789abcdef.log`,
        `- ${at} note [agentd: 1 line(s) missing here]\n2 ${at} out x0\n`,
      );
      podman.held.set(CONTAINER, ['x0', 'x1', 'x2', 'x3', 'x4', '@@m@@ ended 0 0']);
      const run = start(podman, { container: CONTAINER, phase: 'running' }, dir);
      await until(() => podman.stream() !== undefined, 'following');
      podman.stream()?.line('x0');
      podman.stream()?.line('x1');
      podman.stream()?.line('x2');
      podman.stream()?.exit(0);
      expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual(['x1', 'x2', 'x3', 'x4']);
      // Once to find the log's last line, once to find what the stream handed on, once to hand on the rest.
      expect(podman.reads).toEqual([undefined, undefined, undefined]);
    });

    /** An adopted session whose log (with a gap) holds `logged` read at `at` (and one line long before). */
    const resumeByTime = (logged: string[], held: (string | HeldPiece)[]) => {
      const podman = new FakePodman('auto');
      leave(podman);
      const dir = makeTempDir('agentd-unit-runner-');
      const now = Date.now();
      const old = new Date(now - 60_000).toISOString();
      const at = new Date(now - 30_000).toISOString();
      const records = logged.map((text, i) => `${i + 3} ${at} out ${text}`);
      writeFileSync(
        `${dir}/0123456789abcdef.log`,
        [`- ${old} note [agentd: 1 line(s) missing here]`, `2 ${old} out long before`, ...records, ''].join(
          '\n',
        ),
      );
      podman.held.set(CONTAINER, held);
      return { podman, run: start(podman, { container: CONTAINER, phase: 'running' }, dir), at };
    };

    it('resumed by time, a follow Podman ends inside the overlap: the catch-up goes on with it, nothing twice', async () => {
      const { podman, run } = resumeByTime(
        ['L1', 'L2', 'L3', 'L4'],
        ['L1', 'L2', 'L3', 'L4', 'N1', 'N2', '@@m@@ ended 0 0'],
      );
      await until(() => podman.stream() !== undefined, 'following');
      podman.stream()?.line('L1');
      podman.stream()?.line('L2');
      podman.stream()?.exit(0);
      expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual(['N1', 'N2']);
    });

    it("resumed by content, the setup step's markers it replays are neither output nor counted", async () => {
      const copy = ['long before', 's1', '@@m@@ phase running', 'L1', 'N1', '@@m@@ ended 0 0'];
      const { podman, run } = resumeByTime(['s1', 'L1'], copy);
      await until(() => podman.stream() !== undefined, 'following');
      for (const line of copy) podman.stream()?.line(line);
      podman.stream()?.exit(0);
      expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual(['N1']);
    });

    it('resumed by content, finds where the log left off on each stream, and keeps the rest', async () => {
      const podman = new FakePodman('auto');
      leave(podman);
      const dir = makeTempDir('agentd-unit-runner-');
      const now = Date.now();
      const old = new Date(now - 60_000).toISOString();
      const at = new Date(now - 30_000).toISOString();
      // The copy holds p again after the log's last line: it is output, handed on.
      writeFileSync(
        `${dir}/0123456789abcdef.log`,
        [
          `- ${old} note [agentd: 1 line(s) missing here]`,
          `2 ${old} out p`,
          `3 ${at} out q`,
          `4 ${at} err e1`,
          `5 ${at} out r`,
          '',
        ].join('\n'),
      );
      podman.held.set(CONTAINER, [
        'p',
        'q',
        { text: 'e1', stream: 'stderr' },
        { text: 'e2', stream: 'stderr' },
        'r',
        'p',
        's',
        '@@m@@ ended 0 0',
      ]);
      const run = start(podman, { container: CONTAINER, phase: 'running' }, dir);
      await until(() => podman.stream() !== undefined, 'following');
      const stream = podman.stream() ?? expect.fail('no stream');
      expect(stream.since).toBeUndefined();
      stream.line('p');
      stream.line('q');
      stream.piece('e1', true, 'stderr');
      stream.piece('e2', true, 'stderr');
      stream.line('r');
      stream.line('p');
      stream.line('s');
      stream.line('@@m@@ ended 0 0');
      stream.exit(0);
      expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual(['e2', 'p', 's']);
    });

    it.each([
      // That daemon read the exited container's log and died before it was done: its log's last line is
      // dated after the exit. Where it left off is found by content all the same.
      ['written after the container exited', 120_000, 60_000],
      ['written before the container exited', 59_000, 60_000],
    ])(
      'hands on what follows the log of an exited container %s, and says nothing',
      async (_, exitedAgoMs, writtenAgoMs) => {
        const podman = new FakePodman('auto');
        leave(podman);
        podman.exitUnwatched(CONTAINER, 0);
        podman.finishedAt.set(CONTAINER, new Date(Date.now() - exitedAgoMs).toISOString());
        const dir = makeTempDir('agentd-unit-runner-');
        const at = new Date(Date.now() - writtenAgoMs).toISOString();
        writeFileSync(
          `${dir}/0123456789abcdef.log`,
          `- ${at} note [agentd: 1 line(s) missing here]\n2 ${at} out x2\n`,
        );
        const copy = ['x1', 'x2', 'x3', '@@m@@ ended 0 0'];
        podman.held.set(CONTAINER, copy);
        const run = start(podman, { container: CONTAINER, phase: 'running', exited: true }, dir);
        await until(() => podman.stream() !== undefined, 'following');
        for (const line of copy) podman.stream()?.line(line);
        podman.stream()?.exit(0);
        expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
        expect(run.output).toEqual(['x3']);
      },
    );

    describe("found by content where the log left off, whatever the daemon's and the host's clocks say", () => {
      const NOT_FOUND =
        "[agentd: some output may be missing or repeated: where this log left off was not found in Podman's copy of the container's output (emptied or unreadable), so all of the copy follows]";

      /**
       * An adopted session whose log, trimmed (no count), holds `logged` as the daemon dated them (a
       * second apart); Podman's copy holds `copy` (then the setup step's report), each line dated by the
       * host `skew` ms from the daemon's date (`awaySkew` for those after the log's last: printed while
       * no daemon watched), and `podman logs --since` keeps those dated at or after it, as Podman does.
       * The follow replays what Podman would give it. Its output.
       */
      const clocked = async (
        logged: string[],
        copy: string[],
        {
          skew = 0,
          awaySkew = skew,
          trimmedAway = 0,
        }: { skew?: number; awaySkew?: number; trimmedAway?: number },
      ) => {
        const base = Date.now() - 60_000;
        // Podman dates a line as it takes it from the container, the daemon a little later.
        const dated = [...copy, '@@m@@ ended 0 0'].map((text, i) => ({
          text,
          at: base + i * 1000 - 50 + (i < trimmedAway + logged.length ? skew : awaySkew),
        }));
        const since = (from: string | undefined) =>
          dated.filter((line) => from === undefined || line.at >= Date.parse(from)).map((line) => line.text);
        const podman = new (class extends FakePodman {
          override readLogs(name: string, from: string | undefined, onLine: OutputHandler): AttachedRun {
            this.held.set(name, since(from));
            return super.readLogs(name, from, onLine);
          }
        })('auto');
        leave(podman);
        const dir = makeTempDir('agentd-unit-runner-');
        const records = logged.map(
          (text, i) => `${i + 101} ${new Date(base + (trimmedAway + i) * 1000).toISOString()} out ${text}`,
        );
        writeFileSync(`${dir}/0123456789abcdef.log`, `${records.join('\n')}\n`);
        const run = start(podman, { container: CONTAINER, phase: 'running' }, dir);
        await until(() => podman.stream() !== undefined, 'following');
        const stream = podman.stream() ?? expect.fail('no stream');
        for (const text of since(stream.since)) stream.line(text);
        stream.exit(0);
        expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
        return run.output;
      };
      const numbered = (from: number, to: number) =>
        Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}`);

      it.each([
        ["the host's clock 30 s behind the daemon's", -30_000, -30_000],
        ["the host's clock 30 s ahead of the daemon's", 30_000, 30_000],
        // One machine: its clock went back while no daemon watched; lines printed then are dated earlier.
        ['the clock stepped back 2 h while no daemon watched', 0, -7_200_000],
        ['the clock stepped forward 2 h while no daemon watched', 0, 7_200_000],
      ])('hands on the lines printed while away exactly once, %s', async (_, skew, awaySkew) => {
        const output = await clocked(numbered(1, 10), numbered(1, 15), { skew, awaySkew });
        expect(output).toEqual(numbered(11, 15));
      });

      it('is not misled by a line the agent printed over and over, before and after the log left off', async () => {
        const ticks = (n: number) => Array.from({ length: n }, () => 'tick');
        const output = await clocked(['start', ...ticks(9)], ['start', ...ticks(14), 'done'], {
          skew: 30_000,
        });
        expect(output).toEqual([...ticks(5), 'done']);
      });

      it('takes the earliest place when the log holds nothing but the repeated line: some may repeat, none is lost', async () => {
        // The log kept only the last 10 of the 12 ticks it handed on (trimmed); 3 more came while away.
        const ticks = (n: number) => Array.from({ length: n }, () => 'tick');
        const output = await clocked(ticks(10), ['start', ...ticks(15), 'done'], {
          skew: 30_000,
          trimmedAway: 3,
        });
        expect(output).toEqual([...ticks(5), 'done']);
      });

      it("finds the log's last lines though they held a credential the log masked and Podman's copy did not", async () => {
        const masked = (text: string) => text.replaceAll('value', MASK);
        const copy = [...numbered(1, 8), 'key=value', 'line 10', 'line 11 value', ...numbered(12, 15)];
        const output = await clocked(copy.slice(0, 10).map(masked), copy, { skew: -30_000 });
        expect(output).toEqual([`line 11 ${MASK}`, ...numbered(12, 15)]);
        expect(output.join('\n')).not.toContain('value');
      });

      it("says so, then hands on all Podman's copy holds, when the log's last lines are not in it (it was emptied)", async () => {
        const output = await clocked(numbered(1, 10), numbered(13, 15), {});
        expect(output).toEqual([NOT_FOUND, ...numbered(13, 15)]);
      });
    });

    /** An adopted session resuming from a time (its log has a gap), whose stream hands on `followed`. */
    const resumeAfterGap = async (held: string[], followed: string[]) => {
      const podman = new FakePodman('auto');
      leave(podman);
      const dir = makeTempDir('agentd-unit-runner-');
      const at = new Date(Date.now() - 60_000).toISOString();
      writeFileSync(`${dir}/0123456789abcdef.log`, `- ${at} note [agentd: 1 line(s) missing here]\n`);
      podman.held.set(CONTAINER, held);
      const run = start(podman, { container: CONTAINER, phase: 'running' }, dir);
      await until(() => podman.stream() !== undefined, 'following');
      for (const line of followed) podman.stream()?.line(line);
      podman.stream()?.exit(0);
      expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      return run.output;
    };

    it('hands on once, late and after a note, the lines the stream left out as it stopped', async () => {
      // Podman 4, stopping a follow behind a slow reader, drops the lines its reader cannot take at once.
      const output = await resumeAfterGap(
        ['x1', 'x2', 'x3', 'x4', 'x5', 'x6', '@@m@@ ended 0 0'],
        ['x1', 'x3', 'x5'],
      );
      expect(output).toEqual([
        'x1',
        'x3',
        'x5',
        "[agentd: Podman's log stream left out some lines: they follow, out of order]",
        'x2',
        'x4',
        'x6',
      ]);
    });

    it('hands on whole a line the stream stopped inside, and what came after it', async () => {
      const long = 'a line the stream stopped inside';
      const output = await resumeAfterGap(
        ['x1', 'x2', long, 'x4', '@@m@@ ended 0 0'],
        ['x1', 'x2', long.slice(0, 10)],
      );
      expect(output).toEqual(['x1', 'x2', long.slice(0, 10), long, 'x4']);
    });

    it('hands on a line repeated after the last one the stream handed on', async () => {
      const output = await resumeAfterGap(
        ['', 'x1', '', 'x2', '', '', '@@m@@ ended 0 0'],
        ['', 'x1', '', 'x2'],
      );
      expect(output).toEqual(['', 'x1', '', 'x2', '', '']);
    });

    it("hands on all Podman holds, after a note, when its copy was emptied past the stream's last lines", async () => {
      const podman = new FakePodman('auto');
      leave(podman);
      const dir = makeTempDir('agentd-unit-runner-');
      const at = new Date(Date.now() - 60_000).toISOString();
      writeFileSync(`${dir}/0123456789abcdef.log`, `- ${at} note [agentd: 1 line(s) missing here]\n`);
      podman.held.set(CONTAINER, ['y7', 'y8', '@@m@@ ended 0 0']);
      const run = start(podman, { container: CONTAINER, phase: 'running' }, dir);
      await until(() => podman.stream() !== undefined, 'following');
      podman.stream()?.line('y1');
      podman.stream()?.line('y2');
      podman.stream()?.exit(0);
      expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual([
        'y1',
        'y2',
        "[agentd: some output is missing: Podman's own copy was emptied before it was read]",
        'y7',
        'y8',
      ]);
    });
  });

  it("withholds an adopted session's output when its container's values cannot be read", async () => {
    const podman = new FakePodman();
    const options = { name: CONTAINER, image: 'x', labels: {}, secrets: GIVEN_SECRET, network: 'none' };
    podman.leaveRunning({ ...options, env: { AGENTD_SETUP_MARKER: '@@m@@' }, entrypoint: [], args: [] });
    const run = start(podman, { container: CONTAINER, phase: 'running' });
    await until(() => podman.pending('readContainerFiles') !== undefined, 'reading values');
    podman.pending('readContainerFiles')?.fail('no such container');
    await until(() => podman.stream() !== undefined, 'following');
    podman.stream()?.line(`value=${SECRET}`);
    podman.stream()?.line('more');
    podman.stream()?.exit(0);
    await until(() => podman.pending('removeContainers') !== undefined, 'teardown');
    podman.pending('removeContainers')?.succeed();
    expect(await run.result).toMatchObject({ outcome: 'succeeded' });
    expect(run.output[0]).toMatch(
      /^\[agentd: output withheld: this session was adopted after a daemon restart/,
    );
    expect(run.output.slice(1)).toEqual(['[agentd: 2 line(s) of output withheld]']);
  });

  describe('an adopted container that exited while no daemon ran', () => {
    const SECRET_NAME = 'agentd-0a1b2c3d-0123456789abcdef-0';
    /** Adopts an exited container given one secret (its label says `given`); Podman's copies are `copies`. */
    async function adoptExited(given: string, copies: Map<string, Buffer> | 'fail') {
      const podman = new FakePodman();
      const labels = { [LABEL_SECRETS]: given };
      const secrets = [{ name: SECRET_NAME, target: '/run/secrets/agentd/bundle.0' }];
      const options = { name: CONTAINER, image: 'x', labels, secrets, network: 'none' };
      podman.leaveRunning({ ...options, env: { AGENTD_SETUP_MARKER: '@@m@@' }, entrypoint: [], args: [] });
      podman.exitUnwatched(CONTAINER, 0);
      if (copies !== 'fail') podman.secretCopies.set(CONTAINER, copies);
      const run = start(podman, { container: CONTAINER, phase: 'running', exited: true });
      await until(() => podman.pending('readContainerFiles') !== undefined, 'reading values');
      podman.pending('readContainerFiles')?.fail('can only create exec sessions on running containers');
      await until(() => podman.pending('readSecretCopies') !== undefined, 'reading copies');
      if (copies === 'fail') podman.pending('readSecretCopies')?.fail('ENOENT');
      else podman.pending('readSecretCopies')?.succeed();
      await until(() => podman.stream() !== undefined, 'following');
      podman.stream()?.line(`value=${SECRET}`);
      podman.stream()?.line('more');
      podman.stream()?.exit(0);
      await until(() => podman.pending('removeContainers') !== undefined, 'teardown');
      podman.pending('removeContainers')?.succeed();
      expect(await run.result).toMatchObject({ outcome: 'succeeded' });
      return run.output;
    }
    const bundle = () => bundleCredentials([{ name: 'TOKEN', bytes: Buffer.from(SECRET) }])[0] as Buffer;

    it("masks its output with Podman's own copies of its secrets, read on this machine", async () => {
      const output = await adoptExited('1', new Map([[SECRET_NAME, bundle()]]));
      expect(output).toEqual([`value=${MASK}`, 'more']);
    });

    it('withholds its output when the copies cannot be read', async () => {
      const output = await adoptExited('1', 'fail');
      expect(output[0]).toMatch(/^\[agentd: output withheld: .*ENOENT/);
      expect(output.join('\n')).not.toContain(SECRET);
    });

    it('a cancel while it is adopted changes nothing: its log says how it ended, and nothing is stopped', async () => {
      const podman = new FakePodman();
      const labels = { [LABEL_SECRETS]: '0' };
      const options = { name: CONTAINER, image: 'x', labels, secrets: [], network: 'none' };
      podman.leaveRunning({ ...options, env: { AGENTD_SETUP_MARKER: '@@m@@' }, entrypoint: [], args: [] });
      podman.exitUnwatched(CONTAINER, 0);
      const run = start(podman, { container: CONTAINER, phase: 'running', exited: true });
      await until(() => podman.pending('readContainerFiles') !== undefined, 'reading values');
      run.actor.send({ type: 'cancel' });
      podman.pending('readContainerFiles')?.fail('can only create exec sessions on running containers');
      await until(() => podman.stream() !== undefined, 'following');
      run.actor.send({ type: 'cancel' });
      podman.stream()?.line('done');
      podman.stream()?.exit(0);
      await until(() => podman.pending('removeContainers') !== undefined, 'teardown');
      podman.pending('removeContainers')?.succeed();
      expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(run.output).toEqual(['done']);
      expect(podman.calls.filter((c) => c.op === 'stopContainer')).toEqual([]);
    });

    it('withholds its output when Podman holds fewer copies than it was given', async () => {
      const output = await adoptExited('2', new Map([[SECRET_NAME, bundle()]]));
      expect(output[0]).toMatch(/^\[agentd: output withheld: .*Podman holds 1 copies/);
      expect(output.join('\n')).not.toContain(SECRET);
    });
  });

  it("shows an adopted session's output when its container, given no secret, cannot be read back: nothing to mask", async () => {
    const podman = new FakePodman();
    // agentd's label says how many secrets it was given: none.
    const labels = { [LABEL_SECRETS]: '0' };
    const options = { name: CONTAINER, image: 'x', labels, secrets: [], network: 'none' };
    podman.leaveRunning({ ...options, env: { AGENTD_SETUP_MARKER: '@@m@@' }, entrypoint: [], args: [] });
    const run = start(podman, { container: CONTAINER, phase: 'running' });
    // As an exited container answers `podman exec`.
    await until(() => podman.pending('readContainerFiles') !== undefined, 'reading values');
    podman.pending('readContainerFiles')?.fail('can only create exec sessions on running containers');
    await until(() => podman.stream() !== undefined, 'following');
    podman.stream()?.line('one');
    podman.stream()?.line('two');
    podman.stream()?.exit(0);
    await until(() => podman.pending('removeContainers') !== undefined, 'teardown');
    podman.pending('removeContainers')?.succeed();
    expect(await run.result).toMatchObject({ outcome: 'succeeded' });
    expect(run.output).toEqual(['one', 'two']);
  });

  it('replays a withheld adopted session from the start, so a phase its record missed is not lost', async () => {
    // The earlier daemon crashed after the command started but before its record said so: the record
    // says cloning, and the log holds what it wrote. The withheld notice must not make the adoption
    // resume from now, or the `phase running` marker is never seen and the exit reads as a failed clone.
    const podman = new FakePodman();
    const marker = '@@m@@';
    const options = { name: CONTAINER, image: 'x', labels: {}, secrets: GIVEN_SECRET, network: 'none' };
    podman.leaveRunning({ ...options, env: { AGENTD_SETUP_MARKER: marker }, entrypoint: [], args: [] });
    const dir = makeTempDir('agentd-unit-runner-');
    const at = new Date(Date.now() - 1000).toISOString();
    writeFileSync(`${dir}/0123456789abcdef.log`, `1 ${at} out Cloning into repo...\n2 ${at} out before\n`);
    // Podman's copy is its first: it begins with the setup step's first line.
    podman.held.set(CONTAINER, [`${marker} started`]);
    const run = start(podman, { container: CONTAINER, phase: 'cloning' }, dir);
    await until(() => podman.pending('readContainerFiles') !== undefined, 'reading values');
    podman.pending('readContainerFiles')?.fail('no such container');
    await until(() => podman.stream() !== undefined, 'following');
    const stream = podman.stream() ?? expect.fail('no stream');
    expect(stream.since, 'replayed from the start').toBeUndefined();
    for (const line of ['started', 'phase cloning']) stream.line(`${marker} ${line}`);
    stream.line('Cloning into repo...');
    stream.line(`${marker} phase running`);
    stream.line('before');
    stream.line('after');
    stream.line(`${marker} ended 0 0`);
    stream.exit(0);
    await until(() => podman.pending('removeContainers') !== undefined, 'teardown');
    podman.pending('removeContainers')?.succeed();
    expect(await run.result).toMatchObject({ outcome: 'succeeded', exitCode: 0, phase: 'running' });
    expect(run.phases).toContain('running');
    expect(run.output.slice(1)).toEqual(['[agentd: 1 line(s) of output withheld]']);
  });

  describe('an adopted container that exited before its command was seen to start', () => {
    /** Adopts a container whose record said cloning; its log replays `lines`, then it has exited with `code`. */
    async function replay(lines: string[], code: number) {
      const podman = new FakePodman();
      const marker = '@@m@@';
      const options = { name: CONTAINER, image: 'x', labels: {}, secrets: GIVEN_SECRET, network: 'none' };
      podman.leaveRunning({ ...options, env: { AGENTD_SETUP_MARKER: marker }, entrypoint: [], args: [] });
      const run = start(podman, { container: CONTAINER, phase: 'cloning' });
      await until(() => podman.pending('readContainerFiles') !== undefined, 'reading values');
      podman.pending('readContainerFiles')?.fail('can only create exec sessions on running containers');
      await until(() => podman.stream() !== undefined, 'following');
      const stream = podman.stream() ?? expect.fail('no stream');
      for (const line of lines) stream.line(line.replaceAll('MARKER', marker));
      stream.exit(code);
      await until(() => podman.pending('removeContainers') !== undefined, 'teardown');
      podman.pending('removeContainers')?.succeed();
      return run.result;
    }

    it('says the clone failed when its log shows the clone began and no command after it', async () => {
      const result = await replay(
        ['MARKER started', 'MARKER phase cloning', 'fatal: repository not found', 'MARKER ended 128 0'],
        128,
      );
      expect(result).toMatchObject({ outcome: 'failed', exitCode: 128, phase: 'cloning' });
      expect(result.message).toMatch(/^git clone of .* failed/);
    });

    it('says the setup failed, not the clone, when its log shows the step ended before the clone began', async () => {
      const result = await replay(
        ['MARKER started', 'agentd: cap_add needs setpriv', 'MARKER ended 126 0'],
        126,
      );
      expect(result).toMatchObject({ outcome: 'failed', exitCode: 126, phase: 'creating' });
      expect(result.message).toMatch(/^setup failed: /);
    });

    it('does not guess when its log no longer holds the first lines of the setup step (Podman emptied it) and the report is not 0', async () => {
      // A failed clone reports its own status too: 128 may be git's or the command's.
      const result = await replay(
        ['the last lines of a command that printed a lot', 'MARKER ended 128 0'],
        128,
      );
      expect(result).toMatchObject({ outcome: 'error', exitCode: 128, phase: 'cloning' });
      expect(result.message).toMatch(/whether the clone failed or the command ran is not known/);
    });

    it("takes a report of status 0 for the command's when its log no longer holds the setup step's first lines", async () => {
      // A session printing more than Podman's 4 MiB log bound while no daemon watched: only the step's
      // report of the command's end is left of its markers, and only a command that ran reports 0.
      const result = await replay(['the last lines of a command that printed a lot', 'MARKER ended 0 0'], 0);
      expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, phase: 'running' });
    });
  });

  it('resumes a withheld adopted session from its last line, not from the withheld notice', async () => {
    // A log with a gap note cannot say how many lines it holds: the follow resumes from its last
    // line's time. agentd's own notice, written on adoption, must not move that point to now.
    const podman = new FakePodman();
    // The notice reaches the file while the container is inspected.
    podman.inspectDelayMs = 50;
    const options = { name: CONTAINER, image: 'x', labels: {}, secrets: GIVEN_SECRET, network: 'none' };
    podman.leaveRunning({ ...options, env: { AGENTD_SETUP_MARKER: '@@m@@' }, entrypoint: [], args: [] });
    const dir = makeTempDir('agentd-unit-runner-');
    const at = new Date(Date.now() - 60_000).toISOString();
    writeFileSync(
      `${dir}/0123456789abcdef.log`,
      `- ${at} note [agentd: 1 line(s), 9 bytes of output are missing here]\n2 ${at} out before\n`,
    );
    const run = start(podman, { container: CONTAINER, phase: 'running' }, dir);
    await until(() => podman.pending('readContainerFiles') !== undefined, 'reading values');
    podman.pending('readContainerFiles')?.fail('no such container');
    await until(() => podman.stream() !== undefined, 'following');
    expect(podman.stream()?.since).toBe(at);
    podman.stream()?.exit(0);
    await until(() => podman.pending('removeContainers') !== undefined, 'teardown');
    podman.pending('removeContainers')?.succeed();
    expect(await run.result).toMatchObject({ outcome: 'succeeded' });
  });

  it('makes the same podman calls for ten credentials and a repo token as for one', async () => {
    const podman = new FakePodman('auto');
    const credentials = Array.from({ length: 10 }, (_, i) => ({
      name: `CRED_${i}`,
      value: new SecretValue(`${SECRET}-${i}`),
    }));
    const run = start(podman, undefined, undefined, { credentials, repoToken: new SecretValue(REPO_TOKEN) });
    await until(() => podman.stream() !== undefined, 'attached');
    const stream = podman.stream() ?? expect.fail('no stream');
    const marker = podman.markerOf(CONTAINER);
    for (const line of ['started', 'phase cloning', 'phase running']) stream.line(`${marker} ${line}`);
    stream.line(`third=${SECRET}-3 token=${REPO_TOKEN}`);
    stream.line(`${marker} ended 0 0`);
    stream.exit(0);
    expect(await run.result).toMatchObject({ outcome: 'succeeded' });
    expect(podman.calls.map((c) => c.op)).toEqual([
      'createSecret',
      'runAttached',
      'removeSecrets',
      'removeContainers',
    ]);
    expect(podman.created[0]?.secrets).toEqual([
      { name: expect.stringMatching(/-0$/), target: '/run/secrets/agentd/bundle.0' },
    ]);
    const [bundle] = [...podman.values.values()];
    expect(unbundle(new Map([['bundle.0', bundle as Buffer]])).map(String)).toEqual([
      ...credentials.map((_, i) => `${SECRET}-${i}`),
      REPO_TOKEN,
    ]);
    expect(run.output).toEqual([`third=${MASK} token=${MASK}`]);
    expect([...podman.secrets, ...podman.containers.keys()]).toEqual([]);
  });

  describe("a podman run whose attachment lost the container's last lines (Podman 4.3 under load)", () => {
    /** What the setup step and the agent's command printed, as Podman's log of the container holds it. */
    const printed = (marker: string, end = 'ended 0 0'): (string | HeldPiece)[] => [
      `${marker} started`,
      `${marker} phase cloning`,
      "Cloning into '/home/demo/repo'...",
      `${marker} commit ${'a'.repeat(40)}`,
      `${marker} phase running`,
      `key=${SECRET}`,
      { text: 'warning: on stderr', stream: 'stderr' },
      'second line',
      `${marker} ${end}`,
    ];
    const NOTE =
      "[agentd: Podman's attachment did not hand on all the container printed: the rest was read from Podman's log of it]";

    /** Runs a session whose `podman run` hands on `attached` of what the log holds, then exits with `code`. */
    async function lossy(attached: number, code = 0, held?: (marker: string) => (string | HeldPiece)[]) {
      const podman = new FakePodman('auto');
      const run = start(podman);
      await until(() => podman.stream() !== undefined, 'attached');
      const stream = podman.stream() ?? expect.fail('no stream');
      const marker = podman.markerOf(CONTAINER);
      const log = held ? held(marker) : printed(marker);
      podman.held.set(CONTAINER, log);
      for (const piece of log.slice(0, attached)) {
        if (typeof piece === 'string') stream.line(piece);
        else stream.piece(piece.text, piece.end ?? true, piece.stream);
      }
      stream.exit(code);
      const result = await run.result;
      return { podman, run, result };
    }

    it("reads the exited container's log once and hands on only the lines the attachment did not", async () => {
      // The attachment got the setup step's first lines (a clone's line among them), then nothing.
      const { podman, run, result } = await lossy(3);
      expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, phase: 'running' });
      expect(run.phases).toEqual(['creating', 'cloning', 'running', 'tearing_down']);
      // Each line once, masked as ever; the note says where the rest came from.
      expect(run.output).toEqual([
        "Cloning into '/home/demo/repo'...",
        NOTE,
        `key=${MASK}`,
        'warning: on stderr',
        'second line',
      ]);
      // One read of the log (after a look at its first line: Podman's copy was not emptied).
      expect(podman.reads).toEqual([undefined, undefined]);
    });

    it('reads it all from the log when the attachment handed on nothing, not even the first line', async () => {
      const { run, result } = await lossy(0);
      expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, phase: 'running' });
      expect(run.phases).toEqual(['creating', 'cloning', 'running', 'tearing_down']);
      expect(run.output).toEqual([
        NOTE,
        "Cloning into '/home/demo/repo'...",
        `key=${MASK}`,
        'warning: on stderr',
        'second line',
      ]);
    });

    it("decides by the command's report the log holds: its exit code and an out-of-memory kill", async () => {
      const { run, result } = await lossy(7, 137, (marker) => printed(marker, 'ended 137 1'));
      expect(result).toMatchObject({ outcome: 'failed', exitCode: 137, phase: 'running' });
      expect(result.message).toMatch(/^out of memory \(limit \S+\): command killed by SIGKILL/);
      expect(run.output).toEqual([
        "Cloning into '/home/demo/repo'...",
        `key=${MASK}`,
        'warning: on stderr',
        NOTE,
        'second line',
      ]);
    });

    it('says the output is incomplete, not that the setup failed, when the log lacks the report too', async () => {
      const { run, result } = await lossy(1, 0, (marker) => [`${marker} started`]);
      expect(result).toMatchObject({ outcome: 'error', exitCode: 0, phase: 'creating' });
      expect(result.message).toMatch(/^the session's output is incomplete: the container exited with code 0/);
      expect(result.message).not.toMatch(/setup failed/);
      expect(run.output).toEqual([]);
    });

    it('says so too when nothing came at all, rather than that Podman failed to start the container', async () => {
      const { result } = await lossy(0, 0, () => []);
      expect(result).toMatchObject({ outcome: 'error', exitCode: 0, phase: 'creating' });
      expect(result.message).toMatch(/^the session's output is incomplete/);
    });

    it('still says the setup failed, with its own words, when it did: nothing is handed on twice', async () => {
      const { run, result } = await lossy(2, 1, (marker) => [
        `${marker} started`,
        'agentd: uid 61000, which agentd gives the agent, is taken in this image',
      ]);
      expect(result).toMatchObject({ outcome: 'failed', exitCode: 1, phase: 'creating' });
      expect(result.message).toBe(
        'setup failed: agentd: uid 61000, which agentd gives the agent, is taken in this image',
      );
      expect(run.output).toEqual(['agentd: uid 61000, which agentd gives the agent, is taken in this image']);
    });

    it("reads no log when the command's report came, nor after podman itself failed to start the container", async () => {
      const complete = await lossy(9);
      expect(complete.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(complete.podman.reads).toEqual([]);
      expect(complete.run.output).not.toContain(NOTE);
      const refused = await lossy(0, 125, () => []);
      expect(refused.result).toMatchObject({ outcome: 'error', phase: 'creating' });
      expect(refused.podman.reads).toEqual([]);
    });
  });

  it('cuts a podman run short that a cancel finds before the setup step started, and removes what it made', async () => {
    const podman = new FakePodman('auto');
    const run = start(podman);
    await until(() => podman.stream() !== undefined, 'attached');
    run.actor.send({ type: 'cancel' });
    await until(() => podman.stream()?.signal?.aborted === true, 'the run cut short');
    // podman stop could miss a container podman run is still making: it is not what stops this one.
    expect(podman.calls.some((c) => c.op === 'stopContainer')).toBe(false);
    podman.stream()?.exit(143);
    expect(await run.result).toMatchObject({ outcome: 'cancelled', phase: 'creating' });
    expect(podman.calls.filter((c) => c.op === 'removeContainers').map((c) => c.names)).toEqual([
      [CONTAINER],
    ]);
    expect([...podman.secrets, ...podman.containers.keys()]).toEqual([]);
  });

  it('gives a session stopped before its command ran no exit code: podman run cut short exits 0, the setup step by the stop', async () => {
    // `podman run` that gets SIGTERM while it creates the container exits 0 (measured with Podman
    // 4.3): that was the cancelled session's "exit code 0", as if its command had run and succeeded.
    const cutShort = new FakePodman('auto');
    const early = start(cutShort);
    await until(() => cutShort.stream() !== undefined, 'attached');
    early.actor.send({ type: 'cancel' });
    await until(() => cutShort.stream()?.signal?.aborted === true, 'the run cut short');
    cutShort.stream()?.exit(0);
    const cancelled = await early.result;
    expect(cancelled).toMatchObject({ outcome: 'cancelled', phase: 'creating' });
    expect(cancelled).not.toHaveProperty('exitCode');
    expect(cancelled).not.toHaveProperty('signal');
    // Stopped while it clones: 143 is the setup step's end by the stop, not the command's.
    const cloning = new FakePodman('auto');
    const late = start(cloning);
    await until(() => cloning.stream() !== undefined, 'attached');
    const stream = cloning.stream() ?? expect.fail('no stream');
    const marker = cloning.markerOf(CONTAINER);
    for (const line of ['started', 'phase cloning']) stream.line(`${marker} ${line}`);
    late.actor.send({ type: 'cancel' });
    await until(() => cloning.calls.some((c) => c.op === 'stopContainer'), 'the stop');
    stream.exit(143);
    const stopped = await late.result;
    expect(stopped).toMatchObject({ outcome: 'cancelled', phase: 'cloning' });
    expect(stopped).not.toHaveProperty('exitCode');
    expect(stopped).not.toHaveProperty('signal');
  });
  it('has the outcome decided when its teardown begins, as the run ends with it (kept for a restarted daemon)', async () => {
    // Cancelled while podman run created the container: the run cut short exits 0, no exit code.
    const cutShort = new FakePodman('auto');
    const early = start(cutShort);
    await until(() => cutShort.stream() !== undefined, 'attached');
    early.actor.send({ type: 'cancel' });
    await until(() => cutShort.stream()?.signal?.aborted === true, 'the run cut short');
    cutShort.stream()?.exit(0);
    const { timings: _early, ...cancelled } = await early.result;
    expect(early.decided).toEqual([cancelled]);
    expect(cancelled).toEqual({
      outcome: 'cancelled',
      phase: 'creating',
      message: 'session cancelled while creating',
    });
    // Cancelled while its command ran: the stop's exit code and signal are there at the teardown's start.
    const podman = new FakePodman('auto');
    const late = start(podman);
    await until(() => podman.stream() !== undefined, 'attached');
    const stream = podman.stream() ?? expect.fail('no stream');
    const marker = podman.markerOf(CONTAINER);
    for (const line of ['started', 'phase cloning', 'phase running']) stream.line(`${marker} ${line}`);
    late.actor.send({ type: 'cancel' });
    await until(() => podman.calls.some((c) => c.op === 'stopContainer'), 'the stop');
    stream.exit(143);
    const { timings: _late, ...stopped } = await late.result;
    expect(stopped).toMatchObject({
      outcome: 'cancelled',
      phase: 'running',
      exitCode: 143,
      signal: 'SIGTERM',
    });
    expect(late.decided).toEqual([stopped]);
  });
  it("keeps the command's own outcome when a cancel or the deadline comes after its end was reported, while its output is archived", async () => {
    // The command exited 0 and the setup step said so; it archives /agentd/out (seconds for a large
    // one) when the cancel comes: the stop ends the container (137: Podman's SIGKILL after the grace),
    // yet the command succeeded. It was `cancelled, exit code 137 (SIGKILL)`.
    const podman = new FakePodman('auto');
    const run = start(podman);
    await until(() => podman.stream() !== undefined, 'attached');
    const stream = podman.stream() ?? expect.fail('no stream');
    const marker = podman.markerOf(CONTAINER);
    for (const line of ['started', 'phase cloning', 'phase running', 'ended 0 0'])
      stream.line(`${marker} ${line}`);
    // The report is read before the cancel comes.
    for (let i = 0; i < 5; i++) await settle();
    run.actor.send({ type: 'cancel' });
    await until(() => podman.calls.some((c) => c.op === 'stopContainer'), 'the stop');
    stream.exit(137);
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'succeeded', kind: 'success', exitCode: 0, phase: 'running' });
    expect(result).not.toHaveProperty('signal');
    // A cancel that came before the report (the command was stopped): cancelled, with the command's
    // status as the step reported it, not the container's SIGKILL.
    const stopped = new FakePodman('auto');
    const early = start(stopped);
    await until(() => stopped.stream() !== undefined, 'attached');
    const second = stopped.stream() ?? expect.fail('no stream');
    const mark = stopped.markerOf(CONTAINER);
    for (const line of ['started', 'phase cloning', 'phase running']) second.line(`${mark} ${line}`);
    early.actor.send({ type: 'cancel' });
    await until(() => stopped.calls.some((c) => c.op === 'stopContainer'), 'the stop');
    second.line(`${mark} ended 143 0`);
    second.exit(137);
    expect(await early.result).toMatchObject({
      outcome: 'cancelled',
      phase: 'running',
      exitCode: 143,
      signal: 'SIGTERM',
    });
  });
});
