import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import type { Logger } from 'pino';
import {
  type AnyActorRef,
  createActor,
  fromCallback,
  fromPromise,
  type InspectionEvent,
  raise,
  waitFor,
} from 'xstate';
import { cacheImagesOn, cachesDirOf, removeCacheImages } from '../adapters/cache-image.js';
import { resolveCredentials } from '../adapters/credentials.js';
import { NotifyOutbox } from '../adapters/notify-outbox.js';
import { removeLeftTempDirs } from '../adapters/output-channel.js';
import { ensurePrivateDir } from '../adapters/ownership.js';
import { claimPidFile, type PidFileClaim } from '../adapters/pid-file.js';
import { PodmanClient, type PodmanPort } from '../adapters/podman.js';
import { observePodman } from '../adapters/podman-observed.js';
import { type ServiceNotifier, silentNotifier } from '../adapters/sd-notify.js';
import { prepareSeccompProfile, SECCOMP_FALLBACK } from '../adapters/seccomp-profile.js';
import { SessionFiles } from '../adapters/session-files.js';
import { SessionStore, StateDirError } from '../adapters/session-store.js';
import { SocketServer } from '../adapters/socket-server.js';
import { startingMarkerPath } from '../adapters/starting-marker.js';
import { removeQuietly, writeFileAtomic } from '../adapters/state-files.js';
import { hostsOf, LOCAL_HOST, seesThisMachine, transportOf } from '../config/hosts.js';
import type { HostConfig, NotifyTarget, Settings } from '../config/types.js';
import {
  CLIENT_IDLE_MS,
  CLIENT_LAG_BYTES,
  CLIENT_LINGER_MS,
  CLIENT_STALL_MS,
  LABEL_INSTANCE,
  MAX_BUFFERED_BYTES,
  MAX_LINE_BYTES,
  PROTOCOL_VERSION,
} from '../constants.js';
import { AgentdError, errorFields, errorMessage } from '../errors.js';
import type { HttpServer } from '../http/server.js';
import { LogBudget } from '../log-budget.js';
import {
  type ChildRestart,
  type DaemonEvent,
  daemonMachine,
  failedHostGraceLeft,
  type KeyEntry,
  type OpenResult,
  retryNote,
  type StateDirProblem,
} from '../machines/daemon.machine.js';
import {
  downGraceLeft,
  type HostReconciled,
  hostMachine,
  type SettledSession,
} from '../machines/host.machine.js';
import { decidedOf, leftByRunner, type RunnerActor, runnerMachineFor } from '../machines/runner.machine.js';
import { scheduleMachine } from '../machines/schedule.machine.js';
import { type SessionInput, sessionMachine } from '../machines/session.machine.js';
import { type DaemonPort, replyError } from '../protocol/context.js';
import { busyReply, dispatch } from '../protocol/dispatch.js';
import type { HostPorts } from '../runner/actors.js';
import { runnerActors } from '../runner/actors.js';
import { type SessionRecord, sessionRecordSchema } from '../sessions/records.js';
import { agentsInForce } from './agents-in-force.js';
import { watchClock } from './clock-watch.js';
import { type Hangups, takeHangups } from './hangup.js';
import { reconcileHost } from './host-reconcile.js';
import { abandonedWaiting, sortByHost } from './host-recovery.js';
import { collectWhenIdle } from './idle-collection.js';
import { instanceIdOf } from './instance-id.js';
import { SessionJournal } from './journal.js';
import { Leftovers } from './leftovers.js';
import type { DaemonMetrics } from './metrics.js';
import { type MetricsRecorder, noMetrics, unsealedGauge } from './metrics-recorder.js';
import { Notifier, outboxFailureLog } from './notifier.js';
import { agentOf, gaugesOf, observeDaemon } from './observe.js';
import { createDaemonPort, type DaemonActor, shutdownRequestLog, stateName } from './port.js';
import { RecordKeeper, type WaitingToSeal } from './record-keeper.js';
import { planRecovery } from './recovery.js';
import { createReloader, readyStatus } from './reload.js';
import { createThreadedLoader } from './reload-thread.js';
import { ScheduleLog } from './schedule-log.js';
import { reconcileAtStart, START_WAIT_PROBE_TIMEOUTS, StartReconciliations } from './start-hosts.js';
import { collectStartGarbage, releaseYoungGeneration } from './young-generation.js';

export interface DaemonOptions {
  settings: Settings;
  log: Logger;
  version: string;
  /** XState inspection observer (the live inspector). */
  inspect?: (event: InspectionEvent) => void;
  env?: NodeJS.ProcessEnv;
  /** The service manager (systemd's NOTIFY_SOCKET): ready, reloading, stopping. */
  notify?: ServiceNotifier;
}

/** Runs the daemon until it stops; resolves with the process exit code. */
export async function runDaemon(options: DaemonOptions): Promise<number> {
  const { settings, log } = options;
  const { stateDir, socket } = settings.daemon;
  // An agent flooding its output makes the daemon allocate fast, and V8 then lets its old generation
  // grow to four times what is live before collecting it. Growing it by at most as much as is live keeps
  // the daemon's memory bounded (README, Reliability: 200 MB). At 50 % an output flood (its heap steady
  // at 18 MB, buffers outside it allocated fast) ran a full collection every 50 to 150 ms; at 100 %,
  // half as many, at the same peak RSS (bench/profile.mjs, test/reliability/hostile-output). A
  // collector heuristic, read at every collection: safe to set once the VM runs.
  setFlagsFromString('--heap-growing-percent=100');
  // Before anything is written: the daemon's directories must be its own (see ownership.ts).
  ensurePrivateDir(stateDir, 'state dir');
  ensurePrivateDir(dirname(socket), 'socket directory');
  // A full state dir: the room kept for records (session-store.ts, RESERVE_FILE) lets the pid in; the
  // store makes it again once there is room.
  const pidFile = claimPidFile(join(stateDir, 'agentd.pid'), {
    freeRoom: () => removeQuietly(join(stateDir, '.reserve')),
  });
  if (pidFile.unwritten) {
    log.warn(
      { event: 'daemon.pid_unwritten', file: pidFile.path },
      'the pid file is empty: the state dir has no room for it; the daemon holds it open (a second one is refused) and writes it once there is room',
    );
  }
  if (pidFile.stalePid !== undefined) {
    log.warn(
      { event: 'daemon.stale_pid', pid: pidFile.stalePid, file: pidFile.path },
      'took over a stale pid file',
    );
  }
  // Until the socket is bound (after the start's reconciliation), `agentd status` finds this daemon by
  // its marker: starting, not absent. Best effort: without it, status says no daemon answers, as before.
  const marker = startingMarkerPath(socket);
  try {
    writeFileAtomic(marker, `${process.pid}\n`, { operation: 'mark the daemon as starting' });
  } catch {
    // A socket directory that takes no write: the socket's bind will say so.
  }
  const hangups = takeHangups(log);
  try {
    return await supervise(options, pidFile, hangups);
  } finally {
    removeQuietly(marker);
    hangups.release();
    pidFile.release();
  }
}

