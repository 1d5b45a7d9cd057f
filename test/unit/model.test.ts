/**
 * Model-based tests: xstate/graph walks each machine as a pure transition function over a small event
 * alphabet (the abstract model), and every shortest path it finds is replayed against real actors with
 * fake adapters (the system). After every step the system must agree with the model and keep the
 * invariants; after every path the system is shut down and must account for every session.
 *
 * Invoked actors do not run during the walk, so their outcomes are events of the alphabet
 * (`xstate.done.actor.<id>` / `xstate.error.actor.<id>`); the replay turns them into fake actors
 * resolving or rejecting. A vertex includes the transition that led to it, so the shortest paths
 * take every transition of the alphabet from every state, not only reach every state.
 */

import { describe, expect, it } from 'vitest';
import { type Actor, type AnyActorRef, createActor, initialTransition, setup, transition } from 'xstate';
import { getShortestPaths, type StatePath } from 'xstate/graph';
import {
  type DaemonEmitted,
  type DaemonEvent,
  daemonMachine,
  type OpenResult,
  type ReconcileResult,
  type StateDirProblem,
} from '../../src/machines/daemon.machine.js';
import {
  type SessionEvent,
  type SessionFinishedEvent,
  type SessionInput,
  sessionMachine,
} from '../../src/machines/session.machine.js';
import type { RunOutcome } from '../../src/sessions/types.js';
import {
  AGENTS,
  Fakes,
  fakeRunResult,
  liveChildren,
  RECONCILED,
  REPO_TOKEN,
  request,
  resolvedCredentials,
  SECRET,
  sessionInput,
  settle,
} from '../helpers/machine-fakes.js';

type DaemonSnapshot = ReturnType<typeof daemonMachine.getInitialSnapshot>;
type SessionSnapshot = ReturnType<typeof sessionMachine.getInitialSnapshot>;

/** The id XState gives the (only) invoke of a state; derived, so a renamed state fails loudly here. */
function invokeId(machine: typeof daemonMachine | typeof sessionMachine, state: string): string {
  const node = (machine.root.states as Record<string, { invoke: { id: string }[] } | undefined>)[state];
  const id = node?.invoke[0]?.id;
  if (id === undefined) throw new Error(`state ${state} of ${machine.id} invokes nothing`);
  return id;
}

/** The step's event as a short word, for vertex keys and failure messages. */
function describeEvent(event: { type: string }): string {
  const e = event as { type: string; [key: string]: unknown };
  const done = /^xstate\.(done|error)\.actor\.(.*)$/.exec(e.type);
  if (done) {
    const output = e.output as (Partial<ReconcileResult> & OpenResult) | undefined;
    const recovered = output?.recovery?.adopted.length ? '+recovery' : '';
    const degraded = output?.stateDir ? '+stateDirFull' : '';
    return `${done[1]}(${done[2]})${recovered}${degraded}`;
  }
  const detail =
    e.sessionId ?? (e as { phase?: string }).phase ?? (e.result as { outcome?: string })?.outcome;
  return detail === undefined ? e.type : `${e.type}(${String(detail)})`;
}

/**
 * Shortest paths form a tree: most are a prefix of another. Replaying only the longest ones checks
 * every step of every path, in a fraction of the replays.
 */
function leaves<T extends { steps: { event: { type: string } }[] }>(paths: T[]): T[] {
  const key = (p: T, n: number) => JSON.stringify(p.steps.slice(1, n).map((s) => s.event));
  const prefixes = new Set(paths.flatMap((p) => p.steps.slice(1, -1).map((_, i) => key(p, i + 2))));
  return paths.filter((p) => !prefixes.has(key(p, p.steps.length)));
}

function pathName(path: { steps: { event: { type: string } }[] }): string {
  return path.steps
    .slice(1)
    .map((s) => describeEvent(s.event))
    .join(' → ');
}

// --- the daemon ----------------------------------------------------------------------------------

