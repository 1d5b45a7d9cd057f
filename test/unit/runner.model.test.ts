/**
 * Model-based tests of the runner machine, without Podman: xstate/graph walks the machine as a pure
 * transition function over every event that can reach it (cancel, the deadline, each podman call
 * ending well or badly, the setup step's markers, the container exiting or its stream breaking, the
 * teardown retry), and every shortest path is replayed against a real runner actor whose actors run
 * over a fake PodmanPort (test/helpers/fake-podman.ts): the replay settles the fake's calls as the
 * path says. After every step the actor must be where the model is; after every path the run is
 * driven to its end (a cancel, every call succeeding) and must keep the invariants:
 *
 * - teardown always runs, and nothing the run created is left in Podman unless teardown said so;
 * - exactly one outcome, decided once (the first decision stands), whatever came after;
 * - teardown never starts while a create is still in flight (an aborted create may still make its object);
 * - no credential value in any snapshot.
 */
import { describe, expect, it } from 'vitest';
import { type AnyStateNode, createActor, fromPromise, SimulatedClock, type SnapshotFrom } from 'xstate';
import { getShortestPaths, type StatePath } from 'xstate/graph';
import type { AgentConfig } from '../../src/config/types.js';
import {
  type AdoptedSession,
  type RunnerEvent,
  type RunnerInput,
  runnerMachineFor,
} from '../../src/machines/runner.machine.js';
import { runnerActors, type ScreenOutputInput } from '../../src/runner/actors.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import type { RunResult } from '../../src/sessions/types.js';
import { FakePodman } from '../helpers/fake-podman.js';
import {
  AGENTS,
  REPO_TOKEN,
  request,
  resolvedCredentials,
  SECRET,
  settle,
} from '../helpers/machine-fakes.js';
import { makeTempDir } from '../helpers/resources.js';

/** Sessions on host `remote` are created, started and removed in calls of their own; the others run with one `podman run`. */
const SETTINGS = {
  instanceId: 'f'.repeat(32),
  stopGraceMs: 2000,
  workDir: '/var/lib/agentd/work',
  connectedHosts: ['remote'],
};
const machine = runnerMachineFor(SETTINGS);
type Snapshot = SnapshotFrom<typeof machine>;
type Step = StatePath<Snapshot, RunnerEvent>['steps'][number];
const TIMEOUT_MS = 60_000;

function node(path: string): AnyStateNode {
  return machine.getStateNodeById(`runner.${path}`);
}

/** The id XState gives the invoke of a state. */
function invokeOf(path: string): string {
  const id = node(path).invoke[0]?.id;
  if (id === undefined) throw new Error(`${path} invokes nothing`);
  return id;
}

/** The event type of a state's delayed transition. */
function afterOf(path: string): string {
  const type = [...node(path).transitions.keys()].find((t) => t.startsWith('xstate.after.'));
  if (type === undefined) throw new Error(`${path} has no delayed transition`);
  return type;
}

const DEADLINE = afterOf('live');
const STOP = invokeOf('live.attached.stop.stopping');
const EARLY_REMOVAL = invokeOf('live.attached.secrets.removing');
const READ_VALUES = invokeOf('live.adopting');
/** The output archive's search: no podman call, settled by the replay like one. */
const SCREEN = invokeOf('tearingDown.container.screening');
const TEARDOWN: Record<string, { op: 'removeSecrets' | 'removeContainers' }> = {
  [invokeOf('tearingDown.secrets.removing')]: { op: 'removeSecrets' },
  [invokeOf('tearingDown.secrets.removingAgain')]: { op: 'removeSecrets' },
  [invokeOf('tearingDown.container.removing')]: { op: 'removeContainers' },
  [invokeOf('tearingDown.container.removingAgain')]: { op: 'removeContainers' },
};
const RETRIES = [afterOf('tearingDown.secrets.retrying'), afterOf('tearingDown.container.retrying')];
const FAILURE = new Error('podman: injected failure');

function alphabet(adopted: boolean): RunnerEvent[] {
  const events: { type: string; [key: string]: unknown }[] = [
    { type: 'cancel' },
    { type: DEADLINE },
    { type: 'podman.done' },
    { type: 'podman.failed', error: FAILURE },
    { type: 'setup.started' },
    { type: 'setup.cloning' },
    { type: 'setup.running' },
    { type: 'container.exited', exitCode: 0, stderr: '', setupOutput: [] },
    // Exit 0 without the setup step's report, neither attached nor in the log: a new session's only.
    ...(adopted
      ? []
      : [{ type: 'container.exited', exitCode: 0, stderr: '', setupOutput: [], outputIncomplete: true }]),
    { type: 'container.lost', error: FAILURE },
    ...[STOP, EARLY_REMOVAL, SCREEN, ...Object.keys(TEARDOWN)].flatMap((id) => [
      { type: `xstate.done.actor.${id}` },
      { type: `xstate.error.actor.${id}`, error: FAILURE },
    ]),
    ...[READ_VALUES].flatMap((id) => [
      { type: `xstate.done.actor.${id}`, output: [] },
      { type: `xstate.error.actor.${id}`, error: FAILURE },
    ]),
    ...RETRIES.map((type) => ({ type })),
  ];
  // Delayed and invoke events are not RunnerEvents; the walk feeds them to the machine all the same.
  return events as RunnerEvent[];
}

