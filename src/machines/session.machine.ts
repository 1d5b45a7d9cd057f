import { assign, fromCallback, fromPromise, sendParent, sendTo, setup } from 'xstate';
import type { ResolvedCredentials } from '../adapters/credentials.js';
import type { AgentConfig } from '../config/types.js';
import { type AssembledSession, assembleSession } from '../sessions/assemble.js';
import type { Phase, RunResult, SessionOutcome, SessionPhase, SessionRequest } from '../sessions/types.js';

export interface SessionInput {
  request: SessionRequest;
  agent: AgentConfig;
  /** Set when the session's container outlived an earlier daemon and this one takes it over. */
  adopted?: AdoptedSession;
}

/** A running container of this instance that a new daemon supervises to the end. */
export interface AdoptedSession {
  container: string;
  phase: 'cloning' | 'running';
  remainingMs?: number;
}

export interface SessionContext {
  request: SessionRequest;
  agent: AgentConfig;
  adopted?: AdoptedSession;
  /** Wrapped values: they serialise as "[redacted]". */
  resolved?: ResolvedCredentials;
  session?: AssembledSession;
  /** The runner's current phase, for status and records. */
  phase: SessionPhase;
  /** When this actor was spawned, i.e. left the queue. */
  startedAt: string;
  outcome?: SessionOutcome;
}

export type SessionEvent =
  | { type: 'cancel' }
  | { type: 'run.phase'; phase: Phase }
  | { type: 'run.finished'; result: RunResult };

export type RunSessionInput = {
  request: SessionRequest;
  agent: AgentConfig;
  session?: AssembledSession;
  adopted?: AdoptedSession;
};
export type ReportInput = { request: SessionRequest; outcome: SessionOutcome };

/** Sent to the daemon machine when the session has reported its outcome. */
export type SessionFinishedEvent = { type: 'session.finished'; sessionId: string; outcome: SessionOutcome };

function notProvided(name: string): never {
  throw new Error(`session machine: actor ${name} must be provided by the daemon`);
}