const RECONCILE = invokeId(daemonMachine, 'reconciling');
const OPEN = invokeId(daemonMachine, 'opening');
/** Ids the model triggers with; a finished id may be triggered again, the replay keeps them apart. */
const POOL = ['a', 'b', 'c'];
const STATE_DIR_FULL: StateDirProblem = {
  code: 'state_dir_full',
  reason: 'state dir full: cannot record session (ENOSPC)',
};
const RECOVERED: ReconcileResult = {
  summary: RECONCILED.summary,
  recovery: {
    adopted: [{ ...sessionInput('r1'), adopted: { container: 'agentd-x-r1', phase: 'running' } }],
    queued: [sessionInput('r2')],
    finished: [{ request: request('r3'), outcome: { outcome: 'abandoned', phase: 'creating' } }],
  },
};

/** Running session ids in spawn order (the order of the context object's keys). */
function running(s: DaemonSnapshot): string[] {
  return Object.keys(s.context.sessions);
}

function queued(s: DaemonSnapshot): string[] {
  return s.context.queue.map((q) => q.request.sessionId);
}

/**
 * An event of the alphabet. Session ids are interchangeable, so the walk keys vertices by how many
 * sessions run and wait, not by which; an event therefore names its session by `role` (`queued:0`,
 * `running:1`, `free`), and the replay picks the id that has that role in the state it is in.
 */
type ModelEvent = DaemonEvent & { role?: string };

/** The alphabet in a state. The done/error events are not DaemonEvents, hence the cast. */
function daemonEvents(s: DaemonSnapshot): ModelEvent[] {
  // A stopped actor takes no events; the pure transition would still apply the root's handlers.
  if (s.status === 'done') return [];
  const events: { type: string; [key: string]: unknown }[] = [
    { type: `xstate.done.actor.${RECONCILE}`, output: RECONCILED },
    { type: `xstate.done.actor.${RECONCILE}`, output: RECOVERED },
    { type: `xstate.error.actor.${RECONCILE}`, error: new Error('podman: cannot connect') },
    { type: `xstate.done.actor.${OPEN}`, output: {} },
    { type: `xstate.done.actor.${OPEN}`, output: { stateDir: STATE_DIR_FULL } },
    { type: 'stateDir.unwritable', ...STATE_DIR_FULL },
    { type: 'stateDir.writable' },
    { type: `xstate.error.actor.${OPEN}`, error: new Error('EADDRINUSE') },
    { type: 'shutdown' },
    { type: 'trigger', sessionId: 'bad', agent: 'nope', role: 'invalid' },
    { type: 'cancel', sessionId: 'ghost', role: 'unknown' },
    ...(freeId(s) === undefined
      ? []
      : [{ type: 'trigger', sessionId: freeId(s), agent: 'demo', role: 'free' }]),
    ...[...running(s), ...queued(s)]
      .slice(0, 1)
      .map((sessionId) => ({ type: 'trigger', sessionId, agent: 'demo', role: 'duplicate' })),
    ...queued(s).map((sessionId, i) => ({ type: 'cancel', sessionId, role: `queued:${i}` })),
    ...running(s).flatMap((sessionId, i) => [
      { type: 'cancel', sessionId, role: `running:${i}` },
      {
        type: 'session.finished',
        sessionId,
        role: `running:${i}`,
        outcome: { outcome: 'succeeded', phase: 'running' },
      },
    ]),
  ];
  return events as ModelEvent[];
}

function freeId(s: DaemonSnapshot): string | undefined {
  const live = [...running(s), ...queued(s)];
  return POOL.find((id) => !live.includes(id));
}

/** The event with the session id that has its role in `s`. */
function resolveRole(event: ModelEvent, s: DaemonSnapshot): ModelEvent {
  const role = event.role;
  if (role === undefined || !('sessionId' in event)) return event;
  const [where, index] = role.split(':');
  const id =
    where === 'free'
      ? freeId(s)
      : where === 'duplicate'
        ? [...running(s), ...queued(s)][0]
        : where === 'queued'
          ? queued(s)[Number(index)]
          : where === 'running'
            ? running(s)[Number(index)]
            : event.sessionId;
  if (id === undefined) throw new Error(`no session has role ${role} in ${JSON.stringify(vertexKey(s))}`);
  return { ...event, sessionId: id };
}