function describeEvent(event: { type: string; exitCode?: unknown; outputIncomplete?: unknown }): string {
  const short = event.type
    .replace(/^xstate\.(done|error)\.actor\.\d+\.runner\./, '$1:')
    .replace(/^xstate\.after\.(\w+)\.runner\..*$/, 'after:$1');
  const incomplete = event.outputIncomplete ? ', incomplete' : '';
  return event.exitCode === undefined ? short : `${short}(${String(event.exitCode)}${incomplete})`;
}

/**
 * A vertex of the walk: where the machine is and what it knows (its fate, what it made). Shortest paths
 * to every vertex reach every state with every fate, created object and teardown problem it can have.
 */
function key(s: Snapshot): string {
  const c = s.context;
  return JSON.stringify([
    s.value,
    c.fate?.outcome ?? null,
    c.fate?.phase ?? null,
    c.secretsClaimed,
    c.secretsRemoved,
    c.container !== undefined,
    c.exitCode ?? null,
    c.teardownProblems.length,
  ]);
}

/** One credential (so one secret: the create loop is walked once round) and no repo token. */
function input(adopted?: AdoptedSession, host?: string): RunnerInput {
  const { repoToken: _none, ...agent } = AGENTS[0] as AgentConfig;
  const { credentials } = resolvedCredentials();
  const session = assembleSession({ ...request('0123456789abcdef'), timeoutMs: TIMEOUT_MS }, agent, {
    credentials,
  });
  return { session, ...(adopted === undefined ? {} : { adopted }), ...(host === undefined ? {} : { host }) };
}

function paths(runnerInput: RunnerInput) {
  return getShortestPaths(machine, {
    input: runnerInput,
    events: alphabet(runnerInput.adopted !== undefined),
    filterEvents: (s, e) => s.can(e),
    serializeState: (s) => key(s),
    limit: 100_000,
  });
}

/** Shortest paths form a tree: replaying the leaves replays every step of every path. */
function leaves<T extends { steps: { event: { type: string } }[] }>(all: T[]): T[] {
  const id = (p: T, n: number) => JSON.stringify(p.steps.slice(1, n).map((s) => s.event));
  const prefixes = new Set(all.flatMap((p) => p.steps.slice(1, -1).map((_, i) => id(p, i + 2))));
  return all.filter((p) => !prefixes.has(id(p, p.steps.length)));
}

interface Run {
  actor: ReturnType<typeof createActor<typeof machine>>;
  podman: FakePodman;
  /** The phase an adopted run began in. */
  adoptedPhase?: string;
  /** The path has had the command start (`setup.running`). */
  commandStarted?: boolean;
  clock: SimulatedClock;
  announced: string[];
  warnings: string[];
  output: string[];
  /** Searches of the output archive under way, settled as the path says. */
  screens: { resolve: () => void; reject: (error: Error) => void }[];
}

/** The run being replayed: the provided machine, built once (building one costs milliseconds), reaches it through here. */
let current: Omit<Run, 'actor'> | undefined;
const now = (): Omit<Run, 'actor'> => current ?? expect.fail('no run is being replayed');

/** A PodmanPort that forwards to the current run's fake. */
const port = new Proxy({} as FakePodman, {
  get: (_, name: keyof FakePodman) => {
    const podman = now().podman;
    const member = podman[name];
    return typeof member === 'function' ? member.bind(podman) : member;
  },
});

let provided: ReturnType<typeof machine.provide> | undefined;

function providedMachine() {
  if (provided) return provided;
  // One log dir for the file's runs, made with the machine (this is called once per replayed path).
  const dir = makeTempDir('agentd-unit-runner-');
  provided = machine.provide({
    actors: {
      ...runnerActors(port, {
        logFile: (id) => `${dir}/${id}.log`,
        logMaxBytes: 100_000,
        line: (_, line) => now().output.push(line.text),
      }),
      screenOutput: fromPromise<void, ScreenOutputInput>(
        () => new Promise((resolve, reject) => now().screens.push({ resolve, reject })),
      ),
    },
    actions: {
      announcePhase: (_, { phase }) => now().announced.push(phase),
      warn: (_, { message }) => now().warnings.push(message),
    },
  });
  return provided;
}

