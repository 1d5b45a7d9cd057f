import { randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Actor, StateValue } from 'xstate';
import { type LogUnwritten, logUnwritten, logUnwrittenReason } from '../adapters/logger.js';
import { compareText } from '../compare.js';
import type { HostConfig, ScheduleConfig } from '../config/types.js';
import type { ShutdownMode } from '../constants.js';
import { errorMessage } from '../errors.js';
import { LogBudget } from '../log-budget.js';
import {
  type ClientEvent,
  type DaemonContext,
  type DaemonEmitted,
  type daemonMachine,
  hostActorId,
  makesNoSession,
  retryFields,
  retryNote,
  scheduleActorId,
} from '../machines/daemon.machine.js';
import { hostFailure, hostStateOf } from '../machines/host.machine.js';
import { sessionPhaseOf } from '../machines/session.machine.js';
import type { DaemonPort, DaemonState, DaemonStatus } from '../protocol/context.js';
import { publicState } from '../protocol/public-state.js';
import type { HostStatus, ReloadReply, ScheduleView } from '../protocol/replies.js';
import { describeAgent } from '../sessions/agent-view.js';
import type { RejectionCode } from '../sessions/check-trigger.js';
import type { SessionJournal } from './journal.js';
import type { WaitingToSeal } from './record-keeper.js';

export type DaemonActor = Actor<typeof daemonMachine>;

const ANSWERS = [
  'trigger.accepted',
  'trigger.rejected',
  'cancel.accepted',
  'cancel.rejected',
  'reload.applied',
  'reload.rejected',
  'drain.applied',
  'drain.rejected',
] as const;

/**
 * `noHost` of the status while no Podman host answers its probes (every one down or not yet reconciled):
 * which hosts, and that sessions wait; nothing while one is up. Names and states only, as /readyz (the
 * problem of each is in `agentd hosts`).
 */
export function noHostAnswers(hosts: readonly HostStatus[]): { noHost?: string } {
  if (hosts.length === 0 || hosts.some((h) => h.state === 'up')) return {};
  const which = hosts.map((h) => `${h.name}: ${h.state}`).join('; ');
  return {
    noHost: `no Podman host answers (${which}): sessions wait in the queue until one does; \`agentd hosts\` says why`,
  };
}

/**
 * `unsealed` of the status: the finished sessions whose record waits to be sealed, and the oldest of
 * them with how long ago it ended (by the wall clock of its record, never negative); nothing when none.
 */
export function unsealedOf(waiting: WaitingToSeal, now: number): { unsealed?: StatusUnsealed } {
  const { count, oldest } = waiting;
  if (count === 0 || oldest === undefined) return {};
  const ended = oldest.finishedAt === undefined ? Number.NaN : Date.parse(oldest.finishedAt);
  return {
    unsealed: {
      count,
      oldest: oldest.session,
      ...(oldest.finishedAt === undefined ? {} : { oldestFinishedAt: oldest.finishedAt }),
      ...(Number.isNaN(ended) ? {} : { waitingMs: Math.max(0, now - ended) }),
    },
  };
}

type StatusUnsealed = NonNullable<DaemonStatus['unsealed']>;

/** Finished sessions `status` shows. */
const RECENT_SHOWN = 10;

/**
 * Why the daemon machine failed (an exception in one of its actions stopped it: src/daemon/main.ts logs
 * daemon.crashed and exits), in the words clients are told; undefined while it runs.
 */
export function failureOf(actor: DaemonActor): string | undefined {
  const snapshot = actor.getSnapshot();
  if (snapshot.status !== 'error') return undefined;
  const error: unknown = snapshot.error;
  const reason = (error instanceof Error ? error.message : String(error)).slice(0, FAILURE_MAX_CHARS);
  return `the daemon failed: ${reason}; it is exiting, restart it`;
}

/**
 * Logs each shutdown a client asks for (`daemon.shutdown_requested`, with its mode), as `daemon.signal` says
 * of a signal: up to a budget per mode (100 at once, then 10 a second), past it at debug, with a line a
 * minute saying how many (`daemon.shutdowns_unlogged`). A client asking in a loop (an admin token, anyone
 * who may use the socket) wrote one info line per request; a mode of its own for each, so a loop of graceful
 * ones cannot hide the forced one that cancels the sessions.
 */
