import {
  type ActorRefFrom,
  and,
  assign,
  type DoneActorEvent,
  type ErrorActorEvent,
  emit,
  enqueueActions,
  fromCallback,
  fromPromise,
  not,
  raise,
  setup,
  stateIn,
} from 'xstate';
import { LOCAL_HOST } from '../config/hosts.js';
import type { AgentConfig, ScheduleConfig } from '../config/types.js';
import type { ShutdownMode } from '../constants.js';
import { checkTrigger, type RejectionCode, type TriggerFields } from '../sessions/check-trigger.js';
import { type HostSlots, placeQueued } from '../sessions/placement.js';
import { scheduledSessionId, workUnitFor } from '../sessions/schedule.js';
import type { SessionRequest } from '../sessions/types.js';
import type { WorkManifest } from '../sessions/work.js';
import {
  type AdoptedInput,
  downGraceLeft,
  type HostDownEvent,
  type HostInfo,
  type HostNotice,
  type HostRef,
  type HostUpEvent,
  hostAccepts,
  hostMachine,
  type ReconcileSummary,
  type SettledSession,
} from './host.machine.js';
import { type ScheduleFiredEvent, type ScheduleRef, scheduleMachine } from './schedule.machine.js';
import {
  type AdoptedSession,
  type SessionFinishedEvent,
  type SessionInput,
  sessionCommandEnded,
  sessionMachine,
  sessionPhaseOf,
} from './session.machine.js';

export type { AdoptedSession, HostInfo, ReconcileSummary };

export interface DaemonInput {
  agents: AgentConfig[];
  maxSessions: number;
  /** Per scheduled agent: since when its schedule was watched (the state dir's memory, for catch_up). */
  scheduleSince?: Record<string, string>;
  /** The hosts sessions run on, in the order of the configuration; without, the local Podman (`local`). */
  hosts?: HostInfo[];
  /** Idempotency keys of the sessions an earlier daemon recorded (from their records). */
  keys?: KeyEntry[];
  /** How long after its session finished a key still returns it (default KEY_WINDOW_MS). */
  keyWindowMs?: number;
  /** Most keys of finished sessions remembered (default: the records the daemon keeps). */
  keyLimit?: number;
  /** Most sessions queued at once (default MAX_QUEUED_SESSIONS); beyond, triggers are refused `queue_full`. */
  maxQueued?: number;
}

/**
 * Sessions queued at once, at most: each holds its record (and the files of its trigger) until it runs,
 * so a client that triggers without end must not grow the daemon without end.
 */
export const MAX_QUEUED_SESSIONS = 10_000;

/**
 * Sessions of one schedule queued at once, at most, with `overlap: queue`; a firing beyond makes none
 * (schedule.skipped). A schedule firing faster than its sessions end (or one hung with no timeout)
 * otherwise queued a session per firing until the daemon's whole queue (MAX_QUEUED_SESSIONS) was full,
 * and every other agent's triggers were refused queue_full.
 */
export const SCHEDULE_QUEUED_MAX = 100;

/** A trigger repeating a key within this long after the key's session finished gets that session. */
export const KEY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** What an idempotency key stands for: the session its first trigger made. */
export interface KeyEntry {
  key: string;
  sessionId: string;
  agent: string;
  /** When the session finished (ms since the epoch); unset while it is queued or running. */
  finishedAt?: number;
}

/** What happens to the sessions an earlier daemon accepted but did not finish. */
export interface RecoveryPlan {
  /** Accepted but never started: they run again, in their original order. */
  queued: SessionInput[];
  adopted: AdoptedInput[];
  /** Settled at once: abandoned, or an outcome read from an exited container. */
  finished: SettledSession[];
}

export interface ReconcileResult {
  summary: ReconcileSummary;
  recovery: RecoveryPlan;
  /** Hosts the start could not reach, and why: they are down and retried; the others go on. */
  down?: { host: string; reason: string }[];
  /** The Podman version of each host the start reached. */
  versions?: Record<string, string>;
}

/** The hosts as the start's reconciliation found them: down (and why), and the others' Podman versions. */
export interface HostsFound {
  down: { host: string; reason: string }[];
  versions: Record<string, string>;
}

/** Why the state dir takes no writes: `state_dir_full` (no room) or `state_dir_unwritable`. */
export interface StateDirProblem {
  code: 'state_dir_full' | 'state_dir_unwritable';
  reason: string;
}

/** The socket is open; `stateDir` is set when the state dir took no write (the daemon starts degraded). */
export interface OpenResult {
  stateDir?: StateDirProblem;
}

/** The record of an accepted session is on disk (or, for `unrecorded`, could not be written). */
export type TriggerRecordedEvent = { type: 'trigger.recorded'; session: SessionInput; requestId?: string };
export type TriggerUnrecordedEvent = {
  type: 'trigger.unrecorded';
  session: SessionInput;
  requestId?: string;
} & StateDirProblem;

/** A trigger after checkTrigger: the session it becomes, or why it does not. */
export type TriggerCheckedEvent =
  | { type: 'trigger.valid'; session: SessionInput; requestId?: string }
  | { type: 'trigger.invalid'; trigger: TriggerEvent; code: RejectionCode; reason: string };

/** Events the daemon makes itself: from checking and recording a trigger, and from watching the state dir. */
export type InternalEvent =
  | SessionFinishedEvent
  | ScheduleFiredEvent
  | TriggerCheckedEvent
  | TriggerRecordedEvent
  | TriggerUnrecordedEvent
  | ({ type: 'stateDir.unwritable' } & StateDirProblem)
  | { type: 'stateDir.writable' }
  | HostNotice
  /** Finished records were removed from the state dir: their keys are forgotten. */
  | { type: 'records.pruned'; sessionIds: string[] }
  /**
   * Sessions settled without a session actor had their outcomes recorded (src/daemon/main.ts's settle):
   * by a host's reconciliation, also one that failed after it recorded them (no host.up follows), or
   * abandoned while their host stayed away (abandonWaiting, which alone knows them). Their keys count
   * their window from now, as a session's that ends does.
   */
  | { type: 'sessions.settled'; sessionIds: string[] }
  /** A child actor failed: an exception in one of its actions (XState sends it, the id its own). */
  | ErrorActorEvent
  /** A failed host or schedule actor's backoff is over: it is started again (a delayed raise, id retry:ID). */
  | ChildRetryEvent
  /** A failed host's host_down_grace ended during its backoff: what waited for it is abandoned. */
  | HostGraceOverEvent;

/** The backoff of a failed host or schedule actor is over: `id` is its actor's id. */
export type ChildRetryEvent = { type: 'child.retry'; kind: 'host' | 'schedule'; name: string; id: string };

/**
 * daemon.host_down_grace of a host whose actor failed ends (counted from `downSince`, when it went down):
 * raised at its failure, for the sessions that wait for it while no actor counts the grace.
 */
export type HostGraceOverEvent = { type: 'host.graceOver'; host: string; downSince: string };

/**
 * The daemon machine's hostDownGrace delay: what is left of daemon.host_down_grace (`graceMs`) since a
 * failed host went down, as its actors count it (downGraceLeft).
 */
export function failedHostGraceLeft(graceMs: number): (_: unknown, failed: unknown) => number {
  const left = downGraceLeft(graceMs);
  // The params of awaitHostGrace, the one action that uses this delay.
  return (_, failed) => left({ context: failed as { downSince: string } });
}

/** The first restart of a failed host or schedule actor comes this long after its failure. */
export const RESTART_FIRST_MS = 5_000;
/** Each failure in a row doubles the wait before the restart, up to this. */
export const RESTART_MAX_MS = 300_000;
/** A failure this long after the last restart (up and well that long) counts from attempt 1 again. */
export const RESTART_RESET_MS = 600_000;

/**
 * The restarts of a failed host or schedule actor, by its actor's id: how many failures in a row (the
 * restart at retryAt is attempt `attempts`), when it was last restarted, and, while it is failed and the
 * daemon is up, when it is tried again. Whether it is failed, and why, is its actor's own (status
 * `error`, and its error): not kept here. A reload forgets them all.
 */
export interface ChildRestart {
  kind: 'host' | 'schedule';
  name: string;
  attempts: number;
  /** When a retry last started it again (ms since the epoch). */
  lastRestartAt?: number;
  /** While failed: when it is tried again (ms since the epoch); absent while shutting down. */
  retryAt?: number;
  /** A host's: when it went down (or failed, if it was up), so that its next actor's grace counts from then. */
  downSince?: string;
  /**
   * A host's: host_down_grace ended in this outage and what waited for it was abandoned (before the
   * failure, or by host.graceOver during the backoff): its next actor abandons nothing a second time.
   */
  lost?: true;
}

/** How long a failed child waits before its restart number `attempts`: 5 s, doubling, at most 5 min. */
export function restartDelay(attempts: number): number {
  return Math.min(RESTART_FIRST_MS * 2 ** Math.min(attempts - 1, 30), RESTART_MAX_MS);
}

/** What a failed child's attempts are at a new failure: one more, or 1 after RESTART_RESET_MS up. */
function attemptsAt(before: ChildRestart | undefined, now: number): number {
  if (before === undefined || before.lastRestartAt === undefined) return (before?.attempts ?? 0) + 1;
  return now - before.lastRestartAt > RESTART_RESET_MS ? 1 : before.attempts + 1;
}

/** A failed child's attempt and retry time (ISO) as `status` gives them; none while shutting down. */
export function retryFields(restart: ChildRestart | undefined): { attempts?: number; retryAt?: string } {
  if (restart?.retryAt === undefined) return {};
  return { attempts: restart.attempts, retryAt: new Date(restart.retryAt).toISOString() };
}

/** How `status` and `agentd hosts` say what comes of a failed child: its retry, or none while stopping. */
export function retryNote(restart: ChildRestart | undefined): string {
  if (restart?.retryAt === undefined)
    return 'it is not tried again while the daemon shuts down; the next start starts it';
  const at = new Date(restart.retryAt).toISOString().slice(11, 19);
  return `it is tried again at ${at} UTC (attempt ${restart.attempts}), or now by \`agentd reload\``;
}

/** A trigger as the machine receives it: from the socket, the CLI or a script. */
export type TriggerEvent = TriggerFields & {
  type: 'trigger';
  sessionId: string;
  /** The request and input files staged in the session's work dir, by digest (never their content). */
  work?: WorkManifest;
  /** Lets the sender match the emitted answer to its request. */
  requestId?: string;
  /** Set on the trigger a schedule firing makes: the firing's time (ISO). */
  scheduledFor?: string;
};

/**
 * A re-read configuration (SIGHUP, `agentd reload`): triggers accepted from now on use these agents;
 * queued and running sessions keep the definition they were accepted with.
 */