function start(runnerInput: RunnerInput, podman: FakePodman): Run {
  const clock = new SimulatedClock();
  current = {
    podman,
    clock,
    announced: [],
    warnings: [],
    output: [],
    screens: [],
    ...(runnerInput.adopted === undefined ? {} : { adoptedPhase: runnerInput.adopted.phase }),
  };
  const actor = createActor(providedMachine(), { input: runnerInput, clock }).start();
  return { ...current, actor };
}

/** Makes the fake do what the path's event says happened. */
function apply(run: Run, event: RunnerEvent): void {
  const { podman, actor } = run;
  const e = event as { type: string; exitCode?: number; outputIncomplete?: true };
  const stream = () => podman.stream() ?? expect.fail(`no open stream for ${e.type}`);
  const call = (op: Parameters<FakePodman['pending']>[0]) =>
    podman.pending(op) ?? expect.fail(`no pending ${op} for ${describeEvent(e)}`);
  const marker = () => podman.markerOf(stream().container);
  const done = /^xstate\.(done|error)\.actor\.(.*)$/.exec(e.type);
  if (e.type === 'cancel') actor.send({ type: 'cancel' });
  // A delayed event is delivered as its timer would (the two teardown retries may be due at the same
  // instant; the model takes them one at a time). The simulated clock fires the rest in finish().
  else if (e.type === DEADLINE || RETRIES.includes(e.type)) actor.send(event);
  else if (e.type === 'podman.done' || e.type === 'podman.failed') {
    const create = podman.pending('createSecret') ?? call('createContainer');
    if (e.type === 'podman.done') create.succeed();
    else create.fail();
  } else if (e.type === 'setup.started') stream().line(`${marker()} started`);
  else if (e.type === 'setup.cloning') stream().line(`${marker()} phase cloning`);
  else if (e.type === 'setup.running') {
    run.commandStarted = true;
    stream().line(`${marker()} phase running`);
  } else if (e.type === 'container.exited') {
    // The log of a container adopted while cloning holds the setup step's first lines, which its replay
    // reads (a log Podman emptied is the runner tests' case): how the machine knows the clone began.
    if (run.adoptedPhase === 'cloning' && !run.commandStarted) {
      stream().line(`${marker()} started`);
      stream().line(`${marker()} phase cloning`);
    }
    // A container's setup step reports how it ended before it exits 0; a path without the report is
    // one whose output Podman lost, in the attachment and in its log (which the fake holds empty).
    if (!e.outputIncomplete) stream().line(`${marker()} ended ${e.exitCode ?? 0} 0`);
    stream().exit(e.exitCode ?? 0);
  } else if (e.type === 'container.lost') stream().lose(FAILURE);
  else if (done && done[2] === SCREEN) {
    const screen =
      run.screens.shift() ?? expect.fail(`no search of the output under way for ${describeEvent(e)}`);
    if (done[1] === 'done') screen.resolve();
    else screen.reject(FAILURE);
  } else if (done) {
    const id = done[2] as string;
    const op =
      id === STOP
        ? 'stopContainer'
        : id === EARLY_REMOVAL
          ? 'removeSecrets'
          : id === READ_VALUES
            ? 'readContainerFiles'
            : TEARDOWN[id]?.op;
    if (!op) throw new Error(`no fake call for ${e.type}`);
    if (done[1] === 'done') call(op).succeed();
    else call(op).fail();
  } else throw new Error(`the replay does not know ${e.type}`);
}

/** Drives a run to its end: a cancel, and every podman call succeeding; a stopped container exits. */
async function finish(run: Run): Promise<void> {
  const { actor, podman } = run;
  for (let i = 0; i < 20 && actor.getSnapshot().status === 'active'; i++) {
    actor.send({ type: 'cancel' });
    await settle();
    for (const c of podman.unsettled()) c.succeed();
    for (const screen of run.screens.splice(0)) screen.resolve();
    await settle();
    if (podman.calls.some((c) => c.op === 'stopContainer' && c.settled)) podman.stream()?.exit(143);
    // A `podman run` cut short ends once its container has.
    if (podman.stream()?.signal?.aborted) podman.stream()?.exit(143);
    run.clock.increment(1000);
    await settle();
  }
}

function expectNoCredential(run: Run, at: string): void {
  const forms = [JSON.stringify(run.actor.getSnapshot())];
  for (const form of forms) {
    expect(form.includes(SECRET) || form.includes(REPO_TOKEN), `${at}: credential in a snapshot`).toBe(false);
  }
}

