/**
 * The runner over a remote host whose connection drops: the session is not lost at once. Its container
 * runs on; the runner follows it again when the host answers (and reads the real exit code from the
 * engine, not from the dropped stream), or settles it `abandoned` after the grace period.
 */
import { describe, expect, it } from 'vitest';
import { createActor, toPromise } from 'xstate';
import type { AgentConfig } from '../../src/config/types.js';
import { runnerMachineFor } from '../../src/machines/runner.machine.js';
import { runnerActors } from '../../src/runner/actors.js';
import { MASK } from '../../src/runner/mask.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import type { RunResult } from '../../src/sessions/types.js';
import { FakePodman, type Stream } from '../helpers/fake-podman.js';
import { AGENTS, request, resolvedCredentials, SECRET, settle } from '../helpers/machine-fakes.js';
import { makeTempDir } from '../helpers/resources.js';

const CONTAINER = 'agentd-eeeeeeee-demo-0123456789abcdef';

function start(podman: FakePodman, grace = 60_000) {
  const { repoToken: _none, ...agent } = AGENTS[0] as AgentConfig;
  const session = assembleSession(request('0123456789abcdef'), agent, {
    credentials: resolvedCredentials().credentials,
  });
  const dir = makeTempDir('agentd-unit-runner-hosts-');
  const output: string[] = [];
  const warnings: string[] = [];
  const machine = runnerMachineFor({
    instanceId: 'e'.repeat(32),
    stopGraceMs: 1000,
    workDir: '/var/lib/agentd/work',
    hostDownGraceMs: grace,
    // Long: the tests say when the host is back, except where they say otherwise.
    hostRetryMs: 3_600_000,
    // Behind a connection: created, started and removed in calls of their own (RunPlan.mode).
    connectedHosts: ['b1'],
  }).provide({
    actors: runnerActors(podman, {
      logFile: (id) => `${dir}/${id}.log`,
      logMaxBytes: 100_000,
      line: (_, line) => output.push(line.text),
    }),
    actions: { warn: (_, { message }) => warnings.push(message) },
  });
  const actor = createActor(machine, { input: { session, host: 'b1' } }).start();
  return { actor, output, warnings, result: toPromise(actor) as Promise<RunResult> };
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

describe('a session whose host stops answering', () => {
  it('waits, follows its container again when the host is back, and ends with the real exit code', async () => {
    const podman = remote();
    const run = start(podman);
    const first = await toRunning(podman);
    first.line('before');
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
    again.line('before');
    again.line(`after ${SECRET}`);
    again.exit(7);
    const result = await run.result;
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 7, phase: 'running' });
    expect(run.output).toEqual(['before', `after ${MASK}`]);
    expect([...podman.secrets, ...podman.containers.keys()]).toEqual([]);
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