export type ReloadEvent = {
  type: 'reload';
  agents: AgentConfig[];
  maxSessions: number;
  /** The hosts' new max_sessions and labels (hosts are added, removed or moved only by a restart). */
  hosts?: HostInfo[];
  requestId?: string;
};

/**
 * What a client that asks for a shutdown wants, decided by the machine in one step whatever shutdown came
 * before: `graceful` (`agentd stop`) drains a daemon not draining yet and is nothing more to one that is,
 * so it never cancels sessions; `force` (`agentd stop --force`) cancels the running sessions, draining first
 * if it was not. Without a mode (a signal, a scripted `shutdown` event): the first drains, the next cancels.
 */
export type ShutdownEvent = { type: 'shutdown'; mode?: ShutdownMode; requestId?: string };

/** `agentd hosts drain NAME` / `undrain NAME`: no new sessions there, or again. */
export type DrainEvent = { type: 'drain' | 'undrain'; host: string; requestId?: string };

export type DaemonEvent =
  | TriggerEvent
  | { type: 'cancel'; sessionId: string; requestId?: string }
  | DrainEvent
  | ShutdownEvent
  | ReloadEvent
  | InternalEvent;

/** Events a client may send; the others come from the daemon itself and its session actors. */
export type ClientEvent = Exclude<DaemonEvent, InternalEvent>;

/** Answers the machine emits to whoever sent the event. */
export type DaemonEmitted =
  | {
      type: 'trigger.accepted';
      requestId?: string;
      sessionId: string;
      queued: boolean;
      position: number;
      /** The trigger repeated a key: sessionId is the key's first session, nothing new was made. */
      existing?: boolean;
    }
  | { type: 'trigger.rejected'; requestId?: string; sessionId: string; code: RejectionCode; reason: string }
  | { type: 'cancel.accepted'; requestId?: string; sessionId: string; wasQueued: boolean }
  | { type: 'cancel.rejected'; requestId?: string; sessionId: string; reason: string }
  | { type: 'reload.applied'; requestId?: string; agents: string[]; maxSessions: number }
  | { type: 'reload.rejected'; requestId?: string; reason: string }
  | { type: 'drain.applied'; requestId?: string; host: string; drained: boolean }
  | { type: 'drain.rejected'; requestId?: string; host: string; reason: string };

type SessionRef = ActorRefFrom<typeof sessionMachine>;

export interface DaemonContext {
  agents: AgentConfig[];
  maxSessions: number;
  /** Sessions whose actor is alive, by session id. */
  sessions: Record<string, SessionRef>;
  /** Accepted sessions waiting for a free slot, oldest first. */
  queue: SessionInput[];
  /** Running containers of an earlier daemon, taken over once this one is ready. */
  adoptions: AdoptedInput[];
  /**
   * The hosts as configured now, in order (ties in placement go to the first): a reload's max_sessions
   * and labels are here at once, for placement in the same step and for host actors not started yet.
   */
  hostInfo: HostInfo[];
  /** One actor per host, in that order, from when the daemon is first up (the socket open) on. */
  hosts: HostRef[];
  /**
   * What the start's reconciliation found of the hosts (those it could not reach, and why; the versions
   * of the others), kept while the socket opens for the host actors started once it is open.
   */
  hostsFound?: HostsFound;
  reconciled?: ReconcileSummary;
  failure?: string;
  /** While `degraded`: why the state dir takes no writes (what a rejected trigger is told). */
  stateDir?: StateDirProblem;
  /**
   * The schedule actor of each scheduled agent, by agent name. One that failed (an exception in one of
   * its actions: status `error`, and its error says why) stays, as a failed host's does, and fires no
   * more until its retry (restarts) or a reload starts a new one; `status` shows it with why.
   */
  schedules: Record<string, ScheduleRef>;
  /** The failures and restarts of host and schedule actors, by actor id (see ChildRestart). */
  restarts: Record<string, ChildRestart>;
  /** From the input, for the schedules started when the daemon is first up; empty after that. */
  scheduleSince: Record<string, string>;
  /** Idempotency keys, by key: the machine is the one place that decides whether a trigger is new. */
  keys: Record<string, KeyEntry>;
  keyWindowMs: number;
  keyLimit: number;
  maxQueued: number;
}

/**
 * A reload takes effect at once: the queue picks up a raised max_sessions (the daemon's or a host's) or
 * a host's new labels when there is room.
 */
const applyReload = {
  actions: [
    { type: 'applyConfiguration', params: ({ event }: { event: ReloadEvent }) => event },
    { type: 'answerReloaded', params: ({ event }: { event: ReloadEvent }) => event },
  ],
} as const;

/**
 * Before the daemon is ready, triggers are turned away and a shutdown stops it at once (a first one
 * while reconciling waits for the reconciliation: see `reconciling.stopping`; one while opening leaves
 * the recovered sessions to the next start: see `opening`); a reload replaces the configuration that
 * `ready` will accept triggers with.
 */
const whileStarting = {
  trigger: {
    actions: {
      type: 'rejectTrigger',
      params: ({ event }: { event: TriggerEvent }) => ({
        trigger: event,
        code: 'not_accepting' as const,
        reason: 'daemon is starting',
      }),
    },
  },
  shutdown: 'shutdown',
  reload: applyReload,
} as const;

type ReconciledEvent = DoneActorEvent<ReconcileResult>;

/**
 * The daemon is up (the socket open): a host actor for each host, as the start's reconciliation found
 * it; not before, so that a start that stops or fails before has started none for nothing. The hosts
 * found down are announced first: startHosts forgets what the start found.
 */
const startHosts = [
  {
    type: 'announceHostsDown',
    params: ({ context }: { context: DaemonContext }) => context.hostsFound?.down ?? [],
  },
  'startHosts',
] as const;

/**
 * What the start's reconciliation settled is recorded at once: the sessions settled from their exited
 * containers (those containers are gone: their outcome is only here), and its summary.
 */
const recordReconciled = [
  {
    type: 'storeReconcileSummary',
    params: ({ event }: { event: ReconciledEvent }) => event.output.summary,
  },
  {
    type: 'reportSettled',
    params: ({ event }: { event: ReconciledEvent }) => ({ sessions: event.output.recovery.finished }),
  },
  {
    type: 'markKeysFinished',
    params: ({ event }: { event: ReconciledEvent }) =>
      event.output.recovery.finished.map((s) => s.request.sessionId),
  },
] as const;

type CancelEvent = Extract<DaemonEvent, { type: 'cancel' }>;

/**
 * A trigger that repeats a remembered idempotency key: the same agent gets the key's session back
 * (queued, running or finished), another agent is turned away. Checked before anything else, in every
 * state that takes triggers, so a retried request never makes a second session nor fails because the
 * daemon is busy or draining while the first one exists.
 */
const replayKey = [
  {
    guard: { type: 'keyOfOtherAgent', params: ({ event }: { event: TriggerEvent }) => event },
    actions: {
      type: 'rejectTrigger',
      params: ({ context, event }: { context: DaemonContext; event: TriggerEvent }) => ({
        trigger: event,
        code: 'key_conflict' as const,
        reason: `key ${JSON.stringify(event.key)} belongs to session ${context.keys[event.key ?? '']?.sessionId} of agent "${context.keys[event.key ?? '']?.agent}"; use another key for another agent`,
      }),
    },
  },
  {
    guard: { type: 'keyRemembered', params: ({ event }: { event: TriggerEvent }) => event },
    actions: { type: 'answerExisting', params: ({ event }: { event: TriggerEvent }) => event },
  },
] as const;

/**
 * A session tearing down or reporting has its outcome decided (its command ended, or a stop did), as has
 * one adopted after its container exited: a cancel then changes nothing, and says so rather than "is
 * being cancelled".
 */
const rejectFinishingCancel = {
  guard: { type: 'sessionIsFinishing', params: ({ event }: { event: CancelEvent }) => event.sessionId },
  actions: {
    type: 'rejectCancel',
    params: ({ event }: { event: CancelEvent }) => ({
      ...cancelParams(event),
      reason: `session ${event.sessionId} is finishing: its outcome is decided and a cancel changes nothing; \`agentd wait ${event.sessionId}\` gives it`,
    }),
  },
} as const;

/** A cancel of a running session goes to its actor, which stops the container and reports `cancelled`. */
const cancelRunningSession = {
  guard: { type: 'sessionIsRunning', params: ({ event }: { event: CancelEvent }) => event.sessionId },
  actions: [
    { type: 'forwardCancel', params: ({ event }: { event: CancelEvent }) => cancelParams(event) },
    {
      type: 'answerCancelled',
      params: ({ event }: { event: CancelEvent }) => ({ ...cancelParams(event), wasQueued: false }),
    },
  ],
} as const;

const rejectUnknownCancel = {
  actions: { type: 'rejectCancel', params: ({ event }: { event: CancelEvent }) => cancelParams(event) },
} as const;

/**
 * A host came back and was reconciled: its sessions nobody supervised are settled or adopted (not while
 * shutting down: the next daemon adopts them), and the sessions waiting for it re-attach. The keys of
 * those it settled count their window from now, as a session's that ends does.
 */
function hostUp({ adopt }: { adopt: boolean }) {
  return [
    { type: 'reportSettled', params: ({ event }: { event: HostUpEvent }) => ({ sessions: event.finished }) },
    {
      type: 'markKeysFinished',
      params: ({ event }: { event: HostUpEvent }) => event.finished.map((s) => s.request.sessionId),
    },
    ...(adopt
      ? [
          { type: 'spawnAdopted', params: ({ event }: { event: HostUpEvent }) => event.adopted } as const,
          {
            type: 'queueRecovered',
            params: ({ event }: { event: HostUpEvent }) => event.queued ?? [],
          } as const,
        ]
      : []),
    {
      type: 'tellSessionsOn',
      params: ({ event }: { event: HostUpEvent }) => ({
        host: event.host,
        event: { type: 'host.up' as const },
      }),
    },
    {
      type: 'announceHostUp',
      // While shutting down, the sessions it found running are left to the next start: none adopted.
      params: ({ event }: { event: HostUpEvent }) => (adopt ? event : { ...event, adopted: [] }),
    },
  ] as const;
}

/** `drain` and `undrain` go to the host's actor; an unknown host is refused. */
function drainHandler(type: DrainEvent['type']) {
  return [
    {
      guard: { type: 'hostKnown', params: ({ event }: { event: DrainEvent }) => event.host },
      actions: [
        {
          type: 'forwardToHost',
          params: ({ event }: { event: DrainEvent }) => ({ host: event.host, event: { type } }),
        },
        {
          type: 'answerDrain',
          params: ({ event }: { event: DrainEvent }) => ({
            ...drainParams(event),
            drained: type === 'drain',
          }),
        },
      ],
    },
    { actions: { type: 'rejectDrain', params: ({ event }: { event: DrainEvent }) => drainParams(event) } },
  ] as const;
}

