import { assign, fromPromise, type SnapshotFrom, sendParent, sendTo, setup } from 'xstate';
import type { ResolvedCredentials } from '../adapters/credentials.js';
import type { AgentConfig } from '../config/types.js';
import { type AssembledSession, assembleSession } from '../sessions/assemble.js';
import type { RunResult, SessionOutcome, SessionPhase, SessionRequest } from '../sessions/types.js';
import {
  type AdoptedSession,
  commandEndedIn,
  type RunnerActor,
  runnerMachine,
  runPhaseOf,
} from './runner.machine.js';

export type { AdoptedSession };

export interface SessionInput {
  request: SessionRequest;
  agent: AgentConfig;
  /** The host it runs on, once placed (a queued session has none). */
  host?: string;
  /** Set when the session's container outlived an earlier daemon and this one takes it over. */
  adopted?: AdoptedSession;
}

export interface SessionContext {
  request: SessionRequest;
  agent: AgentConfig;
  host?: string;
  adopted?: AdoptedSession;
  /** Wrapped values: they serialise as "[redacted]". */
  resolved?: ResolvedCredentials;
  session?: AssembledSession;
  /** When this actor was spawned, i.e. left the queue. */
  startedAt: string;
  outcome?: SessionOutcome;
}

export type SessionEvent =
  | { type: 'cancel' }
  /** Its host stopped answering, or answers again (the runner waits for it, then re-attaches). */
  | { type: 'host.down' }
  | { type: 'host.up' };

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
    runner: runnerMachine,
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
    /** Side effect (provided): record and publish a phase change. */
    announcePhase: (_, _params: { phase: SessionPhase }) => {},
    /** Side effect (provided): the log says this daemon supervises a container an earlier one started. */
    announceAdoption: () => {},
    /**
     * Side effect (provided): the runner failed (an exception in one of its actions): its teardown will
     * not run, and XState does not stop what it had started (the container's attachment), so the daemon
     * stops that and removes the container and secrets it made (the failed runner is still the `runner`
     * child of the snapshot the action reads: the transition has not left `run` yet).
     */
    abandonRun: () => {},
    storeRunResult: assign({
      outcome: (_, result: RunResult) => {
        const { outcome, kind, phase, exitCode, signal, message, timings } = result;
        return { outcome, phase, timings, ...defined({ kind, exitCode, signal, message }) };
      },
      session: undefined,
    }),
    failResolution: assign({
      outcome: (_, message: string): SessionOutcome => ({ outcome: 'error', phase: 'resolving', message }),
    }),
    failRun: assign({
      outcome: (_, message: string): SessionOutcome => ({
        outcome: 'error',
        phase: 'creating',
        message: `runner failed: ${message}`,
      }),
      session: undefined,
    }),
    markCancelledBeforeRun: assign({
      outcome: (): SessionOutcome => ({
        outcome: 'cancelled',
        phase: 'resolving',
        message: 'session cancelled before its container was created',
      }),
      resolved: undefined,
      session: undefined,
    }),
    forwardCancelToRunner: sendTo('runner', { type: 'cancel' }),
    /** The daemon's word on the session's host goes to the runner, which follows the container. */
    forwardHostToRunner: sendTo('runner', (_, event: { type: 'host.up' | 'host.down' }) => event),
    notifyDaemon: sendParent(
      ({ context }): SessionFinishedEvent => ({
        type: 'session.finished',
        sessionId: context.request.sessionId,
        outcome: context.outcome ?? {
          outcome: 'error',
          phase: 'finished',
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
    ...(input.host === undefined ? {} : { host: input.host }),
    ...(input.adopted === undefined ? {} : { adopted: input.adopted }),
    startedAt: new Date().toISOString(),
  }),
  initial: 'intake',
  states: {
    intake: {
      description:
        'A new session resolves its credentials first. One adopted from an earlier daemon does not: its container has its values already, and the runner masks its output with those (runner.md, `adopting`).',
      always: [
        { guard: 'isAdopted', target: 'assemble', actions: 'announceAdoption' },
        { target: 'resolveCredentials' },
      ],
    },
    resolveCredentials: {
      description:
        "Turn each of the agent's credential sources (env:NAME, file:/path) into a value. Nothing exists in Podman yet.",
      tags: ['resolving'],
      entry: { type: 'announcePhase', params: { phase: 'resolving' } },
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
        'Build the session spec and invocation from the agent, the trigger and the resolved values (none for an adopted session).',
      entry: 'assemble',
      always: 'run',
    },
    run: {
      description:
        'The runner machine (runner.md) creates the container, follows it to its end and tears everything down; an adopted session resumes where it was. Its output is the run result.',
      invoke: {
        id: 'runner',
        src: 'runner',
        input: ({ context }) => {
          if (!context.session) throw new Error('session machine: run before assemble');
          return {
            session: context.session,
            ...(context.host === undefined ? {} : { host: context.host }),
            ...(context.adopted === undefined ? {} : { adopted: context.adopted }),
          };
        },
        onDone: {
          target: 'report',
          actions: { type: 'storeRunResult', params: ({ event }) => event.output },
        },
        onError: {
          target: 'report',
          actions: [{ type: 'failRun', params: ({ event }) => messageOf(event.error) }, 'abandonRun'],
        },
      },
      initial: 'supervising',
      on: {
        cancel: '.cancelling',
        'host.up': { actions: { type: 'forwardHostToRunner', params: ({ event }) => event } },
        'host.down': { actions: { type: 'forwardHostToRunner', params: ({ event }) => event } },
      },
      states: {
        supervising: { description: 'The runner runs.' },
        cancelling: {
          description:
            'The runner was told to cancel: it stops the container and reports `cancelled` after teardown.',
          entry: 'forwardCancelToRunner',
        },
      },
    },
    report: {
      description: 'Write the session record, tell every follower the outcome and log it.',
      tags: ['finished'],
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
      tags: ['finished'],
      entry: 'notifyDaemon',
    },
  },
});

export type SessionSnapshot = SnapshotFrom<typeof sessionMachine>;

/**
 * The phase of a session, from its states' tags and, while it runs, its runner's. An adopted session
 * whose runner is still reading its container's values is in the phase its container was found in.
 */
export function sessionPhaseOf(snapshot: SessionSnapshot): SessionPhase {
  // The child with id `runner` is the one the `run` state invokes from the runner machine.
  const runner = snapshot.children.runner as RunnerActor | undefined;
  const running = runner ? runPhaseOf(runner.getSnapshot()) : undefined;
  if (running) return running;
  if (snapshot.hasTag('resolving')) return 'resolving';
  if (snapshot.hasTag('finished')) return 'finished';
  return snapshot.context.adopted?.phase ?? 'creating';
}

/** Whether the session's command has ended: its outcome is decided even while its output is archived. */
export function sessionCommandEnded(snapshot: SessionSnapshot): boolean {
  const runner = snapshot.children.runner as RunnerActor | undefined;
  return runner !== undefined && commandEndedIn(runner.getSnapshot());
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function defined<T extends Record<string, unknown>>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}