function counts(s: DaemonSnapshot | undefined): unknown[] {
  return s === undefined ? [] : [s.value, running(s).length, queued(s).length];
}

/**
 * A vertex is (state, how many run, how many wait) plus the transition that led there from which such
 * state: the shortest paths to all vertices take every transition of the alphabet from every state.
 */
function vertexKey(s: DaemonSnapshot, e?: ModelEvent, prev?: DaemonSnapshot): string {
  const edge = e === undefined ? '' : e.role === undefined ? describeEvent(e) : `${e.type}:${e.role}`;
  return JSON.stringify([counts(s), edge, counts(prev)]);
}

function daemonPaths(maxSessions: number) {
  return getShortestPaths(daemonMachine, {
    input: { agents: AGENTS, maxSessions },
    events: daemonEvents,
    // Only events the state handles: a session finishing while the socket opens is left out, as the
    // machine drops it (see the known problem in daemon.machine.test.ts).
    filterEvents: (s, e) => s.can(e),
    serializeState: (s, e, prev) => vertexKey(s, e, prev),
    limit: 50_000,
  });
}

/** Replays one abstract path against the pure machine (the model) and a daemon actor with fakes. */
async function replayDaemon(path: StatePath<DaemonSnapshot, ModelEvent>, maxSessions: number): Promise<void> {
  const name = pathName(path);
  const input = { agents: AGENTS, maxSessions };
  const fakes = new Fakes({ reconcile: 'manual', openSocket: 'manual', onCancel: 'note' });
  const actor = createActor(fakes.daemon(), { input });
  let step = 0;
  const answers: { step: number; event: DaemonEmitted }[] = [];
  actor.on('*', (event) => answers.push({ step, event }));
  actor.start();
  await settle();
  let [model] = initialTransition(daemonMachine, input);

  // The system's id for a model id: every accepted trigger gets a fresh one (a.1, a.4 ...).
  const current = new Map<string, string>();
  const accepted: string[] = [];
  let recovered = false;
  /**
   * Up (ready or degraded): recovered containers are supervised, and recovered queued sessions are the
   * daemon's, from then on. A daemon that never got there (told to stop while reconciling or opening, or
   * failed) leaves them to the next start.
   */
  let wasUp = false;
  const modelId = (id: string) => id.split('.')[0] as string;
  const systemId = (id: string) => current.get(id) ?? id;

  for (const [index, pathStep] of path.steps.entries()) {
    step = index;
    const before = actor.getSnapshot().value;
    const previous = model;
    const event = index === 0 ? pathStep.event : resolveRole(pathStep.event, model);
    const at = `${name}, step ${index} (${describeEvent(event)})`;
    if (index > 0) {
      model = transition(daemonMachine, model, event)[0];
      const e = event as { type: string; sessionId?: string; output?: ReconcileResult };
      if (e.type === `xstate.done.actor.${RECONCILE}`) {
        recovered = e.output === RECOVERED;
        fakes.reconcile.resolve(e.output as ReconcileResult);
      } else if (e.type === `xstate.error.actor.${RECONCILE}`)
        fakes.reconcile.reject(new Error('podman down'));
      else if (e.type === `xstate.done.actor.${OPEN}`) fakes.openSocket.resolve(e.output as OpenResult);
      else if (e.type === `xstate.error.actor.${OPEN}`) fakes.openSocket.reject(new Error('EADDRINUSE'));
      else if (e.type === 'session.finished') {
        const run = fakes.run(systemId(e.sessionId as string));
        run.finish(run.cancelRequested ? 'cancelled' : 'succeeded');
      } else if (e.type === 'trigger') {
        // A new session gets a fresh system id; a duplicate or an invalid one is sent as it is.
        const id = event.role === 'free' ? `${e.sessionId}.${index}` : systemId(e.sessionId as string);
        if (event.role === 'free') current.set(e.sessionId as string, id);
        actor.send({ ...(event as Extract<DaemonEvent, { type: 'trigger' }>), sessionId: id });
      } else if (e.type === 'cancel')
        actor.send({ type: 'cancel', sessionId: systemId(e.sessionId as string) });
      else actor.send(event);
      await settle();
    }
    // The walk's abstraction holds: this run of the path is in the vertex the walk meant.
    if (index > 0) {
      const walked = path.steps[index - 1]?.state;
      expect(vertexKey(model, event, previous), at).toBe(vertexKey(pathStep.state, pathStep.event, walked));
    }

    // The system agrees with the model.
    const snapshot = actor.getSnapshot();
    if (snapshot.value === 'ready' || snapshot.value === 'degraded') wasUp = true;
    expect(snapshot.value, at).toEqual(model.value);
    expect(running(snapshot).map(modelId).sort(), at).toEqual(running(model).sort());
    expect(queued(snapshot).map(modelId), at).toEqual(queued(model));

    // No trigger is accepted before ready.
    const stepAnswers = answers.filter((a) => a.step === index).map((a) => a.event);
    const acceptedNow = stepAnswers.filter((a) => a.type === 'trigger.accepted').map((a) => a.sessionId);
    if (before !== 'ready') expect(acceptedNow, at).toEqual([]);
    accepted.push(...acceptedNow);

    // Nothing is reported twice, and a session that was settled without an actor never ran.
    expectReportedAtMostOnce(fakes, at);
    for (const r of fakes.reports.filter((r) => r.via === 'reportSettled')) {
      expect(fakes.runs.has(r.sessionId), `${at}: ${r.sessionId} settled but ran`).toBe(false);
    }
    // Teardown precedes the report of every session that created something.
    for (const r of fakes.reports) expect(r.tornDownBefore ?? true, `${at}: ${r.sessionId}`).toBe(true);

    if (snapshot.matches({ shutdown: 'stopped' })) expectNothingRuns(actor, fakes, at);
  }

  // Epilogue: shut down (twice: the second cancels), let cancelled runners finish, and account.
  const at = `${name}, after shutting down`;
  fakes.onCancel = 'finish';
  for (const run of fakes.runs.values()) if (run.cancelRequested && !run.finished) run.finish('cancelled');
  await settle();
  for (let i = 0; i < 2 && actor.getSnapshot().status === 'active'; i++) {
    if (actor.getSnapshot().matches({ shutdown: 'stopped' })) break;
    actor.send({ type: 'shutdown' });
    await settle();
  }
  const end = actor.getSnapshot();
  const stopped = end.matches({ shutdown: 'stopped' });
  expect(stopped || end.value === 'failed', `${at}: ended in ${JSON.stringify(end.value)}`).toBe(true);
  expectReportedAtMostOnce(fakes, at);
  // Every session this daemon accepted reaches exactly one outcome.
  for (const id of accepted) expect(fakes.reportsOf(id), `${at}: outcome of ${id}`).toHaveLength(1);
  // Recovered sessions too, unless the daemon failed to start (the next one recovers them again).
  if (recovered) expect(fakes.reportsOf('r3'), `${at}: outcome of r3`).toHaveLength(1);
  if (recovered && wasUp && stopped) {
    expect(fakes.reportsOf('r2'), `${at}: outcome of r2`).toHaveLength(1);
    expect(fakes.reportsOf('r1'), `${at}: outcome of r1`).toHaveLength(1);
  }
  // A daemon told to stop before it was up leaves the queued and adopted ones to the next start.
  if (recovered && !wasUp) {
    expect(fakes.reportsOf('r2'), `${at}: outcome of r2`).toEqual([]);
    expect(fakes.reportsOf('r1'), `${at}: outcome of r1`).toEqual([]);
  }
  if (stopped) expectNothingRuns(actor, fakes, at);
  for (const run of fakes.runs.values()) {
    if (run.created) expect(run.tornDown, `${at}: teardown of ${run.sessionId}`).toBe(true);
  }
  expect(liveChildren(actor), at).toEqual([]);
  actor.stop();
}