/**
 * What `ready` and `degraded` have in common: sessions run, finish and can be cancelled either way.
 * Queued sessions start only where their start can be recorded (`ready`): one started while the state
 * dir takes no writes would still be `queued` on disk, and run a second time after a restart.
 */
const whileUp = (queuedStart: readonly 'startQueuedSessions'[]) =>
  ({
    cancel: [
      {
        guard: { type: 'sessionIsQueued', params: ({ event }: { event: CancelEvent }) => event.sessionId },
        actions: [
          {
            type: 'reportSettled',
            params: ({ context, event }: { context: DaemonContext; event: CancelEvent }) => ({
              sessions: settle(
                context.queue.filter((s) => s.request.sessionId === event.sessionId),
                'session cancelled while queued',
              ),
            }),
          },
          { type: 'removeFromQueue', params: ({ event }: { event: CancelEvent }) => event.sessionId },
          { type: 'markKeysFinished', params: ({ event }: { event: CancelEvent }) => [event.sessionId] },
          {
            type: 'answerCancelled',
            params: ({ event }: { event: CancelEvent }) => ({ ...cancelParams(event), wasQueued: true }),
          },
        ],
      },
      rejectFinishingCancel,
      cancelRunningSession,
      rejectUnknownCancel,
    ],
    'session.finished': {
      actions: [
        { type: 'forgetSession', params: ({ event }: { event: SessionFinishedEvent }) => event.sessionId },
        {
          type: 'markKeysFinished',
          params: ({ event }: { event: SessionFinishedEvent }) => [event.sessionId],
        },
        ...queuedStart,
      ],
    },
    reload: {
      // A schedule or host whose actor failed starts again at once, as the reload configures it, and
      // counts its attempts from 1 again: its pending retry is cancelled.
      actions: [
        ...applyReload.actions,
        'cancelRetries',
        // Before the restarts are forgotten: a host's new actor gets whether its grace is over (lost).
        'restartFailedHosts',
        'forgetRestarts',
        'stopChangedSchedules',
        'startSchedules',
        ...queuedStart,
      ],
    },
    'host.up': { actions: [...hostUp({ adopt: true }), ...queuedStart] },
    // A failed host or schedule's backoff is over: it starts again (a host takes sessions once reconciled).
    'child.retry': {
      guard: { type: 'retryDue', params: ({ event }: { event: ChildRetryEvent }) => event },
      actions: [
        { type: 'restartChild', params: ({ event }: { event: ChildRetryEvent }) => event },
        {
          type: 'announceRestarted',
          params: ({ context, event }: { context: DaemonContext; event: ChildRetryEvent }) => ({
            kind: event.kind,
            name: event.name,
            attempt: context.restarts[event.id]?.attempts ?? 0,
          }),
        },
      ],
    },
    // A host undrained may take the sessions waiting for it.
    'host.admission': { actions: [...queuedStart] },
    shutdown: [
      // A forced shutdown is the two a signal takes, in one step: the drain, then its cancel of what runs.
      {
        guard: { type: 'forcedShutdown', params: ({ event }: { event: ShutdownEvent }) => event },
        target: 'shutdown',
        actions: { type: 'raiseShutdown', params: ({ event }: { event: ShutdownEvent }) => event },
      },
      { target: 'shutdown' },
    ],
  }) as const;

/** Params of the provided announceFiring* actions. */
type FiringParams = { agent: string; firing: string; reason: string };

type RecordParams = { session: SessionInput; requestId?: string };

