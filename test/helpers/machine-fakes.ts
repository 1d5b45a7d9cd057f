/**
 * Fake adapters for the daemon and session machines: every actor the daemon provides in
 * src/daemon/main.ts is replaced by one the test drives, and every side effect is recorded.
 */
import { type AnyActorRef, type EventObject, fromCallback, fromPromise, raise } from 'xstate';
import type { ResolvedCredentials } from '../../src/adapters/credentials.js';
import { defaultResources } from '../../src/config/resources.js';
import type { AgentConfig } from '../../src/config/types.js';
import {
  daemonMachine,
  type OpenResult,
  type ReconcileResult,
  type RecoveryPlan,
  type StateDirProblem,
} from '../../src/machines/daemon.machine.js';
import {
  type RunSessionInput,
  type SessionInput,
  sessionMachine,
} from '../../src/machines/session.machine.js';
import { SecretValue } from '../../src/secret-value.js';

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

/** One invocation of the fake runner, i.e. one session that reached `run`. */
export interface FakeRun {
  sessionId: string;
  input: RunSessionInput;
  /** The runner made a Podman object (the fake announces `creating` at once). */
  created: boolean;
  tornDown: boolean;
  cancelRequested: boolean;
  /** The runner actor was stopped from outside (its cleanup ran) before it finished. */
  aborted: boolean;
  finished: boolean;
  phase(phase: Phase): void;
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
        runSession: fromCallback<{ type: 'cancel' }, RunSessionInput>(
          ({ input, sendBack, receive, self }) => {
            if (this.options.runnerThrows) throw this.options.runnerThrows;
            const run = this.newRun(input, sendBack, self);
            receive((event: EventObject) => {
              if (event.type === 'test.fail') throw (event as EventObject & { error: Error }).error;
              if (event.type !== 'cancel') return;
              run.cancelRequested = true;
              if (this.onCancel === 'finish') queueMicrotask(() => run.finish('cancelled'));
            });
            // An adopted session's container exists already; a new one is created first.
            if (input.adopted) run.created = true;
            else if (this.options.announceCreating !== false) run.phase('creating');
            return () => {
              if (run.finished) return;
              // The real runner aborts on stop and tears down what it created.
              run.aborted = true;
              if (run.created) run.tornDown = true;
            };
          },
        ),
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

  /** The daemon machine as src/daemon/main.ts provides it, with fakes. */
  daemon() {
    return daemonMachine.provide({
      actors: {
        session: this.session(),
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
      actions: {
        recordAccepted: raise((_, { session, requestId }) => {
          const answer = requestId === undefined ? { session } : { session, requestId };
          if (this.recordFails)
            return { type: 'trigger.unrecorded' as const, ...answer, ...this.recordFails };
          this.accepted.push(session.request);
          return { type: 'trigger.recorded' as const, ...answer };
        }),
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

  private newRun(
    input: RunSessionInput,
    sendBack: (
      event: { type: 'run.phase'; phase: Phase } | { type: 'run.finished'; result: RunResult },
    ) => void,
    self: AnyActorRef,
  ): FakeRun {
    const run: FakeRun = {
      sessionId: input.request.sessionId,
      input,
      created: false,
      tornDown: false,
      cancelRequested: false,
      aborted: false,
      finished: false,
      phase: (phase) => {
        if (phase === 'creating') run.created = true;
        if (phase === 'tearing_down') run.tornDown = true;
        sendBack({ type: 'run.phase', phase });
      },
      finish: (outcome = 'succeeded', extra = {}) => {
        if (run.finished) throw new Error(`runner of ${run.sessionId} finished twice`);
        run.phase('tearing_down');
        run.finished = true;
        sendBack({ type: 'run.finished', result: { ...fakeRunResult(outcome), ...extra } });
      },
      // The runner's receive handler throws on this private event: an actor error, as in production.
      fail: (error) => self.send({ type: 'test.fail', error }),
    };
    this.runs.set(run.sessionId, run);
    this.started.push(run.sessionId);
    return run;
  }
}

/** Ids of the session actors that still run under a daemon (or any) actor. */
export function liveChildren(actor: AnyActorRef): string[] {
  const children = actor.getSnapshot().children as Record<string, AnyActorRef | undefined>;
  return Object.entries(children)
    .filter(([, child]) => child?.getSnapshot().status === 'active')
    .map(([id]) => id);
}
