/**
 * Fake adapters for the daemon and session machines: every actor the daemon provides in
 * src/daemon/main.ts is replaced by one the test drives, and every side effect is recorded.
 */
import { type AnyActorRef, assign, fromCallback, fromPromise, raise, setup } from 'xstate';
import type { ResolvedCredentials } from '../../src/adapters/credentials.js';
import { defaultResources } from '../../src/config/resources.js';
import type { AgentConfig } from '../../src/config/types.js';
import {
  daemonMachine,
  failedHostGraceLeft,
  type OpenResult,
  type ReconcileResult,
  type RecoveryPlan,
  type StateDirProblem,
} from '../../src/machines/daemon.machine.js';
import { downGraceLeft, type HostReconciled, hostMachine } from '../../src/machines/host.machine.js';
import type { AdoptedSession, RunnerInput, runnerMachine } from '../../src/machines/runner.machine.js';
import {
  type SessionInput,
  type SessionSnapshot,
  sessionMachine,
} from '../../src/machines/session.machine.js';
import { SecretValue } from '../../src/secret-value.js';
import type { AssembledSession } from '../../src/sessions/assemble.js';

import type {
  Phase,
  RunOutcome,
  RunResult,
  SessionOutcome,
  SessionPhase,
  SessionRequest,
} from '../../src/sessions/types.js';

/** A credential value that must never show in a snapshot. */
export const SECRET = 'sk-test-5f1e2d3c4b5a69788796a5b4';
export const REPO_TOKEN = 'ghp-test-0a1b2c3d4e5f';

/** What the config loader fills in for an agent that sets none of these keys. */
export const AGENT_DEFAULTS = {
  repoTokenOrigins: [],
  repoTokenRequired: false,
  allowInsecureHttp: false,
  resources: defaultResources(),
  capAdd: [],
  mounts: [],
  caches: [],
  exitCodes: {},
  hostLabels: {},
  notify: [],
  userNamespace: 'host',
} satisfies Partial<AgentConfig>;

export const AGENTS: AgentConfig[] = [
  {
    name: 'demo',
    image: 'localhost/agentd-base:bookworm',
    command: ['run'],
    repo: 'https://git.example/demo.git',
    network: 'none',
    env: {},
    credentials: [{ name: 'API_KEY', source: { kind: 'env', name: 'API_KEY', raw: 'env:API_KEY' } }],
    repoToken: { kind: 'env', name: 'REPO_TOKEN', raw: 'env:REPO_TOKEN' },
    ...AGENT_DEFAULTS,
    repoTokenOrigins: ['https://git.example'],
  },
  {
    name: 'norepo',
    image: 'localhost/agentd-base:bookworm',
    command: ['run'],
    network: 'none',
    env: {},
    credentials: [],
    ...AGENT_DEFAULTS,
  },
];

export const EMPTY_RECOVERY: RecoveryPlan = { queued: [], adopted: [], finished: [] };
export const RECONCILED: ReconcileResult = {
  summary: { removedContainers: 1, removedSecrets: 2, runningContainers: 0 },
  recovery: EMPTY_RECOVERY,
};

export function resolvedCredentials(): ResolvedCredentials {
  return {
    credentials: [{ name: 'API_KEY', value: new SecretValue(SECRET) }],
    repoToken: new SecretValue(REPO_TOKEN),
  };
}

export function request(sessionId: string, agent = 'demo'): SessionRequest {
  return {
    sessionId,
    agent,
    repoUrl: 'https://git.example/demo.git',
    acceptedAt: '2025-01-01T00:00:00.000Z',
  };
}