export const daemonMachine = setup({
  types: {
    context: {} as DaemonContext,
    events: {} as DaemonEvent,
    input: {} as DaemonInput,
    emitted: {} as DaemonEmitted,
  },
  actors: {
    session: sessionMachine,
    schedule: scheduleMachine,
    host: hostMachine,
    reconcile: fromPromise<ReconcileResult>(async () => {
      throw new Error('daemon machine: actor reconcile must be provided');
    }),
    openSocket: fromPromise<OpenResult>(async () => {
      throw new Error('daemon machine: actor openSocket must be provided');
    }),
    /** Sends stateDir.writable once the state dir takes writes again (provided: polls it). */
    watchStateDir: fromCallback(() => {
      throw new Error('daemon machine: actor watchStateDir must be provided');
    }),
  },
  guards: {
    /**
     * Provided: the id belongs to a session that has a record (a finished one, say): a session id is
     * used once. This default knows of none.
     */
    sessionIdRecorded: (_, _sessionId: string) => false,
    sessionIdInUse: ({ context }, sessionId: string) => sessionIdInUse(context, sessionId),
    queueFull: ({ context }) => queueFull(context),
    sessionIsQueued: ({ context }, sessionId: string) =>
      context.queue.some((s) => s.request.sessionId === sessionId),
    sessionIsRunning: ({ context }, sessionId: string) => Object.hasOwn(context.sessions, sessionId),
    sessionIsFinishing: ({ context }, sessionId: string) => {
      const ref = Object.hasOwn(context.sessions, sessionId) ? context.sessions[sessionId] : undefined;
      const snapshot = ref?.getSnapshot();
      // Its container had exited before this daemon adopted it: its log is read, nothing is stopped.
      if (snapshot?.context.adopted?.exited) return true;
      // Its command has ended and its output is being archived: a stop would only cut the archive short.
      if (snapshot !== undefined && sessionCommandEnded(snapshot)) return true;
      const phase = snapshot === undefined ? undefined : sessionPhaseOf(snapshot);
      // Tearing down, or reporting (sealing its record): the outcome is decided either way.
      return phase === 'tearing_down' || phase === 'finished';
    },
    noSessionsRunning: ({ context }) => Object.keys(context.sessions).length === 0,
    /**
     * A host back after an outage is being reconciled: it records the outcomes it reads from exited
     * containers before it removes them, and its `host.up` reports them.
     */
    hostReconciling: ({ context }) => reconcilingHosts(context).length > 0,
    /** A shutdown came while the start's reconciliation ran. */
    shutdownPending: stateIn('#daemon.reconciling.stopping'),
    /** A shutdown that never goes further than a drain (`agentd stop`): see ShutdownEvent. */
    gracefulShutdown: (_, event: ShutdownEvent) => event.mode === 'graceful',
    /** A shutdown that cancels the running sessions whatever came before (`agentd stop --force`). */
    forcedShutdown: (_, event: ShutdownEvent) => event.mode === 'force',
    /** overlap: skip, and a session from this agent's schedule is queued or running. */
    overlapSkips: ({ context }, fired: ScheduleFiredEvent) =>
      overlapOf(context, fired.agent) === 'skip' && activeScheduled(context, fired.agent) !== undefined,
    /** overlap: queue, and SCHEDULE_QUEUED_MAX sessions from this agent's schedule wait already. */
    scheduleQueueFull: ({ context }, fired: ScheduleFiredEvent) =>
      queuedScheduled(context, fired.agent) >= SCHEDULE_QUEUED_MAX,
    /** A host with an actor that has not failed (a failed one takes no drain: see rejectDrain). */
    hostKnown: ({ context }, host: string) =>
      context.hosts.some((h) => h.getSnapshot().context.name === host && h.getSnapshot().status !== 'error'),
    keyRemembered: ({ context }, trigger: TriggerEvent) => liveKey(context, trigger.key) !== undefined,
    keyOfOtherAgent: ({ context }, trigger: TriggerEvent) => {
      const entry = liveKey(context, trigger.key);
      return entry !== undefined && entry.agent !== trigger.agent;
    },
    stateDirUnwritable: (_, opened: OpenResult | undefined) => opened?.stateDir !== undefined,
    /** A failed child's retry that still stands: it is failed, and no reload started it meanwhile. */
    retryDue: ({ context }, retry: ChildRetryEvent) => {
      const restart = Object.hasOwn(context.restarts, retry.id) ? context.restarts[retry.id] : undefined;
      if (restart?.retryAt === undefined) return false;
      if (retry.kind === 'schedule') return failedScheduleRef(context, retry.name)?.id === retry.id;
      return context.hosts.some((h) => h.id === retry.id && h.getSnapshot().status === 'error');
    },
    /**
     * A failed host's grace that still stands: the host is failed still, in the same outage (a new actor
     * counts the grace itself), and what waited for it was not abandoned yet.
     */
    graceOverDue: ({ context }, over: HostGraceOverEvent) => {
      const id = hostActorId(over.host);
      const restart = Object.hasOwn(context.restarts, id) ? context.restarts[id] : undefined;
      if (restart === undefined || restart.lost || restart.downSince !== over.downSince) return false;
      return context.hosts.some((h) => h.id === id && h.getSnapshot().status === 'error');
    },
  },
  delays: {
    /** Provided: what is left of daemon.host_down_grace since a failed host went down (failedHostGraceLeft). */
    hostDownGrace: failedHostGraceLeft(600_000),
  },
  actions: {
    queueSession: assign({
      queue: ({ context }, session: SessionInput) => [...context.queue, session],
    }),
    /** After startQueuedSessions: the session either started or waits at its place in the queue. */
    answerAccepted: emit(({ context }, recorded: RecordParams) => {
      const index = context.queue.findIndex(
        (s) => s.request.sessionId === recorded.session.request.sessionId,
      );
      return {
        type: 'trigger.accepted' as const,
        requestId: recorded.requestId,
        sessionId: recorded.session.request.sessionId,
        queued: index !== -1,
        position: index + 1,
      };
    }),
    answerExisting: emit(({ context }, trigger: TriggerEvent) => {
      const sessionId = (liveKey(context, trigger.key) as KeyEntry).sessionId;
      const index = context.queue.findIndex((s) => s.request.sessionId === sessionId);
      return {
        type: 'trigger.accepted' as const,
        requestId: trigger.requestId,
        sessionId,
        queued: index !== -1,
        position: index + 1,
        existing: true,
      };
    }),
    rememberKey: assign({
      keys: ({ context }, session: SessionInput) => {
        const { key, sessionId, agent } = session.request;
        if (key === undefined) return context.keys;
        return boundKeys({ ...context.keys, [key]: { key, sessionId, agent } }, context);
      },
    }),
    markKeysFinished: assign({
      keys: ({ context }, sessionIds: string[]) => {
        const finished = new Set(sessionIds);
        if (!Object.values(context.keys).some((e) => finished.has(e.sessionId))) return context.keys;
        const now = Date.now();
        const keys = Object.fromEntries(
          Object.entries(context.keys).map(([key, e]) => [
            key,
            finished.has(e.sessionId) && e.finishedAt === undefined ? { ...e, finishedAt: now } : e,
          ]),
        );
        return boundKeys(keys, context);
      },
    }),
    forgetKeys: assign({
      keys: ({ context }, sessionIds: string[]) => {
        const gone = new Set(sessionIds);
        return Object.fromEntries(Object.entries(context.keys).filter(([, e]) => !gone.has(e.sessionId)));
      },
    }),
    rejectTrigger: emit((_, params: { trigger: TriggerEvent; code: RejectionCode; reason: string }) => ({
      type: 'trigger.rejected' as const,
      requestId: params.trigger.requestId,
      sessionId: params.trigger.sessionId,
      code: params.code,
      reason: params.reason,
    })),
    /** The trigger rules, applied once per trigger: trigger.valid with the session, or trigger.invalid with why. */
    checkTrigger: raise(({ context }, trigger: TriggerEvent) => checked(context.agents, trigger)),
    /** The shutdown again, in the same step: a forced one's cancel, once the drain has begun. */
    raiseShutdown: raise((_, shutdown: ShutdownEvent) => shutdown),
    /** Side effect (provided): the daemon takes requests; says so (log, service manager). */
    announceUp: (_, _params: undefined) => {},
    /** Side effect (provided): the state dir took no write; triggers are rejected until it does. */
    announceDegraded: (_, _params: undefined) => {},
    /** Side effect (provided): the state dir takes writes again. */
    announceWritable: (_, _params: undefined) => {},
    /**
     * Side effect (provided): shutting down, with how many sessions are left to finish and the hosts whose
     * reconciliation is waited for.
     */
    announceShutdown: (_, _params: { running: number; reconciling: string[] }) => {},
    /**
     * Side effect (provided): a shutdown came while the start reconciles; the daemon stops once the
     * reconciliation has ended and its outcomes are recorded.
     */
    announceShutdownPending: (_, _params: undefined) => {},
    /**
     * Side effect (provided): the start's reconciliation failed after a shutdown came; the daemon stops
     * as asked, and the next start reconciles again.
     */
    announceReconcileFailed: (_, _params: string) => {},
    /**
     * Side effect (provided): a second shutdown cancels the running sessions, and no longer waits for the
     * hosts' reconciliations under way (they are cut short).
     */
    announceCancelAll: (_, _params: { running: number; reconciling: string[] }) => {},
    /**
     * Side effect (provided): writes the accepted session's record durably, then raises
     * trigger.recorded, or trigger.unrecorded when the state dir cannot take it. A trigger is answered
     * only after that, so "accepted" always means "on disk". This default records nothing.
     */
    recordAccepted: raise((_, params: RecordParams) => ({ type: 'trigger.recorded' as const, ...params })),
    /** Side effect (provided): a host is back, reconciled; its sessions are recovered. */
    announceHostUp: (_, _params: HostUpEvent) => {},
    /** Side effect (provided): a host stopped answering: no new sessions go there. */
    announceHostDown: (_, _params: HostDownEvent) => {},
    /**
     * Side effect (provided): a host down for longer than the grace period, or whose actor failed while
     * the daemon shuts down (`reason`); the sessions of an earlier daemon that waited for it since the start are settled
     * `abandoned`, and the machine is sent `sessions.settled` with them (their keys).
     */
    abandonWaiting: (_, _params: { host: string; reason?: string }) => {},
    /**
     * Side effect (provided): a host's actor failed; the host takes no new sessions until its retry
     * (`restart`: its attempt and when; no retryAt while shutting down) or a reload.
     */
    announceHostFailed: (_, _params: { host: string; reason: string; restart?: ChildRestart }) => {},
    /** Side effect (provided): hosts the start could not reach; they are retried. */
    announceHostsDown: (_, _params: { host: string; reason: string }[]) => {},
    /** Side effect (provided): sessions settled without a session actor get their outcome recorded and reported. */
    reportSettled: (_, _params: { sessions: SettledSession[] }) => {},
    recoverSessions: assign(({ context }, recovery: RecoveryPlan) => ({
      queue: [...recovery.queued, ...context.queue],
      adoptions: recovery.adopted,
    })),
    adoptSessions: assign(({ context, spawn }) => {
      const sessions = { ...context.sessions };
      for (const session of context.adoptions) {
        sessions[session.request.sessionId] = spawn('session', {
          id: session.request.sessionId,
          input: session,
        });
      }
      return { sessions, adoptions: [] };
    }),
    /** Sessions of a host's reconciliation whose container never started: they wait first in the queue. */
    queueRecovered: assign(({ context }, queued: SessionInput[]) =>
      queued.length === 0 ? {} : { queue: [...queued, ...context.queue] },
    ),
    /** Sessions of a host that came back, whose containers run on: supervised from where they are. */
    spawnAdopted: assign(({ context, spawn }, adopted: AdoptedInput[]) => {
      const sessions = { ...context.sessions };
      for (const session of adopted) {
        const id = session.request.sessionId;
        if (!(id in sessions)) sessions[id] = spawn('session', { id, input: session });
      }
      return { sessions };
    }),
    /**
     * Oldest first, every queued session that fits starts, on the host placement picks: within
     * max_sessions overall, its host's max_sessions and its agent's max_concurrent. One that does not
     * fit keeps its place; later ones may start.
     */
    startQueuedSessions: assign(({ context, spawn }) => {
      const free = context.maxSessions - Object.keys(context.sessions).length;
      if (free <= 0 || context.queue.length === 0) return {};
      const perAgent = new Map<string, number>();
      for (const { agent } of runningRequests(context)) perAgent.set(agent, (perAgent.get(agent) ?? 0) + 1);
      const placed = placeQueued(
        context.queue,
        hostSlots(context),
        free,
        (next) => {
          const { agent } = next.request;
          const limit = maxConcurrentOf(context.agents, next);
          if (limit !== undefined && (perAgent.get(agent) ?? 0) >= limit) return false;
          perAgent.set(agent, (perAgent.get(agent) ?? 0) + 1);
          return true;
        },
        // Where it may run is the operator's current word (a reload may move an agent to other hosts).
        (next) => currentAgentOf(context.agents, next),
      );
      if (placed.length === 0) return {};
      const sessions = { ...context.sessions };
      const started = new Set<SessionInput>();
      for (const { session, host } of placed) {
        const id = session.request.sessionId;
        sessions[id] = spawn('session', { id, input: { ...session, host } });
        started.add(session);
      }
      return { sessions, queue: context.queue.filter((s) => !started.has(s)) };
    }),
    /** What the start's reconciliation found of the hosts, for their actors once the daemon is up. */
    storeHostsFound: assign({ hostsFound: (_, found: HostsFound) => found }),
    /**
     * The daemon is up: a host actor for each host, up, or down with the reason the start's reconciliation
     * found, and retried.
     */
    startHosts: assign(({ context, spawn }) => ({
      hostsFound: undefined,
      hosts: context.hostInfo.map((host) => {
        const reason = context.hostsFound?.down.find((d) => d.host === host.name)?.reason;
        const version = context.hostsFound?.versions[host.name];
        return spawn('host', {
          id: hostActorId(host.name),
          input: {
            host,
            ...(reason === undefined ? {} : { down: reason }),
            ...(version === undefined ? {} : { version }),
          },
        });
      }),
    })),
    /**
     * A reload watches again a host whose actor failed: a new actor, which starts down, so that the host
     * is probed and reconciled before it takes sessions; drained again if the failed one was.
     */
    restartFailedHosts: enqueueActions(({ context, enqueue }) => {
      const failed = context.hosts.filter((ref) => ref.getSnapshot().status === 'error');
      if (failed.length === 0) return;
      for (const ref of failed) enqueue.stopChild(ref);
      const drained = failed.filter((ref) => ref.getSnapshot().hasTag('drained')).map((ref) => ref.id);
      enqueue.assign({
        hosts: ({ context: now, spawn }) =>
          now.hosts.map((ref) => {
            const host = failed.includes(ref)
              ? now.hostInfo.find((h) => ref.id === hostActorId(h.name))
              : undefined;
            if (host === undefined) return ref;
            // The sessions that wait for it still wait, for host_down_grace from when it went down (none
            // if the grace ended during the backoff: they were abandoned then).
            const downSince = ref.getSnapshot().context.downSince;
            const lost = Object.hasOwn(now.restarts, ref.id) && now.restarts[ref.id]?.lost === true;
            return spawn('host', {
              id: hostActorId(host.name),
              input: {
                host,
                down: 'its supervision failed and a reload started it again: it is probed and reconciled before it takes sessions',
                ...(downSince === undefined ? {} : { downSince }),
                ...(downSince !== undefined && lost ? { lost: true } : {}),
              },
            });
          }),
      });
      // To the new actors, by id: the assign above has made them.
      for (const id of drained) enqueue.sendTo(id, { type: 'drain' });
    }),
    /**
     * A second shutdown: the hosts are watched no more (no probe, no reconciliation; one under way is cut
     * short). Their actors stay in the context, stopped, for what `agentd hosts` shows of them.
     */
    stopHosts: enqueueActions(({ context, enqueue }) => {
      for (const ref of context.hosts) enqueue.stopChild(ref);
    }),
    /** A shutdown while the socket opens: the recovered queue and adopted sessions stay as their records are. */
    leaveRecovered: assign({ queue: [], adoptions: [] }),
    tellSessionsOn: enqueueActions(
      ({ context, enqueue }, params: { host: string; event: { type: 'host.up' | 'host.down' } }) => {
        for (const ref of Object.values(context.sessions)) {
          if (ref.getSnapshot().context.host === params.host) enqueue.sendTo(ref, params.event);
        }
      },
    ),
    forwardToHost: enqueueActions(
      ({ context, enqueue }, params: { host: string; event: { type: 'drain' | 'undrain' } }) => {
        const ref = context.hosts.find((h) => h.getSnapshot().context.name === params.host);
        // Not to one a second shutdown stopped (stopHosts): nothing would take it.
        if (ref?.getSnapshot().status === 'active') enqueue.sendTo(ref, params.event);
      },
    ),
    answerDrain: emit((_, params: { host: string; requestId?: string; drained: boolean }) => ({
      type: 'drain.applied' as const,
      ...params,
    })),
    rejectDrain: emit(({ context }, params: { host: string; requestId?: string }) => ({
      type: 'drain.rejected' as const,
      ...params,
      reason: context.hosts.some(
        (h) => h.id === hostActorId(params.host) && h.getSnapshot().status === 'error',
      )
        ? `the daemon's supervision of host ${params.host} failed: it takes no new sessions; \`agentd reload\` (or a restart) watches it again, drain or undrain it then`
        : context.hostInfo.some((h) => h.name === params.host)
          ? 'the daemon is starting: hosts can be drained once it is ready'
          : `no host ${JSON.stringify(params.host)}; known hosts: ${context.hostInfo.map((h) => h.name).join(', ')}`,
    })),
    /** A schedule actor for every scheduled agent that has none yet (when the daemon is first up). */
    startSchedules: assign(({ context, spawn }) => {
      const schedules = { ...context.schedules };
      for (const agent of context.agents) {
        // Own keys only: an agent named `constructor` has no schedule yet.
        // One whose actor failed is here too: it waits for its retry (restartChild), or a reload's
        // stopChangedSchedules.
        if (agent.schedule === undefined || Object.hasOwn(schedules, agent.name)) continue;
        // Own keys here too: `constructor` would be Object's function, not a time.
        const since = Object.hasOwn(context.scheduleSince, agent.name)
          ? context.scheduleSince[agent.name]
          : undefined;
        schedules[agent.name] = spawn('schedule', {
          id: scheduleActorId(agent.name),
          input: { agent: agent.name, schedule: agent.schedule, ...(since === undefined ? {} : { since }) },
        });
      }
      return { schedules, scheduleSince: {} };
    }),
    /**
     * After a reload: a schedule that changed or went away stops (startSchedules then starts the new
     * and changed ones from now, without catch-up); one that is the same keeps its actor and timing,
     * unless its actor failed (it starts again, as the reload configures it).
     */
    stopChangedSchedules: enqueueActions(({ context, enqueue }) => {
      const kept: Record<string, ScheduleRef> = {};
      // By name, not a search of the agents for each schedule: 10,000 scheduled agents held the event
      // loop 0.5 to 0.8 s on each reload.
      const schedules = schedulesByName(context.agents);
      for (const [name, ref] of Object.entries(context.schedules)) {
        const now = schedules.get(name);
        const snapshot = ref.getSnapshot();
        if (now !== undefined && snapshot.status !== 'error' && sameSchedule(now, snapshot.context.schedule))
          kept[name] = ref;
        else enqueue.stopChild(ref);
      }
      enqueue.assign({ schedules: kept });
    }),
    /**
     * A host or schedule actor failed (an exception in one of its actions): its failure is counted and,
     * unless the daemon shuts down, its restart is set for after the backoff (restartDelay). Its actor
     * stays, failed, for what `status` and `agentd hosts` show (why: its error), until it starts again.
     */
    noteFailure: enqueueActions(({ context, enqueue }, failed: FailedChildOf & { retry: boolean }) => {
      const id = failed.kind === 'host' ? hostActorId(failed.name) : scheduleActorId(failed.name);
      const now = Date.now();
      const before = Object.hasOwn(context.restarts, id) ? context.restarts[id] : undefined;
      const attempts = attemptsAt(before, now);
      const retrying = failed.retry;
      const delay = restartDelay(attempts);
      const hostRef = failed.kind === 'host' ? context.hosts.find((h) => h.id === id) : undefined;
      const restart: ChildRestart = {
        kind: failed.kind,
        name: failed.name,
        attempts,
        ...(before?.lastRestartAt === undefined ? {} : { lastRestartAt: before.lastRestartAt }),
        ...(retrying ? { retryAt: now + delay } : {}),
        ...(hostRef === undefined
          ? {}
          : { downSince: hostRef.getSnapshot().context.downSince ?? new Date(now).toISOString() }),
        ...(hostRef?.getSnapshot().matches({ connection: { away: { grace: 'lost' } } })
          ? { lost: true }
          : {}),
      };
      enqueue.assign({ restarts: { ...context.restarts, [id]: restart } });
      if (retrying) {
        enqueue.raise(
          { type: 'child.retry', kind: failed.kind, name: failed.name, id },
          { id: retryId(id), delay },
        );
      }
    }),
    /**
     * A host's actor failed: its grace ends when it would have ended for that actor (host.graceOver), so
     * that the sessions waiting for it are abandoned then, not when the next actor starts after the
     * backoff. One that comes after a new actor took over, or after they were abandoned, changes nothing.
     */
    awaitHostGrace: raise(
      (_, failed: { host: string; downSince: string }): HostGraceOverEvent => ({
        type: 'host.graceOver',
        ...failed,
      }),
      { delay: 'hostDownGrace' },
    ),
    /** A failed host's grace ended during its backoff: its next actor abandons nothing a second time. */
    markHostLost: assign({
      restarts: ({ context }, host: string) => {
        const id = hostActorId(host);
        const restart = context.restarts[id];
        return restart === undefined
          ? context.restarts
          : { ...context.restarts, [id]: { ...restart, lost: true as const } };
      },
    }),
    /** A reload (which starts every failed child at once) and a shutdown cancel the pending retries. */
    cancelRetries: enqueueActions(({ context, enqueue }) => {
      for (const [id, restart] of Object.entries(context.restarts)) {
        if (restart.retryAt !== undefined) enqueue.cancel(retryId(id));
      }
      enqueue.assign({
        restarts: Object.fromEntries(
          Object.entries(context.restarts).map(([id, { retryAt: _retryAt, ...rest }]) => [id, rest]),
        ),
      });
    }),
    /** A reload starts every failed child afresh: attempts count from 1 again. */
    forgetRestarts: assign({ restarts: {} }),
    /**
     * A failed host or schedule's backoff is over: a schedule starts again as startSchedules starts one,
     * from now (no catch-up of the firings it missed); a host gets a new actor, which starts down (probed
     * and reconciled before it takes sessions), drained if the failed one was, and whose host_down_grace
     * counts from when the host went down (the sessions waiting for it wait no longer for the failure).
     */
    restartChild: enqueueActions(({ context, enqueue }, retry: ChildRetryEvent) => {
      const restart = context.restarts[retry.id];
      if (restart === undefined) return;
      const { retryAt: _retryAt, ...rest } = restart;
      const restarted: ChildRestart = { ...rest, lastRestartAt: Date.now() };
      if (retry.kind === 'schedule') {
        const failed = failedScheduleRef(context, retry.name);
        if (failed === undefined) return;
        enqueue.stopChild(failed);
        const agent = context.agents.find((a) => a.name === retry.name);
        const { [retry.name]: _failed, ...schedules } = context.schedules;
        enqueue.assign({ schedules, restarts: { ...context.restarts, [retry.id]: restarted } });
        if (agent?.schedule === undefined) return;
        const schedule = agent.schedule;
        enqueue.assign({
          schedules: ({ context: now, spawn }) => ({
            ...now.schedules,
            [retry.name]: spawn('schedule', {
              id: retry.id,
              input: { agent: retry.name, schedule },
            }),
          }),
        });
        return;
      }
      const ref = context.hosts.find((h) => h.id === retry.id);
      const host = context.hostInfo.find((h) => h.name === retry.name);
      if (ref === undefined || ref.getSnapshot().status !== 'error' || host === undefined) return;
      const drained = ref.getSnapshot().hasTag('drained');
      enqueue.stopChild(ref);
      enqueue.assign({
        restarts: { ...context.restarts, [retry.id]: restarted },
        hosts: ({ context: now, spawn }) =>
          now.hosts.map((each) =>
            each !== ref
              ? each
              : spawn('host', {
                  id: retry.id,
                  input: {
                    host,
                    down: `its supervision failed and was started again (attempt ${restart.attempts}): it is probed and reconciled before it takes sessions`,
                    ...(restart.downSince === undefined ? {} : { downSince: restart.downSince }),
                    ...(restart.lost ? { lost: true } : {}),
                  },
                }),
          ),
      });
      if (drained) enqueue.sendTo(retry.id, { type: 'drain' });
    }),
    /**
     * Side effect (provided): a failed host's or schedule's backoff is over and it starts again (restart
     * number `attempt`).
     */
    announceRestarted: (_, _params: { kind: 'host' | 'schedule'; name: string; attempt: number }) => {},
    /**
     * Side effect (provided): a schedule's actor failed; it fires no more until its retry (`restart`:
     * its attempt and when; no retryAt while shutting down) or a reload.
     */
    announceScheduleFailed: (_, _params: { agent: string; reason: string; restart?: ChildRestart }) => {},
    /** A shutdown: no schedule fires any more; the failed ones stay, for what `status` shows of them. */
    stopSchedules: enqueueActions(({ context, enqueue }) => {
      const failed: Record<string, ScheduleRef> = {};
      for (const [name, ref] of Object.entries(context.schedules)) {
        if (ref.getSnapshot().status === 'error') failed[name] = ref;
        else enqueue.stopChild(ref);
      }
      enqueue.assign({ schedules: failed });
    }),
    /** A firing becomes a trigger like any other, with a session id of its own (see scheduledSessionId). */
    triggerScheduled: raise(({ context }, fired: ScheduleFiredEvent): TriggerEvent => {
      const schedule = context.agents.find((a) => a.name === fired.agent)?.schedule;
      const workUnit = schedule && workUnitFor(schedule, fired.agent, new Date(fired.firing));
      return {
        type: 'trigger',
        sessionId: scheduledSessionId(fired.agent, fired.firing),
        agent: fired.agent,
        requestId: `schedule:${fired.agent}:${fired.firing}`,
        scheduledFor: fired.firing,
        ...(workUnit === undefined ? {} : { workUnit }),
      };
    }),
    /** Side effect (provided): a firing made no session because one from the schedule is still active. */
    announceFiringSkipped: (_, _params: FiringParams) => {},
    /** Side effect (provided): a firing made no session because the daemon takes no triggers now. */
    announceFiringMissed: (_, _params: FiringParams) => {},
    forgetSession: enqueueActions(({ context, enqueue }, sessionId: string) => {
      const ref = context.sessions[sessionId];
      // A finished session actor is stopped, so the daemon does not keep one child per session forever.
      if (ref) enqueue.stopChild(ref);
      const { [sessionId]: _finished, ...rest } = context.sessions;
      enqueue.assign({ sessions: rest });
    }),
    forwardCancel: enqueueActions(
      ({ context, enqueue }, params: { sessionId: string; requestId?: string }) => {
        const ref = context.sessions[params.sessionId];
        if (ref) enqueue.sendTo(ref, { type: 'cancel' });
      },
    ),
    removeFromQueue: assign({
      queue: ({ context }, sessionId: string) =>
        context.queue.filter((s) => s.request.sessionId !== sessionId),
    }),
    answerCancelled: emit((_, params: { sessionId: string; requestId?: string; wasQueued: boolean }) => ({
      type: 'cancel.accepted' as const,
      ...params,
    })),
    rejectCancel: emit((_, params: { sessionId: string; requestId?: string; reason?: string }) => ({
      type: 'cancel.rejected' as const,
      ...params,
      reason: params.reason ?? `no queued or running session ${params.sessionId}; see \`agentd status\``,
    })),
    clearQueue: assign({ queue: [] }),
    cancelAllSessions: enqueueActions(({ context, enqueue }) => {
      for (const ref of Object.values(context.sessions)) enqueue.sendTo(ref, { type: 'cancel' });
    }),
    applyConfiguration: enqueueActions(({ context, enqueue }, reload: ReloadEvent) => {
      // Before the schedules start (a reload while starting): a schedule that changed or went away
      // starts afresh, as one a reload changes later does; the remembered progress was of the old one.
      const scheduleSince: Record<string, string> = {};
      const remembered = Object.entries(context.scheduleSince);
      // Schedules by agent name, not a search of the agents for each one.
      const running = remembered.length === 0 ? undefined : schedulesByName(context.agents);
      const next = remembered.length === 0 ? undefined : schedulesByName(reload.agents);
      for (const [name, since] of remembered) {
        const before = running?.get(name);
        const after = next?.get(name);
        if (before && after && sameSchedule(before, after)) scheduleSince[name] = since;
      }
      const hostInfo = context.hostInfo.map((host) => {
        const update = reload.hosts?.find((h) => h.name === host.name);
        return update === undefined
          ? host
          : { name: host.name, maxSessions: update.maxSessions, labels: update.labels };
      });
      enqueue.assign({ agents: reload.agents, maxSessions: reload.maxSessions, scheduleSince, hostInfo });
      // The host actor gets them too, for what `agentd hosts` shows; placement reads hostInfo, as the
      // event reaches the actor only after this step.
      for (const update of reload.hosts ?? []) {
        const ref = context.hosts.find((h) => h.getSnapshot().context.name === update.name);
        if (ref) {
          enqueue.sendTo(ref, {
            type: 'reconfigure',
            maxSessions: update.maxSessions,
            labels: update.labels,
          });
        }
      }
    }),
    answerReloaded: emit((_, reload: ReloadEvent) => ({
      type: 'reload.applied' as const,
      requestId: reload.requestId,
      agents: reload.agents.map((a) => a.name),
      maxSessions: reload.maxSessions,
    })),
    rejectReload: emit((_, reload: ReloadEvent) => ({
      type: 'reload.rejected' as const,
      requestId: reload.requestId,
      reason: 'the daemon is shutting down; the new configuration applies when it starts again',
    })),
    storeReconcileSummary: assign({ reconciled: (_, summary: ReconcileSummary) => summary }),
    storeFailure: assign({ failure: (_, message: string) => message }),
    storeStateDirProblem: assign({ stateDir: (_, problem: StateDirProblem) => problem }),
    clearStateDirProblem: assign({ stateDir: undefined }),
  },
}).createMachine({
  id: 'daemon',
  description:
    'The agentd daemon: owns its Podman namespace, accepts triggers and runs one session actor per trigger.',
  context: ({ input }) => ({
    agents: input.agents,
    maxSessions: input.maxSessions,
    sessions: {},
    queue: [],
    adoptions: [],
    schedules: {},
    restarts: {},
    scheduleSince: input.scheduleSince ?? {},
    hostInfo: input.hosts ?? [LOCAL_ONLY],
    hosts: [],
    keys: keysOfRecords(input.keys ?? []),
    keyWindowMs: input.keyWindowMs ?? KEY_WINDOW_MS,
    keyLimit: input.keyLimit ?? 200,
    maxQueued: input.maxQueued ?? MAX_QUEUED_SESSIONS,
  }),
  initial: 'reconciling',
  on: {
    // A session actor that failed (an exception in one of its own actions: a record it could not
    // write, a bug) ends with one outcome, error with the reason, recorded as a session settled without
    // an actor is, and the daemon goes on; its followers and its key hear it as any other end. A
    // schedule actor that failed fires no more until it is started again after a backoff (noteFailure,
    // child.retry) or by a reload, said in the log and in `status`, and the daemon goes on. A host actor
    // that failed takes no new sessions (placement reads its status), its running sessions go on under
    // their own actors, and a new actor is started after the backoff or by a reload; the sessions of an
    // earlier daemon that wait for it wait for that one (settled at once only while shutting down). Any
    // other child's failure is not absorbed: the machine fails, and src/daemon/main.ts exits.
    'xstate.error.actor.*': [
      {
        guard: ({ context, event }) => failedChildId(event) in context.sessions,
        actions: [
          {
            type: 'reportSettled',
            params: ({ context, event }) => ({ sessions: [failedSession(context, event)] }),
          },
          raise(({ context, event }): SessionFinishedEvent => {
            const { request, outcome } = failedSession(context, event);
            return { type: 'session.finished', sessionId: request.sessionId, outcome };
          }),
        ],
      },
      {
        // Its own actor, failed (one a reload replaced already, whose error came after, changes nothing).
        guard: ({ context, event }) => liveFailedSchedule(context, event) !== undefined,
        actions: [
          {
            type: 'noteFailure',
            params: ({ event }) => {
              const { agent, reason } = failedScheduleOf(event) as FailedChild;
              // Never while shutting down: the schedules stopped then (stopSchedules).
              return { kind: 'schedule' as const, name: agent, reason, retry: true };
            },
          },
          {
            type: 'announceScheduleFailed',
            params: ({ context, event }) => ({
              ...(failedScheduleOf(event) as FailedChild),
              restart: context.restarts[failedChildId(event)],
            }),
          },
        ],
      },
      { guard: ({ event }) => failedScheduleOf(event) !== undefined },
      {
        // While shutting down nothing restarts it: what waited for it is settled now, as nothing would
        // reconcile the host any more.
        guard: and([
          ({ context, event }) => failedHostOf(context, event) !== undefined,
          stateIn('#daemon.shutdown'),
        ]),
        actions: [
          {
            type: 'noteFailure',
            params: ({ context, event }) => ({ ...failedHostChild(context, event), retry: false }),
          },
          {
            type: 'abandonWaiting',
            params: ({ context, event }) => failedHostOf(context, event) as { host: string; reason: string },
          },
          {
            type: 'announceHostFailed',
            params: ({ context, event }) => ({
              ...(failedHostOf(context, event) as { host: string; reason: string }),
              restart: context.restarts[failedChildId(event)],
            }),
          },
        ],
      },
      {
        // Restarted after a backoff: the sessions waiting for it wait on, for host_down_grace from when it
        // went down, and the new actor's reconciliation settles them (or its grace abandons them).
        guard: ({ context, event }) => failedHostOf(context, event) !== undefined,
        actions: [
          {
            type: 'noteFailure',
            params: ({ context, event }) => ({ ...failedHostChild(context, event), retry: true }),
          },
          {
            type: 'awaitHostGrace',
            params: ({ context, event }) => ({
              host: failedHostChild(context, event).name,
              downSince: context.restarts[failedChildId(event)]?.downSince as string,
            }),
          },
          {
            type: 'announceHostFailed',
            params: ({ context, event }) => ({
              ...(failedHostOf(context, event) as { host: string; reason: string }),
              restart: context.restarts[failedChildId(event)],
            }),
          },
        ],
      },
    ],
    // Adopted sessions may end in any state, even before the daemon is ready.
    'session.finished': {
      actions: [
        { type: 'forgetSession', params: ({ event }) => event.sessionId },
        { type: 'markKeysFinished', params: ({ event }) => [event.sessionId] },
      ],
    },
    'records.pruned': { actions: { type: 'forgetKeys', params: ({ event }) => event.sessionIds } },
    'sessions.settled': {
      actions: { type: 'markKeysFinished', params: ({ event }) => event.sessionIds },
    },
    'host.up': { actions: hostUp({ adopt: true }) },
    'host.down': {
      actions: [
        {
          type: 'tellSessionsOn',
          params: ({ event }) => ({ host: event.host, event: { type: 'host.down' as const } }),
        },
        { type: 'announceHostDown', params: ({ event }) => event },
      ],
    },
    'host.lost': { actions: { type: 'abandonWaiting', params: ({ event }) => ({ host: event.host }) } },
    // A failed host's grace ended while no actor counted it (its backoff): what waited for it is
    // abandoned now, as a host down that long gets it abandoned (host.lost).
    'host.graceOver': {
      guard: { type: 'graceOverDue', params: ({ event }) => event },
      actions: [
        { type: 'markHostLost', params: ({ event }) => event.host },
        { type: 'abandonWaiting', params: ({ event }) => ({ host: event.host }) },
      ],
    },
    drain: drainHandler('drain'),
    undrain: drainHandler('undrain'),
  },
  states: {
    reconciling: {
      description:
        'Remove what earlier runs of this instance left in Podman (dead containers, orphaned secrets) before anything is accepted.',
      initial: 'working',
      states: {
        working: {
          description: 'Reconciling every host; nobody asked the daemon to stop.',
          on: { shutdown: 'stopping' },
        },
        stopping: {
          description:
            'A shutdown came: the reconciliation ends first (each podman call within its deadline), since it records the outcomes it reads from exited containers before it removes them; then the daemon stops, leaving the queued and adopted sessions it found to the next start. A reconciliation that fails is logged and the daemon stops all the same. A second shutdown stops at once: an exited container whose outcome was not recorded by then is left, and the next start reads it.',
          entry: 'announceShutdownPending',
          on: {
            reload: { actions: { type: 'rejectReload', params: ({ event }) => event } },
            // A graceful one asks for what is under way already; any other falls through: it stops at once.
            shutdown: { guard: { type: 'gracefulShutdown', params: ({ event }) => event } },
          },
        },
      },
      invoke: {
        src: 'reconcile',
        onDone: [
          // A daemon that stops records only what the reconciliation settled. The recovered queue and
          // the adopted sessions stay as their records are, for the next start (a drain would settle the
          // queue `cancelled`); no host is started: the next start reconciles them again.
          { guard: 'shutdownPending', target: 'shutdown', actions: recordReconciled },
          {
            target: 'opening',
            actions: [
              ...recordReconciled,
              { type: 'recoverSessions', params: ({ event }) => event.output.recovery },
              {
                type: 'storeHostsFound',
                params: ({ event }) => ({
                  down: event.output.down ?? [],
                  versions: event.output.versions ?? {},
                }),
              },
            ],
          },
        ],
        onError: [
          // The operator asked for a stop, and gets one (exit 0); the reconciliation's failure is logged,
          // and the next start reconciles again.
          {
            guard: 'shutdownPending',
            target: 'shutdown',
            actions: { type: 'announceReconcileFailed', params: ({ event }) => messageOf(event.error) },
          },
          {
            target: 'failed',
            actions: { type: 'storeFailure', params: ({ event }) => messageOf(event.error) },
          },
        ],
      },
      // `shutdown` in `stopping` falls through to here: the second one stops at once.
      on: whileStarting,
    },
    opening: {
      description:
        "Bind the Unix socket; only then can operators reach the daemon. Records that could not be written yet are written now; a state dir that takes no write starts the daemon degraded. The hosts' actors start once it is open. A shutdown stops it at once: what the reconciliation settled is recorded already, and the queued and adopted sessions it recovered are left as their records are, for the next start.",
      invoke: {
        src: 'openSocket',
        onDone: [
          {
            guard: { type: 'stateDirUnwritable', params: ({ event }) => event.output },
            target: 'degraded',
            actions: [
              {
                type: 'storeStateDirProblem',
                params: ({ event }) => event.output.stateDir as StateDirProblem,
              },
              ...startHosts,
              'announceUp',
            ],
          },
          { target: 'ready', actions: [...startHosts, 'announceUp'] },
        ],
        onError: {
          target: 'failed',
          actions: { type: 'storeFailure', params: ({ event }) => messageOf(event.error) },
        },
      },
      on: {
        ...whileStarting,
        // A drain would settle the recovered queue `cancelled`, and nothing of it has run: the next start
        // recovers it, and adopts the running containers, as after a stop while reconciling.
        shutdown: { target: 'shutdown', actions: 'leaveRecovered' },
      },
    },
    ready: {
      description:
        "Accepting triggers, from clients and from the agents' schedules. Up to max_sessions run at once, and up to its max_concurrent of one agent; the rest wait in a FIFO queue.",
      // Adopted sessions are supervised from here on (a start that fails leaves them to the next daemon);
      // recovered queued ones start as soon as there is room.
      entry: ['adoptSessions', 'startQueuedSessions', 'startSchedules'],
      on: {
        trigger: [
          ...replayKey,
          {
            guard: { type: 'sessionIdInUse', params: ({ event }) => event.sessionId },
            actions: {
              type: 'rejectTrigger',
              params: ({ event }) => ({
                trigger: event,
                code: 'duplicate_session',
                reason: `session id ${event.sessionId} is already queued or running; leave sessionId out to get a fresh one`,
              }),
            },
          },
          {
            guard: { type: 'sessionIdRecorded', params: ({ event }) => event.sessionId },
            actions: {
              type: 'rejectTrigger',
              params: ({ event }) => ({
                trigger: event,
                code: 'duplicate_session',
                reason: `session id ${event.sessionId} was already used; leave sessionId out to get a fresh one`,
              }),
            },
          },
          {
            guard: 'queueFull',
            actions: {
              type: 'rejectTrigger',
              params: ({ context, event }) => ({
                trigger: event,
                code: 'queue_full',
                reason: `${context.queue.length} sessions are queued, the most the daemon holds; retry when some have started`,
              }),
            },
          },
          { actions: { type: 'checkTrigger', params: ({ event }) => event } },
        ],
        'trigger.valid': {
          actions: {
            type: 'recordAccepted',
            params: ({ event }) => ({
              session: event.session,
              ...(event.requestId === undefined ? {} : { requestId: event.requestId }),
            }),
          },
        },
        'trigger.invalid': {
          actions: { type: 'rejectTrigger', params: ({ event }) => event },
        },
        'trigger.recorded': {
          actions: [
            { type: 'queueSession', params: ({ event }) => event.session },
            { type: 'rememberKey', params: ({ event }) => event.session },
            'startQueuedSessions',
            { type: 'answerAccepted', params: ({ event }) => event },
          ],
        },
        'schedule.fired': [
          {
            guard: { type: 'overlapSkips', params: ({ event }) => event },
            actions: {
              type: 'announceFiringSkipped',
              params: ({ context, event }) => ({
                agent: event.agent,
                firing: event.firing,
                reason: `session ${activeScheduled(context, event.agent)} from the schedule is still queued or running (overlap: skip)`,
              }),
            },
          },
          {
            guard: { type: 'scheduleQueueFull', params: ({ event }) => event },
            actions: {
              type: 'announceFiringSkipped',
              params: ({ event }) => ({
                agent: event.agent,
                firing: event.firing,
                reason: `${SCHEDULE_QUEUED_MAX} sessions from the schedule are queued already, the most one schedule keeps waiting (overlap: queue); it fires faster than its sessions end`,
              }),
            },
          },
          { actions: { type: 'triggerScheduled', params: ({ event }) => event } },
        ],
        'trigger.unrecorded': {
          target: 'degraded',
          actions: [
            { type: 'storeStateDirProblem', params: ({ event }) => problemOf(event) },
            'announceDegraded',
            {
              type: 'rejectTrigger',
              params: ({ event }) => ({
                trigger: triggerOf(event),
                code: event.code,
                reason: event.reason,
              }),
            },
          ],
        },
        'stateDir.unwritable': {
          target: 'degraded',
          actions: [
            { type: 'storeStateDirProblem', params: ({ event }) => problemOf(event) },
            'announceDegraded',
          ],
        },
        ...whileUp(['startQueuedSessions']),
      },
    },
    degraded: {
      description:
        'Up, but the state dir takes no writes (full, or not writable): a trigger could not be recorded, so it is rejected with state_dir_full. Running and adopted sessions go on, their records wait in memory; queued ones wait, since their start could not be recorded. The state dir is checked every few seconds; the daemon is ready again as soon as it takes a write.',
      // Recovered containers run whether or not the daemon watches: supervised, as in ready.
      entry: ['adoptSessions', 'startSchedules'],
      invoke: { src: 'watchStateDir' },
      on: {
        trigger: [
          ...replayKey,
          {
            actions: {
              type: 'rejectTrigger',
              params: ({ context, event }) => ({
                trigger: event,
                code: context.stateDir?.code ?? ('state_dir_unwritable' as const),
                // Not this trigger's failure: the one that made the daemon degraded, which may name
                // another session (one that was accepted, even), so it is quoted as the earlier write.
                reason: context.stateDir
                  ? `daemon degraded, this trigger was not tried: the state dir has taken no writes since an earlier one failed (${context.stateDir.reason}); triggers are accepted again as soon as it does`
                  : 'daemon degraded, this trigger was not tried: the state dir takes no writes; triggers are accepted again as soon as it does',
              }),
            },
          },
        ],
        'stateDir.unwritable': {
          actions: { type: 'storeStateDirProblem', params: ({ event }) => problemOf(event) },
        },
        'stateDir.writable': { target: 'ready', actions: ['clearStateDirProblem', 'announceWritable'] },
        'schedule.fired': {
          actions: {
            type: 'announceFiringMissed',
            params: ({ context, event }) => ({
              agent: event.agent,
              firing: event.firing,
              reason: context.stateDir?.reason ?? 'the state dir takes no writes',
            }),
          },
        },
        ...whileUp([]),
      },
    },
    shutdown: {
      description:
        'Stop accepting triggers, let running sessions finish and a host reconciliation under way end, then stop.',
      entry: [
        {
          type: 'announceShutdown',
          params: ({ context }) => ({
            running: runningCount(context),
            reconciling: reconcilingHosts(context),
          }),
        },
        'stopSchedules',
        // No restart during the drain: a failed host or schedule stays failed until the next start.
        'cancelRetries',
      ],
      initial: 'draining',
      states: {
        draining: {
          description:
            "Queued sessions are dropped with a reported outcome; running ones finish. A host back after an outage that is being reconciled is waited for (each podman call within its deadline): it records the outcomes it reads from exited containers before it removes them, and they are reported (`host.up`) before the daemon stops; the sessions whose containers it found still running are left to the next start, which adopts them. A second shutdown cancels the running sessions and stops the hosts' actors (a reconciliation under way is cut short: an exited container whose outcome it had not recorded is left, and the next start reads it); with none running, it stops at once. A graceful one (`agentd stop`) changes nothing here, whatever came first; a forced one (`agentd stop --force`) is that second shutdown, and one that came to a daemon not draining yet is both at once.",
          entry: [
            {
              type: 'reportSettled',
              params: ({ context }) => ({
                sessions: settle(context.queue, 'daemon shut down before the session started'),
              }),
            },
            {
              type: 'markKeysFinished',
              params: ({ context }) => context.queue.map((s) => s.request.sessionId),
            },
            'clearQueue',
          ],
          always: { guard: and(['noSessionsRunning', not('hostReconciling')]), target: 'stopped' },
          on: {
            trigger: [
              ...replayKey,
              {
                actions: {
                  type: 'rejectTrigger',
                  params: ({ event }) => ({
                    trigger: event,
                    code: 'not_accepting' as const,
                    reason: 'daemon is shutting down: trigger again once it has started again',
                  }),
                },
              },
            ],
            cancel: [rejectFinishingCancel, cancelRunningSession, rejectUnknownCancel],
            reload: { actions: { type: 'rejectReload', params: ({ event }) => event } },
            'host.up': { actions: hostUp({ adopt: false }) },
            shutdown: [
              // `agentd stop` while draining (another stop, a SIGTERM came first): the drain goes on as it is.
              { guard: { type: 'gracefulShutdown', params: ({ event }) => event } },
              // Only a host's reconciliation was waited for.
              {
                guard: 'noSessionsRunning',
                target: 'stopped',
                actions: { type: 'announceCancelAll', params: ({ context }) => cancelAllParams(context) },
              },
              {
                actions: [
                  { type: 'announceCancelAll', params: ({ context }) => cancelAllParams(context) },
                  'cancelAllSessions',
                  'stopHosts',
                ],
              },
            ],
          },
        },
        stopped: {
          description: 'Nothing runs any more; the socket and pid file are removed and the process exits 0.',
          type: 'final',
        },
      },
    },
    failed: {
      description:
        'Start could not complete (reconciliation or the socket failed); the process exits non-zero.',
      type: 'final',
    },
  },
});