export function shutdownRequestLog(log: Logger): (mode: ShutdownMode | undefined) => void {
  const budget = new LogBudget((mode, count) =>
    log.info(
      { event: 'daemon.shutdowns_unlogged', ...(mode === 'plain' ? {} : { mode }), count },
      `${count} ${mode === 'plain' ? '' : `${mode} `}shutdown request(s) logged at debug only (more than 10 a second)`,
    ),
  );
  return (mode) => {
    const level = budget.take(mode ?? 'plain') ? 'info' : 'debug';
    log[level](
      { event: 'daemon.shutdown_requested', ...(mode === undefined ? {} : { mode }) },
      `${mode === undefined ? 'shutdown' : `${mode} shutdown`} asked by a client (agentd stop, a shutdown event, POST /v1/shutdown)`,
    );
  };
}

/** Of the error that stopped the daemon machine, what clients are told at most. */
const FAILURE_MAX_CHARS = 500;

/**
 * Sends one event to the daemon machine and returns what the machine answered. The machine
 * processes events synchronously, so every answer has arrived when send() returns. A machine that
 * failed answers nothing: a trigger is then rejected with why, unless the machine had recorded its
 * session before it failed (that session is queued on disk and the next start runs it: its client is
 * told it was accepted, not rejected and retried into a second session); a cancel, drain or undrain is
 * refused with why.
 */
export function sendEvent(
  actor: DaemonActor,
  event: ClientEvent,
  recorded: (sessionId: string) => boolean = () => false,
): DaemonEmitted[] {
  const failedBefore = failureOf(actor);
  const newSession = event.type === 'trigger' && !recorded(event.sessionId);
  const answers = failedBefore === undefined ? answersTo(actor, event) : [];
  const failure = failedBefore ?? failureOf(actor);
  if (answers.length > 0 || failure === undefined) return answers;
  if (event.type === 'trigger') {
    if (failedBefore === undefined && newSession && recorded(event.sessionId)) {
      return [{ type: 'trigger.accepted', sessionId: event.sessionId, queued: true, position: 1 }];
    }
    return [{ type: 'trigger.rejected', sessionId: event.sessionId, code: 'not_accepting', reason: failure }];
  }
  if (event.type === 'cancel')
    return [{ type: 'cancel.rejected', sessionId: event.sessionId, reason: failure }];
  if (event.type === 'drain' || event.type === 'undrain')
    return [{ type: 'drain.rejected', host: event.host, reason: failure }];
  return answers;
}

function answersTo(actor: DaemonActor, event: ClientEvent): DaemonEmitted[] {
  const requestId = randomUUID();
  const answers: DaemonEmitted[] = [];
  const subscriptions = ANSWERS.map((type) =>
    actor.on(type, (answer: DaemonEmitted) => {
      if (answer.requestId === requestId) answers.push(answer);
    }),
  );
  try {
    actor.send({ ...event, requestId });
  } finally {
    for (const subscription of subscriptions) subscription.unsubscribe();
  }
  return answers;
}

/**
 * Each running schedule with its next firing, and each one whose actor failed (`failed`: why, from its
 * actor's error, and what starts it again, from its restarts), in agent order.
 */
export function scheduleViews(
  schedules: DaemonContext['schedules'],
  restarts: DaemonContext['restarts'] = {},
): ScheduleView[] {
  const view = (agent: string, schedule: ScheduleConfig) => ({
    agent,
    cron: schedule.cron,
    ...(schedule.timezone === undefined ? {} : { timezone: schedule.timezone }),
    overlap: schedule.overlap,
    catchUp: schedule.catchUp,
  });
  return Object.values(schedules)
    .map((ref): ScheduleView => {
      const snapshot = ref.getSnapshot();
      const { agent, schedule, next } = snapshot.context;
      if (snapshot.status !== 'error')
        return { ...view(agent, schedule), ...(next === undefined ? {} : { next }) };
      const restart = restarts[scheduleActorId(agent)];
      return {
        ...view(agent, schedule),
        failed: `the schedule failed and fires no more until it starts again: ${errorMessage(snapshot.error)}; ${retryNote(restart)}`,
        ...retryFields(restart),
      };
    })
    .sort((a, b) => compareText(a.agent, b.agent));
}

/** `shutdown.draining` for { shutdown: 'draining' }. */
export function stateName(value: StateValue): string {
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([key, inner]) => (inner === undefined ? key : `${key}.${stateName(inner)}`))
    .join(',');
}