async function replay(path: StatePath<Snapshot, RunnerEvent>, runnerInput: RunnerInput, podman: FakePodman) {
  const name =
    path.steps
      .slice(1)
      .map((s) => describeEvent(s.event))
      .join(' → ') || '(start)';
  const run = start(runnerInput, podman);
  await settle();
  let decided: RunResult['outcome'] | undefined;
  for (const [index, step] of path.steps.entries() as IterableIterator<[number, Step]>) {
    const at = `${name}, step ${index} (${describeEvent(step.event)})`;
    if (index > 0) {
      apply(run, step.event);
      await settle();
    }
    const snapshot = run.actor.getSnapshot();
    expect(snapshot.value, at).toEqual(step.state.value);
    expect(snapshot.context.fate?.outcome, at).toEqual(step.state.context.fate?.outcome);
    expect(snapshot.context.fate?.phase, at).toEqual(step.state.context.fate?.phase);
    // The first decision stands.
    if (decided !== undefined) expect(snapshot.context.fate?.outcome, `${at}: outcome changed`).toBe(decided);
    decided = snapshot.context.fate?.outcome;
    // A container create that a stop cuts short is aborted; a secret create never is (it would empty
    // Podman's secrets file). Teardown waits until no create is in flight.
    for (const c of podman.unsettled().filter((c) => c.op === 'createSecret' || c.op === 'createContainer')) {
      const aborting = c.op === 'createContainer' && JSON.stringify(snapshot.value).includes('aborting');
      expect(c.signal?.aborted ?? false, `${at}: ${c.op} aborted`).toBe(aborting);
      expect(snapshot.matches('tearingDown'), `${at}: teardown with ${c.op} in flight`).toBe(false);
    }
    // The context is what a snapshot adds to the events: checked at every step (whole snapshots at the end).
    const context = JSON.stringify(snapshot.context);
    expect(context.includes(SECRET), `${at}: credential in the context`).toBe(false);
  }

  await finish(run);
  const at = `${name}, at the end`;
  const end = run.actor.getSnapshot();
  expect(end.status, `${at}: the run ended`).toBe('done');
  const output = end.output as RunResult;
  // Exactly one outcome, and the one decided first.
  expect(output.outcome, at).toBeDefined();
  if (decided !== undefined && !(decided === 'succeeded' && output.outcome === 'error'))
    expect(output.outcome, at).toBe(decided);
  expect(
    run.announced.filter((p) => p === 'tearing_down'),
    `${at}: teardown ran once`,
  ).toHaveLength(1);
  expect(run.announced.at(-1), at).toBe('tearing_down');
  // Teardown always runs: everything the run ever made was removed, or teardown said it failed.
  const left = [...podman.secrets, ...podman.containers.keys()];
  if (left.length > 0)
    expect(run.warnings, `${at}: ${left.join(', ')} left silently`).toContain('teardown failed');
  // The values went to podman only, never into the output.
  expect(run.output.join('\n'), at).not.toContain(SECRET);
  expectNoCredential(run, at);
  run.actor.stop();
}

describe('model: runner machine', () => {
  it.each([
    ['on the local Podman (one podman run)', undefined, ['cuttingShort'], ['creatingContainer']],
    ['on a host behind a connection (create, start, rm)', 'remote', ['creatingContainer'], ['cuttingShort']],
  ] as const)(
    'every shortest path of a new session %s holds, against a fake PodmanPort',
    async (_, host, seen, unseen) => {
      const runnerInput = input(undefined, host);
      expect(runnerInput.session.spec.credentials, 'a secret to create').toHaveLength(1);
      const all = paths(runnerInput);
      expect(all.length).toBeGreaterThan(100);
      expect(all.length).toBeLessThan(5_000);
      const visited = new Set(all.map((p) => JSON.stringify(p.state.value)));
      for (const state of ['creatingSecrets', 'attached', 'tearingDown', 'done', ...seen]) {
        expect(
          [...visited].some((v) => v.includes(state)),
          state,
        ).toBe(true);
      }
      for (const state of unseen)
        expect(
          [...visited].some((v) => v.includes(state)),
          state,
        ).toBe(false);
      for (const path of leaves(all)) await replay(path, runnerInput, new FakePodman());
    },
  );

  it.each(['cloning', 'running'] as const)(
    'every shortest path of a session adopted while %s holds',
    async (phase) => {
      const runnerInput = input({
        container: 'agentd-ffffffff-demo-0123456789abcdef',
        phase,
        remainingMs: 5000,
      });
      const all = paths(runnerInput);
      expect(all.length).toBeGreaterThan(20);
      for (const path of leaves(all)) {
        const podman = new FakePodman();
        // The container's own copy of its credential: what its output is masked with.
        const files = new Map([['API_KEY', Buffer.from(SECRET)]]);
        podman.leaveRunning(
          {
            name: runnerInput.adopted?.container ?? '',
            image: 'localhost/agentd-base:bookworm',
            labels: {},
            env: { AGENTD_SETUP_MARKER: '@@agentd-adopted@@' },
            secrets: [],
            network: 'none',
            entrypoint: ['/bin/sh'],
            args: [],
          },
          files,
        );
        await replay(path, runnerInput, podman);
      }
    },
  );
});