/** The entry of a key that still stands for its session: queued, running, or finished within the window. */
function sessionIdInUse(context: DaemonContext, sessionId: string): boolean {
  return (
    Object.hasOwn(context.sessions, sessionId) || context.queue.some((s) => s.request.sessionId === sessionId)
  );
}

function queueFull(context: DaemonContext): boolean {
  return context.queue.length >= context.maxQueued;
}

/**
 * Whether `ready` makes no new session of this trigger, whatever files it carries: it repeats a key
 * (answered with that key's session, or refused), or is refused by one of `ready`'s other trigger rules,
 * in their order and with the same functions as their guards. `recorded` answers the provided
 * sessionIdRecorded guard. What a front end asks before it writes a trigger's files (submitTrigger).
 */
export function makesNoSession(
  context: DaemonContext,
  trigger: TriggerEvent,
  recorded: (sessionId: string) => boolean,
): boolean {
  return (
    liveKey(context, trigger.key) !== undefined ||
    sessionIdInUse(context, trigger.sessionId) ||
    recorded(trigger.sessionId) ||
    queueFull(context) ||
    !checkTrigger(context.agents, trigger).ok
  );
}

function liveKey(context: DaemonContext, key: string | undefined): KeyEntry | undefined {
  if (key === undefined || !Object.hasOwn(context.keys, key)) return undefined;
  const entry = context.keys[key];
  if (entry?.finishedAt !== undefined && Date.now() - entry.finishedAt > context.keyWindowMs)
    return undefined;
  return entry;
}