function expectReportedAtMostOnce(fakes: Fakes, at: string): void {
  const ids = fakes.reports.map((r) => r.sessionId);
  expect(
    ids.filter((id, i) => ids.indexOf(id) !== i),
    `${at}: reported twice`,
  ).toEqual([]);
}

function expectNothingRuns(actor: Actor<ReturnType<Fakes['daemon']>>, fakes: Fakes, at: string): void {
  const { context } = actor.getSnapshot();
  expect(liveChildren(actor), `${at}: live session actors`).toEqual([]);
  expect(Object.keys(context.sessions), `${at}: sessions`).toEqual([]);
  expect(context.queue, `${at}: queue`).toEqual([]);
  const active = [...fakes.runs.values()].filter((r) => r.created && !r.tornDown).map((r) => r.sessionId);
  expect(active, `${at}: runners with live containers`).toEqual([]);
}

// --- the session ---------------------------------------------------------------------------------

const RESOLVE = invokeId(sessionMachine, 'resolveCredentials');
const REPORT = invokeId(sessionMachine, 'report');
const RUNNER = invokeId(sessionMachine, 'run');
const RUN_OUTCOMES: RunOutcome[] = ['succeeded', 'cancelled'];

function sessionEvents(): SessionEvent[] {
  const events: { type: string; [key: string]: unknown }[] = [
    { type: `xstate.done.actor.${RESOLVE}`, output: resolvedCredentials() },
    { type: `xstate.error.actor.${RESOLVE}`, error: new Error('environment variable API_KEY is not set') },
    { type: 'cancel' },
    // The runner machine's own paths are walked in runner.model.test.ts; here it ends or fails.
    ...RUN_OUTCOMES.map((outcome) => ({
      type: `xstate.done.actor.${RUNNER}`,
      output: fakeRunResult(outcome),
    })),
    { type: `xstate.error.actor.${RUNNER}`, error: new Error('podman went away') },
    { type: `xstate.done.actor.${REPORT}` },
    { type: `xstate.error.actor.${REPORT}`, error: new Error('state dir is read-only') },
  ];
  // Invoke outcomes are not SessionEvents; the walk feeds them to the machine all the same.
  return events as SessionEvent[];
}