export function sessionInput(sessionId: string): SessionInput {
  return { request: request(sessionId), agent: AGENTS[0] as AgentConfig };
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Lets every pending promise callback, and the actor work it causes, run. XState processes events
 * synchronously and the fakes settle through promises only, so one macrotask turn drains it all.
 */
export async function settle(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

/** What the fake runner reports for an outcome. */
export function fakeRunResult(outcome: RunOutcome): RunResult {
  return {
    outcome,
    phase: 'running',
    timings: { creating: 1, running: 2 },
    ...(outcome === 'succeeded' ? { exitCode: 0 } : { message: `session ${outcome}` }),
  };
}

type FakeRunnerEvent =
  | { type: 'cancel' }
  | { type: 'host.up' }
  | { type: 'host.down' }
  | { type: 'test.phase'; phase: Phase }
  | { type: 'test.commandEnded' }
  | { type: 'test.finish'; result: RunResult }
  | { type: 'test.fail'; error: Error };

/** One invocation of the fake runner, i.e. one session that reached `run`. */
export interface FakeRun {
  sessionId: string;
  /** The runner's input, with the request and agent of its session. */
  input: {
    request: SessionRequest;
    agent: AgentConfig;
    session?: AssembledSession;
    adopted?: AdoptedSession;
  };
  self: AnyActorRef;
  /** The runner made a Podman object (the fake announces `creating` at once). */
  created: boolean;
  tornDown: boolean;
  cancelRequested: boolean;
  /** The runner actor was stopped from outside (its cleanup ran) before it finished. */
  aborted: boolean;
  finished: boolean;
  phase(phase: Phase): void;
  /** The setup step reported the command's end (the real runner's `progress.ended`). */
  commandEnded(): void;
  /** Tears down and reports `run.finished`, as the real runner does last. */
  finish(outcome?: RunOutcome, extra?: Partial<RunResult>): void;
  /** Makes the runner actor fail, as an exception inside the real runner callback would. */
  fail(error: Error): void;
}

export interface Report {
  sessionId: string;
  outcome: SessionOutcome;
  via: 'reportOutcome' | 'reportSettled';
  /** Set when the session's runner had created something: whether it was torn down by then. */
  tornDownBefore?: boolean;
}

export interface FakeOptions {
  /** `manual`: the test settles `fakes.reconcile`; default: resolves with RECONCILED at once. */
  reconcile?: 'manual' | ReconcileResult;
  /** `manual`: the test settles `fakes.openSocket`; default: resolves at once. */
  openSocket?: 'manual';
  /** `manual`: the test settles `fakes.credentials(id)`; an Error rejects; default: resolvedCredentials(). */
  credentials?: 'manual' | Error;
  /** What the fake runner does when it receives cancel: only note it, or tear down and finish. */
  onCancel?: 'note' | 'finish';
  /** Rejects reportOutcome (after recording the report). */
  failReport?: boolean;
  /** `manual`: reportOutcome waits for the test to settle `fakes.reportCalls.get(id)`. */
  report?: 'manual';
  /** The runner throws as soon as it starts. */
  runnerThrows?: Error;
  /** The runner announces `creating` as soon as it starts (default); false: the test announces it. */
  announceCreating?: boolean;
  /** How often hosts are probed (default: an hour, i.e. not during a test). */
  probeIntervalMs?: number;
  /** How long a host may be down before what waits for it is abandoned (default: an hour). */
  downGraceMs?: number;
}

/** All fakes of one test: the provided machines and what happened to them. */
export class Fakes {
  readonly runs = new Map<string, FakeRun>();
  /** Session ids in the order their runner started. */
  readonly started: string[] = [];
  readonly reports: Report[] = [];
  readonly accepted: SessionRequest[] = [];
  readonly announced: { sessionId: string; phase: SessionPhase }[] = [];
  /** Credential resolutions by session id; `manual` mode settles them through here. */
  readonly credentialCalls = new Map<string, Deferred<ResolvedCredentials>>();
  readonly reportCalls = new Map<string, Deferred<void>>();
  readonly signals: Record<'reconcile' | 'openSocket' | 'credentials', AbortSignal[]> = {
    reconcile: [],
    openSocket: [],
    credentials: [],
  };
  reconcile = deferred<ReconcileResult>();
  openSocket = deferred<OpenResult>();
  onCancel: 'note' | 'finish';
  /** Set: recording a trigger fails with this problem (a full state dir), as the real store would. */
  recordFails: StateDirProblem | undefined;
  /** Live state dir watchers (the daemon is degraded while one runs). */
  watchers = 0;
  /** Ids that have a record (finished sessions): the daemon's provided sessionIdRecorded guard. */
  readonly recorded = new Set<string>();
  /** Hosts that do not answer, and what their probe fails with; the others answer. */
  readonly unreachable = new Map<string, string>();
  /** What reconciling a host that came back finds there, by host. */
  readonly hostRecovery = new Map<string, HostReconciled>();
  /** Hosts reconciled after the start, in order. */
  readonly reconciledHosts: string[] = [];
  /** Hosts whose waiting sessions the daemon abandoned (down past the grace period). */
  readonly abandonedHosts: string[] = [];
  /** The sessions of an earlier daemon that wait for each host (src/daemon/main.ts's `waiting`), by host. */
  readonly waiting = new Map<string, string[]>();
  /** Session ids told their host went down or came back, with which. */
  readonly hostNotices: { sessionId: string; type: string }[] = [];

  constructor(readonly options: FakeOptions = {}) {
    this.onCancel = options.onCancel ?? 'finish';
    if (options.reconcile !== 'manual') this.reconcile.resolve(options.reconcile ?? RECONCILED);
    if (options.openSocket !== 'manual') this.openSocket.resolve({});
  }

  /** The session machine as the daemon provides it, with fakes. */
  session() {
    return sessionMachine.provide({
      actors: {
        resolveCredentials: fromPromise(async ({ signal, self }) => {
          this.signals.credentials.push(signal);
          const { credentials } = this.options;
          if (credentials instanceof Error) throw credentials;
          if (credentials !== 'manual') return resolvedCredentials();
          const call = deferred<ResolvedCredentials>();
          // The parent of this actor is the session actor, whose id is the session id.
          this.credentialCalls.set(String(self._parent?.id), call);
          return call.promise;
        }),
        // A stand-in with the runner's input, output, tags and `cancel`, but not its type: cast.
        runner: this.runner() as unknown as typeof runnerMachine,
        reportOutcome: fromPromise(async ({ input }) => {
          const id = input.request.sessionId;
          const run = this.runs.get(id);
          this.reports.push({
            sessionId: id,
            outcome: input.outcome,
            via: 'reportOutcome',
            ...(run?.created ? { tornDownBefore: run.tornDown } : {}),
          });
          if (this.options.failReport) throw new Error('state dir is read-only');
          if (this.options.report === 'manual') {
            const call = deferred<void>();
            this.reportCalls.set(id, call);
            await call.promise;
          }
        }),
      },
      actions: {
        announcePhase: ({ context }, { phase }) =>
          this.announced.push({ sessionId: context.request.sessionId, phase }),
      },
    });
  }

  /**
   * A stand-in for the runner machine that the test drives: its states carry the phase tags the real
   * one does, `run.phase()` moves it, `run.finish()` ends it with a result (its output), as the real
   * runner ends after teardown.
   */
  runner() {
    return setup({
      types: {
        context: {} as { result?: RunResult },
        input: {} as RunnerInput,
        output: {} as RunResult,
        events: {} as FakeRunnerEvent,
      },
      actions: {
        start: ({ self }) => this.startRun(self),
        cancel: ({ self }) => this.cancelRun(self),
        hostNotice: ({ self, event }) => {
          const run = [...this.runs.values()].find((r) => r.self === self);
          if (run) this.hostNotices.push({ sessionId: run.sessionId, type: event.type });
        },
        fail: (_, error: Error) => {
          throw error;
        },
      },
    }).createMachine({
      id: 'runner',
      context: {},
      entry: 'start',
      initial: 'idle',
      on: {
        cancel: { actions: 'cancel' },
        'host.up': { actions: 'hostNotice' },
        'host.down': { actions: 'hostNotice' },
        'test.fail': { actions: { type: 'fail', params: ({ event }) => event.error } },
        'test.finish': {
          target: '.done',
          actions: assign({ result: ({ event }) => event.result }),
        },
        'test.commandEnded': '.ended',
        'test.phase': [
          { guard: ({ event }) => event.phase === 'creating', target: '.creating' },
          { guard: ({ event }) => event.phase === 'cloning', target: '.cloning' },
          { guard: ({ event }) => event.phase === 'running', target: '.running' },
          { target: '.tearing_down' },
        ],
      },
      states: {
        idle: {},
        creating: { tags: ['creating'] },
        cloning: { tags: ['cloning'] },
        running: { tags: ['running'] },
        ended: { tags: ['running', 'commandEnded'] },
        tearing_down: { tags: ['tearing_down'] },
        done: { type: 'final' },
      },
      output: ({ context }) => context.result ?? fakeRunResult('error'),
    });
  }

  private startRun(self: AnyActorRef): void {
    if (this.options.runnerThrows) throw this.options.runnerThrows;
    const session = self._parent?.getSnapshot() as SessionSnapshot | undefined;
    if (!session) throw new Error('the fake runner runs under a session');
    const { request, agent, adopted } = session.context;
    const input = {
      request,
      agent,
      ...(session.context.session === undefined ? {} : { session: session.context.session }),
      ...(adopted === undefined ? {} : { adopted }),
    };
    const run = this.newRun(input, self);
    // An adopted session's container exists already; a new one is created first.
    if (adopted) {
      run.created = true;
      // Deferred: the actor is still starting.
      queueMicrotask(() => run.phase(adopted.phase));
    } else if (this.options.announceCreating !== false) queueMicrotask(() => run.phase('creating'));
  }

  private cancelRun(self: AnyActorRef): void {
    const run = [...this.runs.values()].find((r) => r.self === self);
    if (!run || run.finished) return;
    run.cancelRequested = true;
    if (this.onCancel === 'finish') queueMicrotask(() => run.finish('cancelled'));
  }

  /** The host machine as src/daemon/main.ts provides it: probes answer unless the test says otherwise. */
  host() {
    return hostMachine.provide({
      actors: {
        probe: fromPromise(async ({ input }) => {
          const why = this.unreachable.get(input.host);
          if (why !== undefined) throw new Error(why);
          return { version: '4.3.1', ms: 1 };
        }),
        reconcileHost: fromPromise(async ({ input }) => {
          const why = this.unreachable.get(input.host);
          if (why !== undefined) throw new Error(why);
          this.reconciledHosts.push(input.host);
          return (
            this.hostRecovery.get(input.host) ?? {
              summary: { removedContainers: 0, removedSecrets: 0, runningContainers: 0 },
              adopted: [],
              finished: [],
            }
          );
        }),
      },
      delays: {
        probeInterval: this.options.probeIntervalMs ?? 3_600_000,
        downGrace: downGraceLeft(this.options.downGraceMs ?? 3_600_000),
      },
    });
  }

  /** The daemon machine as src/daemon/main.ts provides it, with fakes. */
  daemon() {
    return daemonMachine.provide({
      actors: {
        session: this.session(),
        host: this.host(),
        reconcile: fromPromise(({ signal }) => {
          this.signals.reconcile.push(signal);
          return this.reconcile.promise;
        }),
        openSocket: fromPromise(({ signal }) => {
          this.signals.openSocket.push(signal);
          return this.openSocket.promise;
        }),
        watchStateDir: fromCallback(() => {
          this.watchers++;
          return () => {
            this.watchers--;
          };
        }),
      },
      delays: { hostDownGrace: failedHostGraceLeft(this.options.downGraceMs ?? 3_600_000) },
      guards: {
        sessionIdRecorded: (_, sessionId) => this.recorded.has(sessionId),
      },
      actions: {
        recordAccepted: raise((_, { session, requestId }) => {
          const answer = requestId === undefined ? { session } : { session, requestId };
          if (this.recordFails)
            return { type: 'trigger.unrecorded' as const, ...answer, ...this.recordFails };
          this.accepted.push(session.request);
          return { type: 'trigger.recorded' as const, ...answer };
        }),
        abandonWaiting: ({ self }, { host }) => {
          this.abandonedHosts.push(host);
          // As main.ts does once it has settled them: the machine is told which sessions they were.
          const sessionIds = this.waiting.get(host) ?? [];
          this.waiting.delete(host);
          if (sessionIds.length > 0) self.send({ type: 'sessions.settled', sessionIds });
        },
        reportSettled: (_, { sessions }) => {
          for (const s of sessions) {
            this.reports.push({ sessionId: s.request.sessionId, outcome: s.outcome, via: 'reportSettled' });
          }
        },
      },
    });
  }

  run(sessionId: string): FakeRun {
    const run = this.runs.get(sessionId);
    if (!run)
      throw new Error(`no runner started for session ${sessionId}; started: ${this.started.join(', ')}`);
    return run;
  }

  reportsOf(sessionId: string): Report[] {
    return this.reports.filter((r) => r.sessionId === sessionId);
  }

  private newRun(input: FakeRun['input'], self: AnyActorRef): FakeRun {
    const run: FakeRun = {
      sessionId: input.request.sessionId,
      input,
      self,
      created: false,
      tornDown: false,
      cancelRequested: false,
      aborted: false,
      finished: false,
      phase: (phase) => {
        if (phase === 'creating') run.created = true;
        if (phase === 'tearing_down') run.tornDown = true;
        // What the runner's provided announcePhase does in the daemon.
        this.announced.push({ sessionId: run.sessionId, phase });
        self.send({ type: 'test.phase', phase });
      },
      commandEnded: () => self.send({ type: 'test.commandEnded' }),
      finish: (outcome = 'succeeded', extra = {}) => {
        if (run.finished) throw new Error(`runner of ${run.sessionId} finished twice`);
        run.phase('tearing_down');
        run.finished = true;
        self.send({ type: 'test.finish', result: { ...fakeRunResult(outcome), ...extra } });
      },
      // The fake runner's own action throws on this event: an actor error, as a bug in the real one would be.
      fail: (error) => self.send({ type: 'test.fail', error }),
    };
    this.runs.set(run.sessionId, run);
    this.started.push(run.sessionId);
    // A runner stopped from outside before it finished: the real one's actors abort with it.
    self.subscribe({
      complete: () => {
        if (run.finished) return;
        run.aborted = true;
        if (run.created) run.tornDown = true;
      },
      // The session's onError handles a failing runner; without this observer XState reports it again.
      error: () => {},
    });
    return run;
  }
}

/** Ids of the session actors that still run under a daemon (or any) actor; host actors are not sessions. */
export function liveChildren(actor: AnyActorRef): string[] {
  const children = actor.getSnapshot().children as Record<string, AnyActorRef | undefined>;
  return Object.entries(children)
    .filter(([id, child]) => !id.startsWith('host-') && child?.getSnapshot().status === 'active')
    .map(([id]) => id);
}