/**
 * The keys of an earlier daemon's records, each to its latest session: a key used again once its window
 * had passed has two records, read in no set order, and stands for the later one (the one still queued
 * or running, else the one that finished last), or a trigger repeating it would make another session.
 */
function keysOfRecords(entries: readonly KeyEntry[]): Record<string, KeyEntry> {
  // A Map, not an object: a key named `__proto__` or `constructor` is a key like any other.
  const keys = new Map<string, KeyEntry>();
  for (const entry of entries) {
    const held = keys.get(entry.key);
    if (
      held === undefined ||
      entry.finishedAt === undefined ||
      (held.finishedAt !== undefined && entry.finishedAt > held.finishedAt)
    )
      keys.set(entry.key, entry);
  }
  return Object.fromEntries(keys);
}

/**
 * Keys kept: every one of a queued or running session, and of finished ones those within the window,
 * newest first, at most keyLimit (the daemon keeps no more records than that either).
 */
function boundKeys(keys: Record<string, KeyEntry>, context: DaemonContext): Record<string, KeyEntry> {
  const now = Date.now();
  const entries = Object.values(keys);
  const finished = entries
    .filter((e) => e.finishedAt !== undefined && now - e.finishedAt <= context.keyWindowMs)
    .sort((a, b) => (b.finishedAt ?? 0) - (a.finishedAt ?? 0))
    .slice(0, context.keyLimit);
  const live = entries.filter((e) => e.finishedAt === undefined);
  return Object.fromEntries([...live, ...finished].map((e) => [e.key, e]));
}