export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
  },
  actors: {
    resolveCredentials: fromPromise<ResolvedCredentials, { agent: AgentConfig }>(async () =>
      notProvided('resolveCredentials'),
    ),
    runSession: fromCallback<{ type: 'cancel' }, RunSessionInput>(() => notProvided('runSession')),
    reportOutcome: fromPromise<void, ReportInput>(async () => notProvided('reportOutcome')),
  },
  guards: {
    isAdopted: ({ context }) => context.adopted !== undefined,
  },
  actions: {
    storeCredentials: assign({
      resolved: (_, resolved: ResolvedCredentials) => resolved,
    }),
    assemble: assign({
      session: ({ context }) =>
        assembleSession(context.request, context.agent, context.resolved ?? { credentials: [] }),
      // Values are inside the assembled session now; keep one copy only.
      resolved: undefined,
    }),
    setPhase: assign({ phase: (_, phase: SessionPhase) => phase }),
    /** Side effect (provided): record and publish a phase change. */
    announcePhase: (_, _params: { phase: SessionPhase }) => {},
    storeRunResult: assign({
      outcome: (_, result: RunResult) => {
        const { outcome, phase, exitCode, signal, message, timings } = result;
        return { outcome, phase, timings, ...defined({ exitCode, signal, message }) };
      },
      session: undefined,
    }),
    failResolution: assign({
      outcome: (_, message: string): SessionOutcome => ({ outcome: 'error', phase: 'resolving', message }),
    }),
    failRun: assign({
      outcome: ({ context }, message: string): SessionOutcome => ({
        outcome: 'error',
        // The runner failed before it announced its first phase: it was creating.
        phase: context.phase === 'resolving' ? 'creating' : context.phase,
        message: `runner failed: ${message}`,
      }),
      session: undefined,
    }),
    markCancelledBeforeRun: assign({
      outcome: ({ context }): SessionOutcome => ({
        outcome: 'cancelled',
        phase: context.phase,
        message: 'session cancelled before its container was created',
      }),
      resolved: undefined,
      session: undefined,
    }),
    forwardCancelToRunner: sendTo('runner', { type: 'cancel' }),
    notifyDaemon: sendParent(
      ({ context }): SessionFinishedEvent => ({
        type: 'session.finished',
        sessionId: context.request.sessionId,
        outcome: context.outcome ?? {
          outcome: 'error',
          phase: context.phase,
          message: 'no outcome recorded',
        },
      }),
    ),
  },
}).createMachine({
  id: 'session',
  description:
    'One agent session: resolve its credentials, assemble it, run it in a container, report its outcome.',
  context: ({ input }) => ({
    request: input.request,
    agent: input.agent,
    ...(input.adopted === undefined ? {} : { adopted: input.adopted }),
    phase: input.adopted?.phase ?? 'resolving',
    startedAt: new Date().toISOString(),
  }),
  initial: 'intake',
  states: {
    intake: {
      description:
        'A new session resolves its credentials first; a session adopted from an earlier daemon goes straight to run.',
      always: [{ guard: 'isAdopted', target: 'run' }, { target: 'resolveCredentials' }],
    },
    resolveCredentials: {
      description:
        "Turn each of the agent's credential sources (env:NAME, file:/path) into a value. Nothing exists in Podman yet.",
      entry: [
        { type: 'setPhase', params: 'resolving' },
        { type: 'announcePhase', params: { phase: 'resolving' } },
      ],
      invoke: {
        src: 'resolveCredentials',
        input: ({ context }) => ({ agent: context.agent }),
        onDone: {
          target: 'assemble',
          actions: { type: 'storeCredentials', params: ({ event }) => event.output },
        },
        onError: {
          target: 'report',
          actions: { type: 'failResolution', params: ({ event }) => messageOf(event.error) },
        },
      },
      on: {
        cancel: { target: 'report', actions: 'markCancelledBeforeRun' },
      },
    },
    assemble: {
      description:
        'Build the session spec and invocation from the agent, the trigger and the resolved values.',
      entry: 'assemble',
      always: 'run',
    },
    run: {
      description:
        'The runner creates the container, clones the repository, runs the command and tears everything down. A cancel is passed to it and it reports `cancelled` after teardown.',
      invoke: {
        id: 'runner',
        src: 'runSession',
        input: ({ context }) => ({
          request: context.request,
          agent: context.agent,
          ...(context.session === undefined ? {} : { session: context.session }),
          ...(context.adopted === undefined ? {} : { adopted: context.adopted }),
        }),
        onError: {
          target: 'report',
          actions: { type: 'failRun', params: ({ event }) => messageOf(event.error) },
        },
      },
      on: {
        'run.phase': {
          actions: [
            { type: 'setPhase', params: ({ event }) => event.phase },
            { type: 'announcePhase', params: ({ event }) => ({ phase: event.phase }) },
          ],
        },
        'run.finished': {
          target: 'report',
          actions: { type: 'storeRunResult', params: ({ event }) => event.result },
        },
        cancel: { actions: 'forwardCancelToRunner' },
      },
    },
    report: {
      description: 'Write the session record, tell every follower the outcome and log it.',
      entry: { type: 'setPhase', params: 'finished' },
      invoke: {
        src: 'reportOutcome',
        input: ({ context }) => ({
          request: context.request,
          outcome: context.outcome ?? { outcome: 'error', phase: 'finished', message: 'no outcome recorded' },
        }),
        onDone: 'done',
        // A report that cannot be written is logged by the reporter; the session still ends.
        onError: 'done',
      },
    },
    done: {
      description: 'The outcome is reported; the daemon forgets this actor.',
      type: 'final',
      entry: 'notifyDaemon',
    },
  },
});

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function defined<T extends Record<string, unknown>>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}