/**
 * The walk has no parent actor, so `notifyDaemon` (sendParent) would throw on reaching done; the model
 * leaves it out, and the replay, which runs under a parent, checks the notification instead.
 */
const sessionModel = sessionMachine.provide({ actions: { notifyDaemon: () => {} } });

function sessionPaths(input: SessionInput) {
  return getShortestPaths(sessionModel, {
    input,
    events: sessionEvents(),
    // A runner machine that fails is a bug (runner.model.test.ts walks it to `done` on every path); the
    // fake fails only before it has made anything, which an adopted session's container already is.
    filterEvents: (s, e) =>
      s.can(e) && !(input.adopted && (e.type as string) === `xstate.error.actor.${RUNNER}`),
    serializeState: (s, e) =>
      JSON.stringify([s.value, s.context.outcome ?? null, e === undefined ? '' : describeEvent(e)]),
    limit: 50_000,
  });
}

async function replaySession(
  path: StatePath<SessionSnapshot, SessionEvent>,
  input: SessionInput,
): Promise<void> {
  const name = pathName(path);
  const fakes = new Fakes({
    credentials: 'manual',
    report: 'manual',
    onCancel: 'note',
    announceCreating: false,
  });
  const finished: SessionFinishedEvent[] = [];
  const parent = createActor(
    setup({
      types: { events: {} as SessionFinishedEvent },
      actors: { session: fakes.session() },
    }).createMachine({
      invoke: { id: 's1', src: 'session', input },
      on: { 'session.finished': { actions: ({ event }) => finished.push(event) } },
    }),
  ).start();
  const session = parent.getSnapshot().children.s1 as AnyActorRef;
  await settle();

  for (const [index, { event, state }] of path.steps.entries()) {
    if (index > 0) {
      const e = event as { type: string; output?: { outcome: RunOutcome } };
      if (e.type === `xstate.done.actor.${RESOLVE}`)
        fakes.credentialCalls.get('s1')?.resolve(resolvedCredentials());
      else if (e.type === `xstate.error.actor.${RESOLVE}`)
        fakes.credentialCalls.get('s1')?.reject(new Error('environment variable API_KEY is not set'));
      else if (e.type === `xstate.done.actor.${RUNNER}`) fakes.run('s1').finish(e.output?.outcome);
      else if (e.type === `xstate.error.actor.${RUNNER}`) fakes.run('s1').fail(new Error('podman went away'));
      else if (e.type === `xstate.done.actor.${REPORT}`) fakes.reportCalls.get('s1')?.resolve();
      else if (e.type === `xstate.error.actor.${REPORT}`)
        fakes.reportCalls.get('s1')?.reject(new Error('state dir is read-only'));
      else session.send(event);
      await settle();
    }
    const at = `${name}, step ${index} (${describeEvent(event)})`;
    const snapshot = session.getSnapshot() as SessionSnapshot;
    expect(snapshot.value, at).toEqual(state.value);
    expect(snapshot.context.outcome, at).toEqual(state.context.outcome);

    // Credentials never show, at any step.
    for (const form of [JSON.stringify(snapshot), JSON.stringify(session.getPersistedSnapshot())]) {
      expect(form.includes(SECRET) || form.includes(REPO_TOKEN), `${at}: credential in a snapshot`).toBe(
        false,
      );
    }
    // An adopted session never resolves credentials (its container has its values); the others never
    // run before they have them. A cancel while it runs reaches the runner.
    if (input.adopted) expect(fakes.credentialCalls.size, at).toBe(0);
    if (fakes.runs.has('s1')) {
      const settled: string[] = path.steps.slice(1, index + 1).map((s) => s.event.type);
      if (!input.adopted)
        expect(settled, `${at}: ran without credentials`).toContain(`xstate.done.actor.${RESOLVE}`);
      if (event.type === 'cancel' && snapshot.matches('run'))
        expect(fakes.run('s1').cancelRequested, `${at}: cancel lost`).toBe(true);
    }
    expect(fakes.reports.length, `${at}: reports`).toBeLessThanOrEqual(1);
    expect(finished.length, `${at}: notifications`).toBe(snapshot.value === 'done' ? 1 : 0);
    if (snapshot.value === 'done') {
      expect(finished[0]?.outcome, at).toEqual(fakes.reports[0]?.outcome);
      for (const run of fakes.runs.values()) {
        if (run.created) expect(run.tornDown, `${at}: teardown`).toBe(true);
      }
    }
  }
  parent.stop();
}