/** The id of a failed child actor, from its error event (a session actor's id is its session id). */
function failedChildId(event: DaemonEvent): string {
  return event.type.startsWith(ERROR_ACTOR) ? event.type.slice(ERROR_ACTOR.length) : '';
}
const ERROR_ACTOR = 'xstate.error.actor.';

/** Why a failed child actor failed, from its error event. */
function failureReason(event: DaemonEvent): string {
  const error = 'error' in event ? event.error : undefined;
  return error instanceof Error ? error.message : String(error);
}

type FailedChild = { agent: string; reason: string };

/** The agent whose schedule actor failed, and why; undefined when the failed child is no schedule. */
function failedScheduleOf(event: DaemonEvent): FailedChild | undefined {
  const id = failedChildId(event);
  if (!id.startsWith(SCHEDULE_ACTOR)) return undefined;
  return { agent: id.slice(SCHEDULE_ACTOR.length), reason: failureReason(event) };
}

/** The schedule actor of agent, if it failed (it stays until its retry or a reload starts a new one). */
function failedScheduleRef(context: DaemonContext, agent: string): ScheduleRef | undefined {
  const ref = Object.hasOwn(context.schedules, agent) ? context.schedules[agent] : undefined;
  return ref?.getSnapshot().status === 'error' ? ref : undefined;
}