/**
 * The composition root: it makes the adapters, provides them to the machines as named actors and
 * actions, opens the socket onto the daemon port, and waits for the daemon machine to stop. What the
 * daemon does is in the machines (src/machines), what it keeps in the session journal (journal.ts).
 */
async function supervise(options: DaemonOptions, pidFile: PidFileClaim, hangups: Hangups): Promise<number> {
  const { settings, log, env = process.env, notify = silentNotifier } = options;
  const { daemon: config } = settings;
  const instanceId = instanceIdOf(config.socket, config.stateDir);
  // Set once the actor exists: the gauges read it at each scrape, reconciling a host reads which
  // sessions the daemon supervises.
  let current: DaemonActor | undefined;
  // Set once the notifier exists: the gauges read how many notifications it holds.
  let notifying: Notifier | undefined;
  // Set once the journal exists: the gauges read the records that wait to be sealed.
  let unsealedNow: (() => WaitingToSeal) | undefined;
  // The Prometheus registry and the HTTP API are loaded only when daemon.http is set (it waits for a
  // restart): a daemon without them starts with about 10 MB less RSS.
  const prometheus: DaemonMetrics | undefined = config.http
    ? new (await import('./metrics.js')).DaemonMetrics({
        gauges: () => ({
          ...gaugesOf(current),
          ...(notifying === undefined
            ? {}
            : {
                notifications: {
                  underWay: notifying.underWay,
                  waiting: notifying.waiting,
                  deferred: notifying.deferred,
                },
              }),
          ...(unsealedNow === undefined ? {} : { unsealed: unsealedGauge(unsealedNow(), Date.now()) }),
        }),
        agentOf: (sessionId) => agentOf(current, sessionId),
      })
    : undefined;
  const metrics: MetricsRecorder = prometheus ?? noMetrics;
  const hosts = hostsOf(settings);
  // Asked of Podman (podman info) while the journal loads; needed before the first session.
  const seccompProfiled = localSeccompProfile(hosts, config, log);
  const ports = hostPorts(
    hosts,
    config.podmanTimeoutMs,
    config.pullTimeoutMs,
    config.stateDir,
    (port, host) => observePodman(port, (call) => metrics.podmanCall(call, host)),
    log,
  );
  // Set once the actor exists: a record write that fails makes the daemon degraded.
  let send: (event: DaemonEvent) => void = () => {};
  const store = new SessionStore(config.stateDir, sessionRecordSchema, {
    onWriteFailure: (error) => send({ type: 'stateDir.unwritable', ...stateDirProblem(error) }),
  });
  const files = new SessionFiles(config.stateDir);
  for (const dir of removeLeftTempDirs()) {
    log.info({ event: 'daemon.output_dir_removed', dir }, `removed ${dir}, left by a daemon that was killed`);
  }
  const leftovers = new Leftovers(log);
  const keeper = new RecordKeeper(
    {
      recordsDir: config.recordsDir,
      maxAgeMs: config.recordsMaxAgeMs,
      maxBytes: config.recordsMaxBytes,
      maxCount: config.recordsMaxCount,
      minFree: config.recordsMinFree,
    },
    files,
    log,
  );
  const journal = new SessionJournal(store, files, keeper, log, config.historyLimit);
  unsealedNow = () => journal.waitingToSeal();
  const outbox = new NotifyOutbox(config.stateDir, outboxFailureLog(log));
  const { keys, unfinished } = loadJournal(journal, log);

  const scheduleLog = new ScheduleLog(config.stateDir, log);
  const scheduleSince = scheduleLog.load(settings.agents);

  // Started sessions of an earlier daemon wait for their host's reconciliation (at start, or when it
  // comes back); the queued ones for the daemon's queue.
  const recovered = sortByHost(
    unfinished,
    hosts.map((h) => h.name),
  );
  const waiting = recovered.byHost;
  /**
   * The webhooks of the definition each session was accepted with, until its outcome is published: a
   * reload changes where new sessions' outcomes go, not these (queued, running, or settled from the queue).
   */
  const acceptedNotify = new Map<string, NotifyTarget[]>();
  /** Sessions with a live session actor on a host: reconciliation leaves their objects alone. */
  const supervisedOn = (host: string) =>
    new Set(
      Object.values(current?.getSnapshot().context.sessions ?? {})
        .filter((ref) => ref.getSnapshot().context.host === host)
        .map((ref) => ref.getSnapshot().context.request.sessionId),
    );

  /**
   * Removes the files of bounded caches whose volume is gone from a host (its operator removed it) and
   * of makes cut short. Only while no session is supervised there (a host reconciled after an outage may
   * have one making its cache: its file is not a volume yet). A podman call only when there are files.
   * Housekeeping: a failure is logged, and the next reconciliation tries again.
   */
  const pruneCacheImages = async (host: string, signal: AbortSignal) => {
    const cachesDir = cachesDirOf(config.stateDir);
    try {
      const { volumes, partial } = cacheImagesOn(cachesDir, host);
      const known =
        volumes.length === 0
          ? new Set<string>()
          : new Set(
              (await ports(host).listVolumes({ [LABEL_INSTANCE]: instanceId }, signal)).map((v) => v.name),
            );
      const gone = volumes.filter((name) => !known.has(name));
      removeCacheImages(cachesDir, host, gone, partial);
      if (gone.length > 0)
        log.info(
          { event: 'daemon.cache_files_removed', host, volumes: gone },
          `removed the files of ${gone.length} bounded cache(s) whose volume is gone`,
        );
    } catch (error) {
      if (signal.aborted) return;
      log.warn(
        { event: 'daemon.cache_files_kept', host, ...errorFields(error) },
        `could not look for the files of removed bounded caches of host ${host} in ${cachesDir}: ${errorMessage(error)}`,
      );
    }
  };

  /**
   * How long reconciliation waits at most for the `secret create` commands a killed daemon left running
   * (daemon.podman_timeout when shorter).
   */
  const LEFT_CREATES_WAIT_MS = 10_000;
  /** Reconciliations the start stopped waiting for: their hosts' actors take them over. */
  const startReconciliations = new StartReconciliations<HostReconciled>();
  /** Reconciles one host and plans the recovery of its sessions that nobody supervises. */
  const reconcileHostOf = (host: string, signal: AbortSignal): Promise<HostReconciled> =>
    reconcileHost(
      {
        instanceId,
        log,
        ports,
        waiting,
        supervisedOn,
        agents: () => current?.getSnapshot().context.agents ?? settings.agents,
        hosts,
        journal,
        files,
        pruneCacheImages,
        record: settle,
        // A create takes well under a second; one hung for good must not hold the start for long.
        leftCreatesMs: Math.min(config.podmanTimeoutMs, LEFT_CREATES_WAIT_MS),
      },
      host,
      signal,
    );

  /**
   * Records and reports sessions settled without a session actor; resolves once they are recorded. One
   * its host's reconciliation recorded already (before it removed the container it was read from) is not
   * recorded again. The machine lets go of their keys here, where each outcome is recorded: a host's
   * reconciliation that records outcomes and then fails (a removal refused, the host gone again) sends
   * no host.up, and their keys stayed those of running sessions until a restart.
   */
  const settle = (sessions: readonly SettledSession[]): Promise<void> => {
    if (sessions.length > 0)
      send({ type: 'sessions.settled', sessionIds: sessions.map((s) => s.request.sessionId) });
    // Sealed in the background; a crash before the end is finished by the next start (recover).
    return Promise.all(
      sessions
        .filter((s) => s.recorded !== true)
        .map(({ request, outcome }) =>
          journal
            .finish(request, outcome)
            .catch((error: unknown) =>
              log.error(
                { event: 'session.report_failed', session: request.sessionId, err: error },
                'could not report a settled session',
              ),
            ),
        ),
    ).then(() => {});
  };

  const seccomp = await seccompProfiled;
  /**
   * What the state dir must have taken before triggers are accepted (else the daemon is degraded, and
   * this is tried again every second): the records that waited, the local sessions' seccomp profile
   * (no session starts without it) and the pid. Throws StateDirError.
   */
  const catchUp = () => {
    journal.flush();
    seccomp.write();
    pidFile.writePid();
  };
  /**
   * What daemon.crashed says of an exception that stopped the daemon machine: the provided action it
   * came from (each is wrapped by `named`; an assign of the machine's own is known by the event only),
   * and the last event the machine was sent.
   */
  const crash: { action?: string | undefined; event?: string } = {};
  const named = <A extends object>(actions: A): A => {
    const wrapped: Record<string, unknown> = {};
    for (const [name, action] of Object.entries(actions)) {
      // XState's own actions (raise: a function with `resolve`) are wrapped where they call ours.
      wrapped[name] =
        typeof action === 'function' && !('resolve' in action)
          ? (...args: unknown[]) => {
              try {
                return (action as (...a: unknown[]) => unknown)(...args);
              } catch (error) {
                crash.action ??= name;
                throw error;
              }
            }
          : action;
    }
    return wrapped as A;
  };
  let port: DaemonPort | undefined;
  let http: HttpServer | undefined;
  const server = socketServer(settings, log, (line, connection, notUtf8At) => {
    if (port) dispatch(line, connection, port, notUtf8At);
  });
  /** Records an accepted trigger's session durably (the daemon machine's recordAccepted). */
  const recordAccepted = (session: SessionInput, requestId: string | undefined) => {
    const { request } = session;
    const answer = requestId === undefined ? { session } : { session, requestId };
    try {
      journal.accept(request, session.agent.resources.output.bytes);
    } catch (error) {
      const problem = stateDirProblem(error);
      log.warn(
        {
          event: 'session.unrecorded',
          session: request.sessionId,
          ...errorFields(error),
          code: problem.code,
        },
        `trigger rejected: ${problem.reason}`,
      );
      return { type: 'trigger.unrecorded' as const, ...answer, ...problem };
    }
    acceptedNotify.set(request.sessionId, session.agent.notify ?? []);
    // Taken when the outcome is published (every accepted session gets one); bounded should one not be.
    if (acceptedNotify.size > ACCEPTED_NOTIFY_MAX)
      acceptedNotify.delete(acceptedNotify.keys().next().value as string);
    log.info(
      {
        event: 'session.accepted',
        session: request.sessionId,
        agent: request.agent,
        repo: request.repoUrl,
      },
      'session accepted',
    );
    return { type: 'trigger.recorded' as const, ...answer };
  };
  const machine = daemonMachine.provide({
    actors: {
      session: sessionLogic(
        settings,
        instanceId,
        ports,
        journal,
        files.dir,
        metrics,
        log,
        env,
        leftovers,
        seccomp.path,
      ),
      host: hostMachine.provide({
        actors: {
          probe: fromPromise(async ({ input, signal }) => {
            const started = performance.now();
            const version = await ports(input.host).probe(config.hostProbeTimeoutMs, signal);
            // It answers: what an earlier teardown left there goes now, beside the next probes.
            void leftovers.sweep(input.host, ports(input.host));
            return { version, ms: Math.round(performance.now() - started) };
          }),
          reconcileHost: fromPromise(({ input, signal }) =>
            startReconciliations.take(input.host, () => reconcileHostOf(input.host, signal), signal),
          ),
        },
        delays: {
          probeInterval: config.hostProbeIntervalMs,
          downGrace: downGraceLeft(config.hostDownGraceMs),
        },
      }),
      schedule: scheduleMachine.provide({
        actions: named<ActionsOf<typeof scheduleMachine>>({
          recordProgress: (_, { agent, schedule, since }) => scheduleLog.record(agent, schedule, since),
          warnClockBehind: (_, { agent, lastFired, now }) =>
            log.warn(
              { event: 'schedule.clock_behind', agent, lastFired, now },
              `the clock (${now}) is more than a day behind the last firing of agent ${agent}'s schedule (${lastFired}): taken as set right, its schedule goes on from now; check the host's clock if it was not set back on purpose`,
            ),
        }),
      }),
      reconcile: fromPromise(async ({ signal }) => {
        await journal.recover();
        // Without hosts: the local Podman, as ever; the daemon cannot start without it. With hosts, one
        // that does not answer its probe, or is slow to reconcile, is down and does not hold back the others.
        const required = settings.hosts.length === 0;
        const results = await reconcileAtStart(
          hosts.map((h) => h.name),
          {
            required,
            waitMs: START_WAIT_PROBE_TIMEOUTS * config.hostProbeTimeoutMs,
            probe: (host) => ports(host).probe(config.hostProbeTimeoutMs, signal),
            reconcile: (host) => reconcileHostOf(host, signal),
            late: startReconciliations,
          },
        );
        const requeued = planRecovery(recovered.queued, [], settings.agents);
        // Those an earlier daemon was resolving the credentials of say queued again, as they are.
        const again = new Set(requeued.queued.map((s) => s.request.sessionId));
        for (const record of recovered.queued)
          if (record.phase === 'resolving' && again.has(record.id)) journal.requeued(record.id);
        const up = results.flatMap((r) => (r.reconciled === undefined ? [] : [r.reconciled]));
        const recovery = {
          queued: [...requeued.queued, ...up.flatMap((r) => r.queued ?? [])],
          adopted: up.flatMap((r) => r.adopted),
          finished: [...requeued.finished, ...recovered.lost, ...up.flatMap((r) => r.finished)],
        };
        if (recovery.queued.length + recovery.adopted.length + recovery.finished.length > 0) {
          log.info(
            {
              event: 'daemon.recovered',
              requeued: recovery.queued.map((s) => s.request.sessionId),
              adopted: recovery.adopted.map((s) => s.request.sessionId),
              settled: recovery.finished.map((s) => ({
                session: s.request.sessionId,
                outcome: s.outcome.outcome,
              })),
            },
            'recovered the sessions of an earlier daemon',
          );
        }
        const result = {
          summary: {
            removedContainers: sum(up.map((r) => r.summary.removedContainers)),
            removedSecrets: sum(up.map((r) => r.summary.removedSecrets)),
            runningContainers: sum(up.map((r) => r.summary.runningContainers)),
          },
          recovery,
          down: results.flatMap((r) => (r.down === undefined ? [] : [{ host: r.host, reason: r.down }])),
          versions: Object.fromEntries(
            results.flatMap((r) => (r.version === undefined ? [] : [[r.host, r.version]])),
          ),
        };
        metrics.reconciled(result);
        return result;
      }),
      openSocket: fromPromise(async (): Promise<OpenResult> => {
        await server.listen();
        removeQuietly(startingMarkerPath(config.socket));
        if (config.http && port && prometheus) {
          const { openHttpApi } = await import('./http.js');
          http = await openHttpApi({ settings: config.http, port, metrics: prometheus, env, log });
        }
        try {
          catchUp();
          return {};
        } catch (error) {
          return { stateDir: stateDirProblem(error) };
        }
      }),
      watchStateDir: fromCallback(({ sendBack }) => {
        const timer = setInterval(() => {
          try {
            catchUp();
            sendBack({ type: 'stateDir.writable' });
          } catch {
            // Still no room: look again later.
          }
        }, STATE_DIR_RETRY_MS);
        return () => clearInterval(timer);
      }),
    },
    // A failed host's grace, as its actors count it (the host machine's downGrace, above).
    delays: { hostDownGrace: failedHostGraceLeft(config.hostDownGraceMs) },
    guards: {
      sessionIdRecorded: (_, sessionId) => journal.used(sessionId),
    },
    actions: named<ActionsOf<typeof daemonMachine>>({
      recordAccepted: raise((_, { session, requestId }) => {
        try {
          return recordAccepted(session, requestId);
        } catch (error) {
          crash.action ??= 'recordAccepted';
          throw error;
        }
      }),
      reportSettled: (_, { sessions }) => settle(sessions),
      abandonWaiting: (_, { host, reason }) => {
        const abandon = () => {
          const records = waiting.get(host) ?? [];
          waiting.delete(host);
          const abandoned = abandonedWaiting(records, host, config.hostDownGraceMs, reason);
          metrics.recovered('settled', abandoned.length);
          // Only here are they known: settle lets go of their keys as of sessions that ended.
          settle(abandoned);
        };
        // After a reconciliation the start left going, which recovers them itself if it succeeds.
        const late = startReconciliations.settled(host);
        if (late === undefined) abandon();
        else void late.then(abandon);
      },
      announceUp: ({ context }) => {
        // Up: sessions' output may grow the young generation again (held small while loading, cli/index.ts),
        // and what the start left behind (every record read, recovery) is collected now, not in 30 s.
        releaseYoungGeneration();
        collectStartGarbage();
        const problem = context.stateDir;
        log.info(
          {
            event: 'daemon.ready',
            socket: config.socket,
            instanceId,
            pid: process.pid,
            ...(problem ? { degraded: problem.reason } : {}),
          },
          problem ? `agentd is up but degraded, rejecting triggers: ${problem.reason}` : 'agentd is ready',
        );
        queueMicrotask(() => notify.ready(readyStatus(actor)));
      },
      announceDegraded: ({ context }) => {
        const problem = context.stateDir;
        log.warn(
          { event: 'daemon.degraded', code: problem?.code, reason: problem?.reason },
          `degraded, rejecting triggers: ${problem?.reason}`,
        );
        queueMicrotask(() => notify.ready(readyStatus(actor)));
      },
      announceWritable: () => {
        log.info(
          { event: 'daemon.state_dir_writable', unwritten: journal.unwritten },
          'the state dir takes writes again: accepting triggers',
        );
        queueMicrotask(() => notify.ready(readyStatus(actor)));
      },
      announceShutdown: (_, { running, reconciling }) => {
        // A host back after an outage may be settling sessions from the containers it removes: their
        // outcomes are recorded before the stop (each podman call within daemon.podman_timeout).
        const hostsToo =
          reconciling.length === 0
            ? ''
            : ` and the reconciliation of host(s) ${reconciling.join(', ')} to end`;
        notify.stopping(`stopping: ${running} running session(s) to finish${hostsToo}`);
        log.info(
          { event: 'daemon.shutdown', running, ...(reconciling.length === 0 ? {} : { reconciling }) },
          `shutting down: ${running} running session(s) to finish${hostsToo}${reconciling.length === 0 ? '' : ' (a second signal cuts it short)'}`,
        );
      },
      announceShutdownPending: () => {
        notify.stopping('stopping: the start reconciles Podman first');
        log.info(
          { event: 'daemon.shutdown_pending' },
          "shutting down once the start's reconciliation has ended and the outcomes it read are recorded (each podman call within its deadline, daemon.podman_timeout); a second signal stops at once, and an exited container whose outcome was not recorded by then is left for the next start to read",
        );
      },
      announceReconcileFailed: (_, reason) => {
        log.error(
          { event: 'daemon.reconcile_failed', reason },
          `the start's reconciliation failed while the daemon was stopping: ${reason}; stopping as asked, and the next start reconciles again`,
        );
      },
      announceFiringSkipped: (_, { agent, firing, reason }) => {
        metrics.firing(agent, 'skipped');
        log.info(
          { event: 'schedule.skipped', agent, firing, reason },
          `schedule of ${agent} fired (${firing}) without a session: ${reason}`,
        );
      },
      announceFiringMissed: (_, { agent, firing, reason }) => {
        metrics.firing(agent, 'missed');
        log.warn(
          { event: 'schedule.missed', agent, firing, reason },
          `schedule of ${agent} fired (${firing}) but no session could be accepted: ${reason}`,
        );
      },
      announceScheduleFailed: (_, { agent, reason, restart }) => {
        // Absorbed: the action the schedule's exception came from is said here, not by a later crash.
        const action = crash.action;
        crash.action = undefined;
        log.error(
          {
            event: 'schedule.failed',
            agent,
            reason,
            ...(action === undefined ? {} : { action }),
            ...restartFields(restart),
          },
          `the schedule of agent ${agent} failed${action === undefined ? '' : ` in ${action}`}: ${reason}; it fires no more until it starts again, the daemon and the other schedules go on: ${retryNote(restart)}`,
        );
      },
      announceRestarted: (_, { kind, name, attempt }) => {
        metrics.restarted(kind, name);
        if (kind === 'schedule')
          log.info(
            { event: 'schedule.restarted', agent: name, attempt },
            `the schedule of agent ${name} starts again after its failure (attempt ${attempt}), from now: the firings it missed are not made up`,
          );
        else
          log.info(
            { event: 'host.restarted', host: name, attempt },
            `the daemon watches host ${name} again after its supervision failed (attempt ${attempt}): it is probed and reconciled before it takes sessions`,
          );
      },
      announceCancelAll: (_, { running, reconciling }) =>
        log.info(
          { event: 'daemon.cancelling', running, ...(reconciling.length === 0 ? {} : { reconciling }) },
          `shutting down now: cancelling ${running} running session(s)${
            reconciling.length === 0
              ? ''
              : `; the reconciliation of host(s) ${reconciling.join(', ')} is cut short (an exited container whose outcome it had not recorded is left for the next start to read)`
          }`,
        ),
      announceHostUp: (_, { host, adopted, finished, queued = [] }) => {
        // What a host down at start recovers once it is back (the start's own are counted with its result).
        metrics.recovered('adopted', adopted.length);
        metrics.recovered('settled', finished.length);
        metrics.recovered('requeued', queued.length);
        log.info(
          {
            event: 'host.up',
            host,
            adopted: adopted.map((s) => s.request.sessionId),
            settled: finished.map((s) => s.request.sessionId),
            ...(queued.length === 0 ? {} : { requeued: queued.map((s) => s.request.sessionId) }),
          },
          `host ${host} is up again and reconciled: it takes sessions`,
        );
      },
      announceHostFailed: (_, { host, reason, restart }) =>
        log.error(
          { event: 'host.failed', host, reason, ...restartFields(restart) },
          `the daemon's supervision of host ${host} failed: ${reason}; no new sessions go there, its running sessions go on, the other hosts and the daemon too: ${retryNote(restart)}`,
        ),
      announceHostDown: (_, { host, reason }) =>
        log.warn(
          { event: 'host.down', host, reason },
          `host ${host} is down: ${reason}; no new sessions go there, its running sessions wait for it`,
        ),
      announceHostsDown: (_, down) => {
        for (const { host, reason } of down) {
          log.warn(
            { event: 'host.down', host, reason, atStart: true },
            `host ${host} is down at start: ${reason}; it is retried, the other hosts take sessions`,
          );
        }
      },
    }),
  });

  const input = {
    agents: settings.agents,
    maxSessions: config.maxSessions,
    scheduleSince,
    ...(settings.hosts.length === 0 ? {} : { hosts: settings.hosts.map(hostInfo) }),
    keys,
    keyLimit: config.historyLimit,
  };
  const actor: DaemonActor = createActor(machine, {
    input,
    // The last event the machine was sent, for daemon.crashed; then the live inspector, if any.
    inspect: (inspection) => {
      if (inspection.type === '@xstate.event' && inspection.actorRef === current)
        crash.event = inspection.event.type;
      options.inspect?.(inspection);
    },
  });
  current = actor;
  const notifier = new Notifier({
    // The webhooks of the definition the session was accepted with: a reload that removed its agent, or
    // pointed its notify elsewhere, changes where new sessions' outcomes go, not this one's.
    targets: (record) => {
      const accepted = acceptedNotify.get(record.id);
      acceptedNotify.delete(record.id);
      // A session an earlier daemon accepted: its agent as configured now.
      const current = actor.getSnapshot().context.agents.find((a) => a.name === record.agent);
      return [...(accepted ?? current?.notify ?? []), ...config.notify];
    },
    env,
    log,
    metrics,
    version: options.version,
    outbox,
  });
  notifying = notifier;
  journal.onFinishing = (session, outcome) => notifier.prepare(session, outcome);
  // Before any session can finish: what an earlier daemon did not get taken is sent again.
  notifier.resume((id) => journal.record(id));
  observeDaemon({ actor, journal, metrics, notifier, log });
  send = (event) => actor.send(event);
  journal.onPruned = (sessionIds) => actor.send({ type: 'records.pruned', sessionIds });
  // A reload reads and validates the file in a thread of its own: the event loop goes on meanwhile.
  const reloadLoader = createThreadedLoader();
  const logShutdownRequest = shutdownRequestLog(log);
  const reload = createReloader({
    started: settings,
    actor,
    log,
    notify,
    load: reloadLoader.load,
    collect: collectStartGarbage,
  });
  port = createDaemonPort({
    actor,
    journal,
    reload,
    version: options.version,
    instanceId,
    socket: config.socket,
    log,
    hosts: settings.hosts,
    turnedAway: (code) => metrics.rejectedTrigger(code),
    // The path of a SIGTERM (onSignal below), for a shutdown asked over the socket or the HTTP API: said in the log, which
    // had only `daemon.shutdown` and no word of who asked, and a reload under way ended.
    onShutdown: (mode) => {
      // Each one, up to a budget: a client asking in a loop must not fill the log.
      logShutdownRequest(mode);
      void reloadLoader.close();
    },
  });

  // A second shutdown cancels the running sessions: the machine's rule, not counted here.
  const onSignal = (signal: NodeJS.Signals) => {
    // The machine has stopped: the daemon writes its last records and gives notifications their grace.
    // A signal now must not end it mid-way (its default action did: exit 143, pid file left, deliveries
    // under way neither written back nor said abandoned); it is bounded, and SIGKILL ends it at once.
    if (actor.getSnapshot().status !== 'active') {
      log.info(
        { event: 'daemon.signal', signal, finishing: true },
        `received ${signal} while finishing the stop (its last sweep, records and outcome notifications: some 20 s at most); it goes on, SIGKILL ends it at once`,
      );
      return;
    }
    log.info({ event: 'daemon.signal', signal }, `received ${signal}`);
    // A reload under way is ended (its thread too) and none begins: one while the daemon stops changes nothing.
    void reloadLoader.close();
    actor.send({ type: 'shutdown' });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // A step of the system clock while the daemon runs is warned of (daemon.clock_stepped).
  const clock = watchClock(log);
  // What a busy spell left in the heap is given back once the daemon has been idle a while.
  const idleCollection = collectWhenIdle({
    idle: () => {
      const { sessions, queue } = actor.getSnapshot().context;
      return queue.length === 0 && Object.keys(sessions).length === 0;
    },
    subscribe: (listener) => {
      // With an error listener: a subscriber without one makes XState rethrow the machine's failure
      // (an uncaught exception) instead of leaving it to the wait below.
      const subscription = actor.subscribe({ next: listener, error: () => {} });
      return () => subscription.unsubscribe();
    },
    collect: collectStartGarbage,
    log,
  });
  actor.start();
  // The machine holds the agents in force from now on: the settings the daemon started with, and its
  // input, read them there instead of keeping the start's definitions once a reload replaced them.
  agentsInForce([settings, input], () => actor.getSnapshot().context.agents);
  // SIGHUP re-reads the configuration (systemd's ExecReload); one that came while starting does now.
  hangups.reloadWith(() => void reload('SIGHUP'));
  // `stopped` is final inside `shutdown`; `failed` is final at the top.
  const end = await waitFor(actor, (s) => s.status !== 'active' || s.matches({ shutdown: 'stopped' }), {
    timeout: Number.POSITIVE_INFINITY,
  }).catch((error: unknown) => {
    // An exception in one of its actions (a write that failed, a bug): from now on clients are told
    // that the daemon failed (port.ts), and it ends as below, exiting 1. A session queued or running is
    // recovered by the next start as after a crash.
    const action = crash.action ?? 'an action of the daemon machine';
    const fields = errorFields(error);
    log.error(
      {
        event: 'daemon.crashed',
        action,
        ...(crash.event === undefined ? {} : { while: crash.event }),
        ...fields,
        // The stack only of what nobody expected: an error with a code (ENOSPC, EACCES) says enough.
        ...(fields.code === undefined ? { err: error } : {}),
      },
      `the daemon machine failed in ${action}${crash.event === undefined ? '' : ` (handling ${crash.event})`}: ${fields.reason}; the daemon takes no more triggers and exits: restart it (the next start recovers its sessions)`,
    );
    // XState stops a failed machine's delayed events, not its children: its sessions, hosts and schedules
    // would go on (podman calls, probes, firings) and hold the process until its bounded exit. Stopped as a
    // stop stops them (the event stop() sends); a session's container is left to the next start, which
    // adopts it as after a daemon that was killed.
    for (const child of Object.values(actor.getSnapshot().children))
      (child as AnyActorRef | undefined)?.send({ type: 'xstate.stop' });
    return undefined;
  });
  // Its status, not a flag beside it: read before stop() makes every machine `stopped`.
  const crashed = actor.getSnapshot().status === 'error';
  actor.stop();
  // Nothing more for the machine (settle below, a record write that fails): it has stopped.
  send = () => {};
  // Not released: SIGHUP's default action would end the daemon while it seals and notifies.
  hangups.stopping();
  await reloadLoader.close();
  // A host's reconciliation the start left going that its actor did not take over (the daemon stopped
  // first) is waited for, as a reconciliation under way is: it records the outcomes it reads from exited
  // containers before it removes them. The sessions it found running are left to the next start.
  for (const [host, reconciled] of await startReconciliations.untaken()) {
    log.info(
      {
        event: 'daemon.recovered',
        host,
        settled: reconciled.finished.map((s) => ({
          session: s.request.sessionId,
          outcome: s.outcome.outcome,
        })),
      },
      `the reconciliation of host ${host} that the start left going has ended`,
    );
    settle(reconciled.finished);
  }
  // The progress of schedules that fired in the last turn (it is written at the end of a turn).
  scheduleLog.flush();
  // No seal made again from now on (the next start makes them): one would write after writeWaiting.
  keeper.close();
  clock.stop();
  idleCollection.stop();
  // Once more before the end, for what teardown left (a start would remove it too); a host that does
  // not answer holds the end up for LEFTOVERS_AT_STOP_MS at most (a secret removal under way finishes).
  const sweepDeadline = AbortSignal.timeout(LEFTOVERS_AT_STOP_MS);
  await Promise.all(
    leftovers.hosts().map((host) =>
      Promise.resolve()
        .then(() => leftovers.sweep(host, ports(host), sweepDeadline))
        .catch(() => {}),
    ),
  );
  // Sessions settled on the way out (queued ones dropped) are sealed in the background: their
  // followers get the outcome before their connections are closed.
  await journal.outcomesPublished(OUTCOMES_AT_STOP_MS);
  await server.close();
  await http?.close();
  await journal.settled();
  // A state dir still full: the records that waited are written in the room kept for them, or a next
  // start would recover those sessions as they were on disk (a finished one as running, and abandoned).
  const waited = journal.unwritten;
  if (waited > 0) {
    const lost = journal.writeWaiting();
    if (lost.length === 0)
      log.info(
        { event: 'daemon.records_written', count: waited },
        `wrote ${waited} session record(s) that waited for room in the state dir`,
      );
    else
      log.error(
        { event: 'daemon.records_lost', sessions: lost },
        `could not write the records of ${lost.length} session(s) (the state dir is full): the next start recovers them as they were last written`,
      );
  }
  // Notifications of the last outcomes get a moment; a receiver that is down does not hold the stop up.
  await notifier.close(NOTIFY_GRACE_MS);
  await notify.flush();
  // The stop is done and the process ends within milliseconds; a signal now (a second `agentd stop`, a
  // Ctrl-C, a SIGHUP after hangups.release) is ignored. Without a listener its default action killed
  // the process: a clean stop reported as death by that signal (exit 143), its last log lines lost.
  // Added before onSignal goes, so that no instant is without one; signal listeners hold no process up.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, ignoreLateSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  // Said by daemon.crashed: not a start that failed.
  if (crashed) return DAEMON_CRASHED_EXIT;
  if (!end?.matches({ shutdown: 'stopped' })) {
    // Reported by the caller like any other start failure: a log line and a plain message.
    throw new AgentdError(
      'START_FAILED',
      `could not start: ${end?.context.failure ?? 'the daemon machine failed'}`,
      { operation: 'start daemon' },
    );
  }
  log.info({ event: 'daemon.stopped', state: stateName(end.value) }, 'agentd stopped');
  return 0;
}

/** A signal once the stop has finished: the process is ending by itself. */
function ignoreLateSignal(): void {}

/** The seccomp profile of the local Podman's session containers. */
interface LocalSeccomp {
  /** Given to each of them; undefined: they run under Podman's default (none could be derived). */
  path: string | undefined;
  /** Writes the profile if it still waits for room; throws StateDirError meanwhile. */
  write(): void;
}

/**
 * The seccomp profile of session containers on the local Podman (one of the hosts has no url): Podman's
 * default with user namespaces refused, derived at each start into the state dir. Without one (no
 * readable default profile), sessions still run, under Podman's default: one warning says so. One the
 * state dir did not take is written by `write`: until then the daemon is degraded, and no session starts
 * (never one under Podman's default instead).
 */
async function localSeccompProfile(
  hosts: readonly HostConfig[],
  config: Settings['daemon'],
  log: Logger,
): Promise<LocalSeccomp> {
  const none = { path: undefined, write: () => {} };
  if (!hosts.some((h) => transportOf(h) === 'local')) return none;
  const podman = new PodmanClient({ timeoutMs: config.podmanTimeoutMs, cwd: config.stateDir });
  const prepared = await prepareSeccompProfile(() => podman.seccompDefault(), config.stateDir);
  if ('problem' in prepared) {
    log.warn(
      {
        event: 'daemon.seccomp_default',
        ...(prepared.source === undefined ? {} : { file: prepared.source }),
        fix: prepared.fix,
      },
      `${prepared.problem}: ${SECCOMP_FALLBACK}`,
    );
    return none;
  }
  const { path, source } = prepared;
  const written = () =>
    log.info(
      { event: 'daemon.seccomp_profile', file: path, source },
      `session containers on this machine refuse user namespaces and keyrings: seccomp profile ${path}, derived from ${source}`,
    );
  let unwritten = prepared.unwritten;
  if (unwritten === undefined) {
    written();
    return { path, write: () => {} };
  }
  log.warn(
    { event: 'daemon.seccomp_unwritten', file: path, source, code: unwritten.error.code },
    `${unwritten.error.message}; the daemon is degraded and starts no session until it is written (tried again every second), never one without it`,
  );
  return {
    path,
    write: () => {
      if (unwritten === undefined) return;
      unwritten.write();
      unwritten = undefined;
      written();
    },
  };
}

/**
 * The Podman of each host, by name: the podman CLI with the host's --url (none for the local one),
 * each wrapped by `wrap` (the metrics' observer).
 */
function hostPorts(
  hosts: readonly HostConfig[],
  timeoutMs: number,
  pullTimeoutMs: number,
  cwd: string,
  wrap: (port: PodmanPort, host: string) => PodmanPort,
  log: Logger,
): (host: string | undefined) => PodmanPort {
  const ports = new Map(
    hosts.map((h) => [
      h.name,
      wrap(
        new PodmanClient({
          timeoutMs,
          pullTimeoutMs,
          cwd,
          warn: (fields, message) => log.warn({ ...fields, host: h.name }, message),
          ...(h.url === undefined ? {} : { url: h.url }),
          ...(h.identity === undefined ? {} : { identity: h.identity }),
        }),
        h.name,
      ),
    ]),
  );
  const only = hosts.length === 1 ? ports.get(hosts[0]?.name ?? '') : undefined;
  return (host) => {
    const port = host === undefined ? only : ports.get(host);
    if (port === undefined) {
      throw new AgentdError('INTERNAL', `no host ${host ?? '(none)'} is configured`, {
        operation: 'find the host of a session',
      });
    }
    return port;
  };
}

function hostInfo(host: HostConfig): { name: string; maxSessions: number; labels: Record<string, string> } {
  return { name: host.name, maxSessions: host.maxSessions, labels: host.labels };
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** How long a stopping daemon tries to remove what failed teardowns left. */
const LEFTOVERS_AT_STOP_MS = 10_000;
/** How long the end waits for the outcomes being recorded to reach their followers. */
const OUTCOMES_AT_STOP_MS = 5000;
/** Sessions whose webhooks wait for their outcome to be published, at most (the queue holds 10,000). */
const ACCEPTED_NOTIFY_MAX = 20_000;

/** The session machine with its actors: credentials from the environment and files, the runner over Podman. */
function sessionLogic(
  settings: Settings,
  instanceId: string,
  podman: HostPorts,
  journal: SessionJournal,
  workDir: string,
  metrics: MetricsRecorder,
  log: Logger,
  env: NodeJS.ProcessEnv,
  leftovers: Leftovers,
  seccompProfile: string | undefined,
) {
  const { daemon: config } = settings;
  const runner = runnerMachineFor({
    // The local Podman's containers refuse user namespaces; hosts behind a url keep their engine's default.
    ...(seccompProfile === undefined ? {} : { seccompProfile }),
    instanceId,
    stopGraceMs: config.stopGraceMs,
    workDir,
    cacheDir: cachesDirOf(config.stateDir),
    hostDownGraceMs: config.hostDownGraceMs,
    hostRetryMs: config.hostProbeIntervalMs,
    // ssh:// and tcp:// hosts do not see this machine's files: work in and results out are copied.
    copyHosts: settings.hosts.filter((h) => !seesThisMachine(h)).map((h) => h.name),
    // Hosts behind a connection create, start and remove their containers in calls of their own (RunPlan.mode).
    connectedHosts: settings.hosts.filter((h) => transportOf(h) !== 'local').map((h) => h.name),
  }).provide({
    actors: runnerActors(podman, {
      logFile: (id) => journal.logPath(id),
      logMaxBytes: config.logMaxBytes,
      line: (sessionId, line) => journal.output(sessionId, line),
      block: (sessionId, block) => journal.output(sessionId, block),
      dropped: (sessionId, lines, reason) => metrics.droppedOutput(sessionId, lines, reason),
    }),
    actions: {
      announcePhase: ({ context }, { phase }) => {
        const sessionId = context.session.invocation.sessionId;
        // `creating` and `tearing_down` are entered with a podman call (secret create, rm) that the
        // machine starts at the end of this same step: the record is written (about 3 ms, two files)
        // right after its spawn instead of before it, in a microtask: nothing else runs in between, and
        // followers still hear of the phase only once it is written.
        // The teardown's record keeps the outcome already decided: a daemon that dies while the session
        // tears down is followed by one that settles it so (recovery.ts), not by its container's exit code.
        if (phase === 'tearing_down') {
          const { outcome, kind, phase: at, exitCode, signal, message } = decidedOf(context);
          const decided = {
            outcome,
            phase: at,
            ...(kind === undefined ? {} : { kind }),
            ...(exitCode === undefined ? {} : { exitCode }),
            ...(signal === undefined ? {} : { signal }),
            ...(message === undefined ? {} : { message }),
          };
          queueMicrotask(() => journal.phase(sessionId, phase, undefined, decided));
        } else if (phase === 'creating') queueMicrotask(() => journal.phase(sessionId, phase));
        else journal.phase(sessionId, phase);
      },
      announceContainer: ({ context }, { container }) =>
        journal.container(context.session.invocation.sessionId, container),
      // Written before the call is spawned, not a microtask after it: a record at creating without it
      // is run again by a restarted daemon that finds no container (recovery.ts).
      announceContainerCall: ({ context }) => journal.containerCall(context.session.invocation.sessionId),
      announceMasking: ({ context }, masking) => {
        const session = context.session.invocation.sessionId;
        if ('values' in masking)
          log.info(
            { event: 'session.masking', session, values: masking.values },
            "masking the adopted session's output with the credential values read back from its container",
          );
        else
          log.warn(
            { event: 'session.output_withheld', session, err: masking.error },
            "withholding the adopted session's output: the credential values its container was given could not be read back",
          );
      },
      announceCommit: ({ context }, { commit }) =>
        journal.commit(context.session.invocation.sessionId, commit),
      announceImage: ({ context }, { id, digest }) =>
        journal.image(context.session.invocation.sessionId, context.session.spec.image, id, digest),
      warn: ({ context }, { message, error }) =>
        log.warn(
          {
            event: 'session.teardown_warning',
            session: context.session.invocation.sessionId,
            ...errorFields(error),
          },
          message,
        ),
      leaveBehind: (_, left) => leftovers.add(left),
      // A first failed try that teardown repeats is not yet a problem (Podman 4.3 can report a busy
      // mount for a moment): only its second failure is a warning.
      noteTeardownRetry: ({ context }, { message, error }) =>
        log.info(
          {
            event: 'session.teardown_retry',
            session: context.session.invocation.sessionId,
            ...errorFields(error),
          },
          message,
        ),
    },
  });
  return sessionMachine.provide({
    actors: {
      resolveCredentials: fromPromise(({ input, signal }) =>
        resolveCredentials(input.agent, env, { signal }),
      ),
      runner,
      reportOutcome: fromPromise(async ({ input }) => journal.finish(input.request, input.outcome)),
    },
    actions: {
      announcePhase: ({ context }, { phase }) =>
        journal.phase(context.request.sessionId, phase, context.host),
      announceAdoption: ({ context }) =>
        log.info(
          {
            event: 'session.adopted',
            session: context.request.sessionId,
            container: context.adopted?.container,
          },
          'adopted a session',
        ),
      abandonRun: ({ context, self }) => {
        const runner = self.getSnapshot().children.runner as RunnerActor | undefined;
        if (runner === undefined) return;
        // What it started goes as a stop would take it (the event stop() sends): the container's
        // attachment no longer reads, logs or writes for a session whose outcome is recorded.
        for (const child of Object.values(runner.getSnapshot().children))
          (child as AnyActorRef | undefined)?.send({ type: 'xstate.stop' });
        const left = leftByRunner(runner.getSnapshot().context);
        if (left.containers.length + left.secrets.length === 0) return;
        log.warn(
          {
            event: 'session.abandoned_objects',
            session: context.request.sessionId,
            ...(left.host === undefined ? {} : { host: left.host }),
            containers: left.containers,
            secrets: left.secrets,
          },
          `the runner of session ${context.request.sessionId} failed before its teardown: removing its container and secrets now (and at each probe of its host until they are gone)`,
        );
        // Now, not at the host's next probe: its agent would run meanwhile with nobody counting it.
        leftovers.add(left);
        const host = left.host ?? LOCAL_HOST;
        void leftovers.sweep(host, typeof podman === 'function' ? podman(left.host) : podman);
      },
    },
  });
}

/** The Unix socket with its limits; each complete line goes to `onLine`. */
function socketServer(
  settings: Settings,
  log: Logger,
  onLine: ConstructorParameters<typeof SocketServer>[0]['onLine'],
): SocketServer {
  // A client opening connections by the thousand must not have the daemon log each refusal.
  const refusals = new LogBudget((_, count) =>
    log.warn(
      { event: 'socket.busy', count },
      `refused ${count} more connection(s): too many open (not logged one by one past 10 a second)`,
    ),
  );
  return new SocketServer({
    path: settings.daemon.socket,
    maxLineBytes: MAX_LINE_BYTES,
    maxBufferedBytes: MAX_BUFFERED_BYTES,
    maxConnections: 256,
    partialLineTimeoutMs: 30_000,
    idleTimeoutMs: CLIENT_IDLE_MS,
    lagBytes: CLIENT_LAG_BYTES,
    stallTimeoutMs: CLIENT_STALL_MS,
    lingerMs: CLIENT_LINGER_MS,
    maxPendingWriteBytes: 4 * 1024 * 1024,
    onStalled: (connection) => {
      log.warn({ event: 'socket.stalled' }, 'closed a client that stopped reading');
      // The last message, after everything queued: a client (of version 2) that reads again learns why
      // the connection ends.
      if ((connection.protocol ?? PROTOCOL_VERSION) < 2) return;
      connection.send({
        v: PROTOCOL_VERSION,
        type: 'closing',
        reason: 'stalled',
        message: `this client read nothing for ${CLIENT_STALL_MS / 1000}s; the daemon closes the connection (sessions go on)`,
      });
    },
    onLine,
    // The line is gone: the reply has no id to repeat.
    onLineTooLong: (connection) =>
      replyError(
        connection,
        {},
        'line_too_long',
        `request line longer than ${MAX_LINE_BYTES} bytes; requests must be one JSON object per line`,
      ),
    onRejectedConnection: () => {
      if (refusals.take('socket.busy'))
        log.warn({ event: 'socket.busy' }, 'refused a connection: too many open');
    },
    busyLine: busyReply,
  });
}

/** How long a stopping daemon waits for the notifications still under way. */
const NOTIFY_GRACE_MS = 5000;

/**
 * Reads the state dir's records: the keys of those with one, and the unfinished ones. Not the whole list:
 * a local of supervise would hold every record read (10,000 in a state dir left with as many) for the
 * daemon's life; the journal keeps only `daemon.history` of them.
 */
function loadJournal(
  journal: SessionJournal,
  log: Logger,
): { keys: KeyEntry[]; unfinished: SessionRecord[] } {
  const { records, unfinished } = journal.load((bad) =>
    log.warn(
      {
        event: 'daemon.record_quarantined',
        file: bad.file,
        movedTo: bad.movedTo,
        reason: bad.reason,
        ...(bad.log === undefined ? {} : { log: bad.log }),
      },
      (bad.movedTo
        ? `moved an unreadable session record to ${bad.movedTo}: ${bad.reason}; its session is recovered from its container, if it has one`
        : `skipped an unreadable session record (${bad.reason}); it could not be moved aside`) +
        (bad.log === undefined
          ? ''
          : `; its log ${bad.log} is left in place (a session recovered from its container goes on from where it ends); the next start moves it into the quarantine if no session was recovered from a container by then`),
    ),
  );
  return { keys: keysOf(records), unfinished };
}

/** The idempotency keys of recorded sessions, for the machine to remember across a restart. */
function keysOf(records: readonly SessionRecord[]): KeyEntry[] {
  return records.flatMap((r) =>
    r.key === undefined
      ? []
      : [
          {
            key: r.key,
            sessionId: r.id,
            agent: r.agent,
            ...(r.finishedAt === undefined ? {} : { finishedAt: Date.parse(r.finishedAt) }),
          },
        ],
  );
}

/** The actions a machine's `provide` takes. */
type ActionsOf<M extends { provide: (implementations: never) => unknown }> = NonNullable<
  Parameters<M['provide']>[0] extends { actions?: infer A } ? A : never
>;

/** The exit code of a daemon whose machine failed (EXIT.failed). */
const DAEMON_CRASHED_EXIT = 1;

/** How often a degraded daemon looks whether its state dir takes writes again. */
const STATE_DIR_RETRY_MS = 1000;

function stateDirProblem(error: unknown): StateDirProblem {
  if (error instanceof StateDirError) {
    return { code: error.full ? 'state_dir_full' : 'state_dir_unwritable', reason: error.message };
  }
  return { code: 'state_dir_unwritable', reason: `state dir not writable: ${errorMessage(error)}` };
}

/** The log fields of a host's or schedule's failure: its attempt and when it is tried again. */
function restartFields(restart: ChildRestart | undefined): { attempt?: number; retryAt?: string } {
  if (restart === undefined) return {};
  return {
    attempt: restart.attempts,
    ...(restart.retryAt === undefined ? {} : { retryAt: new Date(restart.retryAt).toISOString() }),
  };
}