/** `degraded` of the status: the state dir's reason, the log's, or both. */
function degradedReason(stateDir: string | undefined, log: LogUnwritten | undefined): { degraded?: string } {
  const reasons = [
    ...(stateDir === undefined ? [] : [stateDir]),
    ...(log === undefined ? [] : [logUnwrittenReason(log)]),
  ];
  return reasons.length === 0 ? {} : { degraded: reasons.join('; and ') };
}

export interface PortOptions {
  actor: DaemonActor;
  journal: SessionJournal;
  reload: (trigger: 'SIGHUP' | 'request') => Promise<ReloadReply>;
  version: string;
  instanceId: string;
  socket: string;
  log: Logger;
  /** The configured hosts, for their urls (none: the local Podman). */
  hosts?: readonly HostConfig[];
  /** Told of a trigger turned away before the machine saw it (the metrics count it). */
  turnedAway?: (code: RejectionCode) => void;
  /**
   * Told of a `shutdown` a client sent (`agentd stop`, `agentd send`), before the machine gets it: what a
   * SIGTERM does first (main.ts: a log line saying who asked, and the end of a reload under way).
   */
  onShutdown?: (mode: ShutdownMode | undefined) => void;
}

/** The socket handlers' view of the daemon (protocol/context.ts), over its machine and its journal. */
export function createDaemonPort(options: PortOptions): DaemonPort {
  const { actor, journal } = options;
  // By the steady clock: a wall clock set back would make the uptime negative.
  const startedAt = performance.now();
  // Clients never see a state they cannot act on (shutdown.stopped).
  // A machine that failed keeps the state it failed in: clients are told `failed` instead.
  const state = () =>
    failureOf(actor) === undefined ? publicState(stateName(actor.getSnapshot().value)) : 'failed';
  const hosts = (): HostStatus[] => {
    const { context } = actor.getSnapshot();
    const running = new Map<string, number>();
    for (const ref of Object.values(context.sessions)) {
      const { host } = ref.getSnapshot().context;
      if (host !== undefined) running.set(host, (running.get(host) ?? 0) + 1);
    }
    // Until the daemon is up (its socket open), the hosts have no actors yet.
    const actors = new Map(context.hosts.map((ref) => [ref.getSnapshot().context.name, ref.getSnapshot()]));
    return context.hostInfo.map((info): HostStatus => {
      const snapshot = actors.get(info.name);
      const url = options.hosts?.find((h) => h.name === info.name)?.url;
      const host = snapshot?.context;
      const maxSessions = host?.maxSessions ?? info.maxSessions;
      // Its actor failed: why and what to do, over what the actor last held (down or not).
      const failure =
        snapshot === undefined
          ? undefined
          : hostFailure(snapshot, retryNote(context.restarts[hostActorId(info.name)]));
      const problem = failure ?? host?.problem;
      return {
        name: info.name,
        ...(url === undefined ? {} : { url }),
        state: snapshot === undefined ? 'reconciling' : hostStateOf(snapshot),
        drained: snapshot?.hasTag('drained') ?? false,
        running: running.get(info.name) ?? 0,
        // Without hosts, the local Podman's only limit is the daemon's.
        maxSessions: Number.isFinite(maxSessions) ? maxSessions : context.maxSessions,
        labels: host?.labels ?? info.labels,
        ...(host?.version === undefined ? {} : { version: host.version }),
        ...(host?.lastProbe === undefined ? {} : { lastProbe: host.lastProbe }),
        ...(problem === undefined ? {} : { problem }),
        ...(failure !== undefined || host?.downSince === undefined ? {} : { downSince: host.downSince }),
      };
    });
  };
  return {
    state,
    send: (event) => {
      if (event.type === 'shutdown') options.onShutdown?.(event.mode);
      return sendEvent(actor, event, (sessionId) => journal.used(sessionId));
    },
    status: (): DaemonStatus => {
      const { context } = actor.getSnapshot();
      const now = Date.now();
      const current = state();
      const failed = failureOf(actor);
      const failedHosts = context.hosts.flatMap((ref) => {
        const restart = context.restarts[ref.id];
        const problem = hostFailure(ref.getSnapshot(), retryNote(restart));
        return problem === undefined
          ? []
          : [{ name: ref.getSnapshot().context.name, problem, ...retryFields(restart) }];
      });
      return {
        state: current,
        ...(failed === undefined ? {} : { failed }),
        // Where an operator looks first: the sessions queued for it wait for its retry or a reload.
        ...(failedHosts.length === 0 ? {} : { failedHosts }),
        pid: process.pid,
        version: options.version,
        instanceId: options.instanceId,
        socket: options.socket,
        uptimeMs: Math.round(performance.now() - startedAt),
        // Why, where `status` is read: the log's daemon.degraded line is not where an operator looks first.
        ...degradedReason(
          current === 'degraded' ? (context.stateDir?.reason ?? 'the state dir takes no writes') : undefined,
          // A daemon whose log went silent is not healthy either (exit 10), though it runs what it is given.
          current === 'failed' ? undefined : logUnwritten(options.log),
        ),
        // A daemon that is up but can start no session: /readyz says 503, and so must status.
        ...(current === 'ready' || current === 'degraded' ? noHostAnswers(hosts()) : {}),
        // Work the daemon still holds after the outcome: output and logs in the state dir, awaiting room.
        ...unsealedOf(journal.waitingToSeal(), now),
        maxSessions: context.maxSessions,
        running: Object.values(context.sessions).map((ref) => {
          const snapshot = ref.getSnapshot();
          const { request, host } = snapshot.context;
          // The record's: when the session left the queue, also for one adopted from an earlier daemon.
          const sessionStartedAt = journal.record(request.sessionId)?.startedAt ?? snapshot.context.startedAt;
          return {
            id: request.sessionId,
            agent: request.agent,
            repo: request.repoUrl,
            ...(host === undefined ? {} : { host }),
            ...(request.workUnit === undefined ? {} : { workUnit: request.workUnit }),
            phase: sessionPhaseOf(snapshot),
            startedAt: sessionStartedAt,
            // Wall-clock times of the record: never negative after the clock was set back.
            elapsedMs: Math.max(0, now - Date.parse(sessionStartedAt)),
          };
        }),
        queued: context.queue.map(({ request }, index) => ({
          id: request.sessionId,
          agent: request.agent,
          repo: request.repoUrl,
          ...(request.workUnit === undefined ? {} : { workUnit: request.workUnit }),
          position: index + 1,
          acceptedAt: request.acceptedAt,
          waitingMs: Math.max(0, now - Date.parse(request.acceptedAt)),
        })),
        recent: journal.recent(RECENT_SHOWN),
        schedules: scheduleViews(context.schedules, context.restarts),
      };
    },
    sessions: (): DaemonState => {
      const { context } = actor.getSnapshot();
      return {
        state: state(),
        running: Object.values(context.sessions).map((ref) => {
          const snapshot = ref.getSnapshot();
          return { id: ref.id, agent: snapshot.context.request.agent, phase: sessionPhaseOf(snapshot) };
        }),
        queued: context.queue.map((entry) => entry.request.sessionId),
      };
    },
    watch: (listener) => {
      // An error listener too: XState rethrows a failure its subscribers do not all listen for (an
      // uncaught exception, where main.ts logs daemon.crashed and exits), and the failed state is news.
      const subscription = actor.subscribe({ next: () => listener(), error: () => listener() });
      // Session phases change inside child actors, which the root's subscription does not see.
      const unfollow = journal.followAll((event) => {
        if (event.type === 'phase') listener();
      });
      return () => {
        subscription.unsubscribe();
        unfollow();
      };
    },
    hosts,
    follow: (sessionId, listener) => journal.follow(sessionId, listener),
    followAll: (listener) => journal.followAll(listener),
    record: (sessionId) => journal.record(sessionId),
    history: (filter) => journal.history(filter),
    agents: () => {
      const { agents, schedules, restarts, hostInfo } = actor.getSnapshot().context;
      const views = new Map(scheduleViews(schedules, restarts).map((s) => [s.agent, s]));
      return agents.map((agent) => {
        const view = views.get(agent.name);
        return describeAgent(agent, { hosts: hostInfo, next: view?.next, failed: view?.failed });
      });
    },
    readLog: (sessionId) => journal.readLog(sessionId),
    makesNoSession: (sessionId, fields) => {
      const snapshot = actor.getSnapshot();
      return (
        !snapshot.matches('ready') ||
        makesNoSession(snapshot.context, { type: 'trigger', sessionId, ...fields }, (id) => journal.used(id))
      );
    },
    stage: (sessionId, payload) => journal.stage(sessionId, payload),
    unstage: (sessionId) => journal.unstage(sessionId),
    ...(options.turnedAway === undefined ? {} : { turnedAway: options.turnedAway }),
    reload: options.reload,
    newSessionId: () => randomBytes(8).toString('hex'),
    version: options.version,
    instanceId: options.instanceId,
    log: options.log,
  };
}