/** The agent of a failed schedule actor that is still the agent's schedule, with why; else undefined. */
function liveFailedSchedule(context: DaemonContext, event: DaemonEvent): FailedChild | undefined {
  const failed = failedScheduleOf(event);
  if (failed === undefined || !Object.hasOwn(context.schedules, failed.agent)) return undefined;
  return context.schedules[failed.agent]?.getSnapshot().status === 'error' ? failed : undefined;
}

/** A failed host or schedule actor: which, and why. */
type FailedChildOf = { kind: 'host' | 'schedule'; name: string; reason: string };

/** A failed host actor as noteFailure takes it. */
function failedHostChild(context: DaemonContext, event: DaemonEvent): FailedChildOf & { kind: 'host' } {
  const { host, reason } = failedHostOf(context, event) as { host: string; reason: string };
  return { kind: 'host', name: host, reason };
}

/** The id of the delayed child.retry of a failed child actor. */
function retryId(actorId: string): string {
  return `retry:${actorId}`;
}

/** The host whose actor failed, and why; undefined when the failed child is no host of this daemon. */
function failedHostOf(
  context: DaemonContext,
  event: DaemonEvent,
): { host: string; reason: string } | undefined {
  const id = failedChildId(event);
  const ref = context.hosts.find((h) => h.id === id);
  if (ref === undefined || ref.getSnapshot().status !== 'error') return undefined;
  return { host: ref.getSnapshot().context.name, reason: failureReason(event) };
}

/** A host actor's id: `host-` and the host's name. */
export function hostActorId(name: string): string {
  return `host-${name}`;
}

/** A session whose actor failed, with its one outcome: error, in the phase it was in, and why. */
function failedSession(context: DaemonContext, event: DaemonEvent): SettledSession {
  const snapshot = context.sessions[failedChildId(event)]?.getSnapshot();
  if (snapshot === undefined) throw new Error(`no session actor failed: ${event.type}`);
  const reason = failureReason(event);
  return {
    request: snapshot.context.request,
    outcome: {
      outcome: 'error',
      phase: sessionPhaseOf(snapshot),
      message: `the daemon's supervision of this session failed: ${reason}`,
    },
  };
}

/** Outcomes for sessions that leave the queue without running. */
function settle(queued: SessionInput[], message: string): SettledSession[] {
  return queued.map((s) => ({
    request: s.request,
    outcome: { outcome: 'cancelled', phase: 'queued', message },
  }));
}

/** The trigger rules applied to a trigger: the session it becomes, or why it does not. */
function checked(agents: readonly AgentConfig[], trigger: TriggerEvent): TriggerCheckedEvent {
  const check = checkTrigger(agents, trigger);
  if (!check.ok) return { type: 'trigger.invalid', trigger, code: check.code, reason: check.reason };
  const request: SessionRequest = {
    sessionId: trigger.sessionId,
    agent: check.agent.name,
    repoUrl: check.repoUrl,
    acceptedAt: new Date().toISOString(),
    ...(trigger.workUnit === undefined ? {} : { workUnit: trigger.workUnit }),
    ...(check.timeoutMs === undefined ? {} : { timeoutMs: check.timeoutMs }),
    ...(trigger.work === undefined ? {} : { work: trigger.work }),
    ...(trigger.scheduledFor === undefined ? {} : { scheduledFor: trigger.scheduledFor }),
    ...(trigger.key === undefined ? {} : { key: trigger.key }),
  };
  return {
    type: 'trigger.valid',
    session: { request, agent: check.agent },
    ...(trigger.requestId === undefined ? {} : { requestId: trigger.requestId }),
  };
}

/** Without hosts, sessions run on the local Podman, limited only by the daemon's max_sessions. */
const LOCAL_ONLY: HostInfo = { name: LOCAL_HOST, maxSessions: Number.POSITIVE_INFINITY, labels: {} };

/**
 * Each host as placement sees it: its limit and labels as configured now, the sessions on it and whether
 * its actor takes new ones (a host without one yet takes none).
 */
function hostSlots(context: DaemonContext): HostSlots[] {
  const running = new Map<string, number>();
  for (const ref of Object.values(context.sessions)) {
    const host = ref.getSnapshot().context.host;
    if (host !== undefined) running.set(host, (running.get(host) ?? 0) + 1);
  }
  const actors = new Map(context.hosts.map((ref) => [ref.getSnapshot().context.name, ref.getSnapshot()]));
  return context.hostInfo.map(({ name, maxSessions, labels }) => {
    const snapshot = actors.get(name);
    return {
      name,
      maxSessions,
      labels,
      running: running.get(name) ?? 0,
      accepting: snapshot !== undefined && hostAccepts(snapshot),
    };
  });
}

function drainParams(event: DrainEvent): { host: string; requestId?: string } {
  return event.requestId === undefined
    ? { host: event.host }
    : { host: event.host, requestId: event.requestId };
}

function runningCount(context: DaemonContext): number {
  return Object.keys(context.sessions).length;
}

/** Hosts whose reconciliation (after an outage) is under way; a stopped host actor's is cut short. */
function reconcilingHosts(context: DaemonContext): string[] {
  return context.hosts
    .map((ref) => ref.getSnapshot())
    .filter((snapshot) => snapshot.status === 'active' && snapshot.hasTag('settling'))
    .map((snapshot) => snapshot.context.name);
}

function cancelAllParams(context: DaemonContext): { running: number; reconciling: string[] } {
  return { running: runningCount(context), reconciling: reconcilingHosts(context) };
}

/** The requests of the running sessions, read from their actors. */
function runningRequests(context: DaemonContext): SessionRequest[] {
  return Object.values(context.sessions).map((ref) => ref.getSnapshot().context.request);
}

/** The agent's max_concurrent as configured now; a removed agent's as it was accepted with. */
function maxConcurrentOf(agents: readonly AgentConfig[], session: SessionInput): number | undefined {
  return currentAgentOf(agents, session).maxConcurrent;
}

/** The session's agent as now configured, or as it was accepted if no longer configured. */
function currentAgentOf(agents: readonly AgentConfig[], session: SessionInput): AgentConfig {
  return agents.find((a) => a.name === session.request.agent) ?? session.agent;
}

function overlapOf(context: DaemonContext, agent: string): 'skip' | 'queue' {
  return context.agents.find((a) => a.name === agent)?.schedule?.overlap ?? 'skip';
}

/** The id of a queued or running session of agent that came from its schedule, if there is one. */
function activeScheduled(context: DaemonContext, agent: string): string | undefined {
  const scheduled = (r: SessionRequest) => r.agent === agent && r.scheduledFor !== undefined;
  return (
    runningRequests(context).find(scheduled)?.sessionId ??
    context.queue.find((s) => scheduled(s.request))?.request.sessionId
  );
}

/** How many sessions of agent that came from its schedule are queued (not running). */
function queuedScheduled(context: DaemonContext, agent: string): number {
  return context.queue.filter((s) => s.request.agent === agent && s.request.scheduledFor !== undefined)
    .length;
}

/** Child ids of schedule actors; session actors are named by their 16-hex session id. */
export function scheduleActorId(agent: string): string {
  return `${SCHEDULE_ACTOR}${agent}`;
}
const SCHEDULE_ACTOR = 'schedule:';

function schedulesByName(agents: readonly AgentConfig[]): Map<string, ScheduleConfig | undefined> {
  return new Map(agents.map((a) => [a.name, a.schedule]));
}

function sameSchedule(a: ScheduleConfig, b: ScheduleConfig): boolean {
  return JSON.stringify(a, Object.keys(a).sort()) === JSON.stringify(b, Object.keys(b).sort());
}

/** The trigger a recorded session came from, for answering it. */
function triggerOf(event: TriggerUnrecordedEvent): TriggerEvent {
  const { request } = event.session;
  return {
    type: 'trigger',
    sessionId: request.sessionId,
    agent: request.agent,
    ...(event.requestId === undefined ? {} : { requestId: event.requestId }),
  };
}

function problemOf(event: StateDirProblem): StateDirProblem {
  return { code: event.code, reason: event.reason };
}

function cancelParams(event: { sessionId: string; requestId?: string }): {
  sessionId: string;
  requestId?: string;
} {
  return event.requestId === undefined
    ? { sessionId: event.sessionId }
    : { sessionId: event.sessionId, requestId: event.requestId };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