// --- the tests -----------------------------------------------------------------------------------

describe('model: daemon machine', () => {
  it.each([1, 2])('every shortest path holds with max_sessions %i', async (maxSessions) => {
    const paths = daemonPaths(maxSessions);
    // Bounded on purpose: the alphabet and the id pool keep the model finite and the run fast.
    expect(paths.length).toBeGreaterThan(50);
    expect(paths.length).toBeLessThan(5_000);
    const covered = new Set(paths.map((p) => JSON.stringify(p.state.value)));
    expect([...covered].sort()).toEqual(
      [
        '"degraded"',
        '"failed"',
        '"opening"',
        '"ready"',
        '{"reconciling":"working"}',
        '{"reconciling":"stopping"}',
        '{"shutdown":"draining"}',
        '{"shutdown":"stopped"}',
      ].sort(),
    );
    for (const path of leaves(paths)) await replayDaemon(path, maxSessions);
  });
});

describe('model: session machine', () => {
  it.each([
    ['a new session', sessionInput('s1')],
    [
      'an adopted session',
      { ...sessionInput('s1'), adopted: { container: 'agentd-x-s1', phase: 'running' } } as SessionInput,
    ],
  ])('every shortest path holds for %s', async (_, input) => {
    const paths = sessionPaths(input);
    expect(paths.length).toBeGreaterThan(input.adopted ? 5 : 10);
    expect(paths.length).toBeLessThan(2_000);
    for (const path of leaves(paths)) await replaySession(path, input);
  });
});
