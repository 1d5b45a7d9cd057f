import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { createActor, fromCallback, fromPromise, type InspectionEvent, raise } from 'xstate';
import { resolveCredentials } from '../adapters/credentials.js';
import { ensurePrivateDir } from '../adapters/ownership.js';
import { claimPidFile } from '../adapters/pid-file.js';
import { PodmanClient } from '../adapters/podman.js';
import { type ServiceNotifier, silentNotifier } from '../adapters/sd-notify.js';
import { SessionStore, StateDirError } from '../adapters/session-store.js';
import { SocketServer } from '../adapters/socket-server.js';
import type { Settings } from '../config/types.js';
import { MAX_LINE_BYTES } from '../constants.js';
import { AgentdError, errorMessage } from '../errors.js';
import {
  type DaemonEvent,
  daemonMachine,
  type OpenResult,
  type StateDirProblem,
} from '../machines/daemon.machine.js';
import { runnerMachineFor } from '../machines/runner.machine.js';
import { sessionMachine } from '../machines/session.machine.js';
import type { DaemonHandle } from '../protocol/context.js';
import { stateName } from '../protocol/context.js';
import { dispatch } from '../protocol/dispatch.js';
import { runnerActors } from '../runner/actors.js';
import { type SessionRecord, sessionRecordSchema } from '../sessions/records.js';
import { SessionBus } from '../sessions/session-bus.js';
import type { SessionOutcome, SessionPhase, SessionRequest } from '../sessions/types.js';
import { instanceIdOf } from './instance-id.js';
import { reconcile } from './reconcile.js';
import { planRecovery, recordsFromLabels } from './recovery.js';
import { createReloader, readyStatus } from './reload.js';

export interface DaemonOptions {
  settings: Settings;
  log: Logger;
  version: string;
  /** XState inspection observer (the live inspector). */
  inspect?: (event: InspectionEvent) => void;
  env?: NodeJS.ProcessEnv;
  /** Called once the socket accepts connections. */
  onReady?: (handle: DaemonHandle) => void;
  /** The service manager (systemd's NOTIFY_SOCKET): ready, reloading, stopping. */
  notify?: ServiceNotifier;
}

/** Runs the daemon until it stops; resolves with the process exit code. */
export async function runDaemon(options: DaemonOptions): Promise<number> {
  const { settings, log } = options;
  const { stateDir, socket } = settings.daemon;
  // Before anything is written: the daemon's directories must be its own (see ownership.ts).
  ensurePrivateDir(stateDir, 'state dir');
  ensurePrivateDir(dirname(socket), 'socket directory');
  const pidFile = claimPidFile(join(stateDir, 'agentd.pid'));
  if (pidFile.unwritten) {
    log.warn(
      { event: 'daemon.pid_unwritten', file: pidFile.path },
      'the pid file is empty: the state dir has no room for it',
    );
  }
  if (pidFile.stalePid !== undefined) {
    log.warn(
      { event: 'daemon.stale_pid', pid: pidFile.stalePid, file: pidFile.path },
      'took over a stale pid file',
    );
  }
  try {
    return await supervise(options);
  } finally {
    pidFile.release();
  }
}

async function supervise(options: DaemonOptions): Promise<number> {
  const { settings, log, env = process.env, notify = silentNotifier } = options;
  const { daemon: config } = settings;
  const instanceId = instanceIdOf(config.socket, config.stateDir);
  const podman = new PodmanClient({ timeoutMs: config.podmanTimeoutMs });
  // Set once the actor exists: a record write that fails makes the daemon degraded.
  let send: (event: DaemonEvent) => void = () => {};
  const store = new SessionStore(config.stateDir, sessionRecordSchema, {
    onWriteFailure: (error) => send({ type: 'stateDir.unwritable', ...stateDirProblem(error) }),
  });
  const bus = new SessionBus();
  // Read once at start: finished records feed `status`, unfinished ones crash recovery.
  const records = store.list((bad) =>
    log.warn(
      { event: 'daemon.record_quarantined', file: bad.file, movedTo: bad.movedTo, reason: bad.reason },
      bad.movedTo
        ? `moved an unreadable session record to ${bad.movedTo}: ${bad.reason}; its session is recovered from its container, if it has one`
        : `skipped an unreadable session record (${bad.reason}); it could not be moved aside`,
    ),
  );
  const knownIds = new Set(records.map((r) => r.id));
  const unfinished = records.filter((r) => r.outcome === undefined);
  const recent = records
    .filter((r) => r.outcome !== undefined)
    .sort((a, b) => (b.finishedAt ?? '').localeCompare(a.finishedAt ?? ''))
    .slice(0, 50);
  let finishedSincePrune = 0;

  const finish = (request: SessionRequest, outcome: SessionOutcome): void => {
    const finishedAt = new Date();
    const record = store.update(request.sessionId, (r) => ({
      ...r,
      phase: 'finished',
      phases: [...r.phases, { phase: 'finished', at: finishedAt.toISOString() }],
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - Date.parse(r.startedAt ?? r.acceptedAt),
      outcome: outcome.outcome,
      ...(outcome.exitCode === undefined ? {} : { exitCode: outcome.exitCode }),
      ...(outcome.signal === undefined ? {} : { signal: outcome.signal }),
      ...(outcome.message === undefined ? {} : { message: outcome.message }),
    }));
    if (!record) return;
    recent.unshift(record);
    recent.length = Math.min(recent.length, 50);
    log.info(
      {
        event: 'session.outcome',
        session: record.id,
        agent: record.agent,
        outcome: record.outcome,
        exitCode: record.exitCode,
        phase: outcome.phase,
        durationMs: record.durationMs,
        timings: outcome.timings,
        message: record.message,
      },
      `session ${record.outcome}`,
    );
    bus.publish({ type: 'outcome', sessionId: record.id, record });
    if (++finishedSincePrune >= 20) {
      finishedSincePrune = 0;
      store.prune(config.historyLimit);
    }
  };

  const announcePhase = (sessionId: string, phase: SessionPhase): void => {
    const at = new Date().toISOString();
    store.update(sessionId, (r) => ({
      ...r,
      phase,
      phases: [...r.phases, { phase, at }],
      startedAt: r.startedAt ?? at,
    }));
    log.info({ event: 'session.phase', session: sessionId, phase }, `session ${phase}`);
    bus.publish({ type: 'phase', sessionId, phase });
  };

  const session = sessionMachine.provide({
    actors: {
      resolveCredentials: fromPromise(({ input }) => resolveCredentials(input.agent, env)),
      runner: runnerMachineFor({ instanceId, stopGraceMs: config.stopGraceMs }).provide({
        actors: runnerActors(podman, {
          logFile: (id) => store.logPath(id),
          logMaxBytes: config.logMaxBytes,
          line: (sessionId, line) => bus.publish({ type: 'output', sessionId, line }),
        }),
        actions: {
          announcePhase: ({ context }, { phase }) =>
            announcePhase(context.session.invocation.sessionId, phase),
          announceContainer: ({ context }, { container }) =>
            store.update(context.session.invocation.sessionId, (r) => ({ ...r, container })),
          warn: ({ context }, { message, error }) =>
            log.warn(
              {
                event: 'session.teardown_warning',
                session: context.session.invocation.sessionId,
                err: error,
              },
              message,
            ),
        },
      }),
      reportOutcome: fromPromise(async ({ input }) => finish(input.request, input.outcome)),
    },
    actions: {
      announcePhase: ({ context }, { phase }) => announcePhase(context.request.sessionId, phase),
      announceAdoption: ({ context }) =>
        log.info(
          {
            event: 'session.adopted',
            session: context.request.sessionId,
            container: context.adopted?.container,
          },
          'adopted a session',
        ),
    },
  });

  let handle: DaemonHandle | undefined;
  const server = new SocketServer({
    path: config.socket,
    maxLineBytes: MAX_LINE_BYTES,
    maxConnections: 256,
    partialLineTimeoutMs: 30_000,
    maxPendingWriteBytes: 8 * 1024 * 1024,
    onLine: (line, connection) => {
      if (handle) dispatch(line, connection, handle);
    },
    onLineTooLong: (connection) =>
      connection.send({
        v: 1,
        type: 'error',
        code: 'line_too_long',
        message: `request line longer than ${MAX_LINE_BYTES} bytes; requests must be one JSON object per line`,
      }),
    onRejectedConnection: () => log.warn({ event: 'socket.busy' }, 'refused a connection: too many open'),
  });

  const machine = daemonMachine.provide({
    actors: {
      session,
      reconcile: fromPromise(async ({ signal }) => {
        const { summary, containers } = await reconcile(podman, instanceId, log, signal);
        // A container without a readable record still belongs to a session: rebuild it from the labels.
        const orphans = recordsFromLabels(containers, knownIds);
        for (const record of orphans) {
          store.put(record);
          log.warn(
            { event: 'daemon.record_rebuilt', session: record.id, container: record.container },
            `session ${record.id} had no readable record; rebuilt it from the labels of container ${record.container}`,
          );
        }
        const { remove, ...recovery } = planRecovery(
          [...unfinished, ...orphans],
          containers,
          settings.agents,
        );
        // Running containers that nobody will supervise (their agent is gone) are stopped now.
        await podman.removeContainers(remove, signal);
        if (unfinished.length + orphans.length > 0) {
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
        return { summary, recovery };
      }),
      openSocket: fromPromise(async (): Promise<OpenResult> => {
        await server.listen();
        try {
          store.flush();
          return {};
        } catch (error) {
          return { stateDir: stateDirProblem(error) };
        }
      }),
      watchStateDir: fromCallback(({ sendBack }) => {
        const timer = setInterval(() => {
          try {
            store.flush();
            sendBack({ type: 'stateDir.writable' });
          } catch {
            // Still no room: look again later.
          }
        }, STATE_DIR_RETRY_MS);
        return () => clearInterval(timer);
      }),
    },
    actions: {
      recordAccepted: raise((_, { session, requestId }) => {
        const { request } = session;
        const record: SessionRecord = {
          version: 1,
          id: request.sessionId,
          agent: request.agent,
          repo: request.repoUrl,
          acceptedAt: request.acceptedAt,
          phase: 'queued',
          phases: [{ phase: 'queued', at: request.acceptedAt }],
          ...(request.workUnit === undefined ? {} : { workUnit: request.workUnit }),
          ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }),
        };
        const answer = requestId === undefined ? { session } : { session, requestId };
        try {
          store.accept(record);
        } catch (error) {
          const problem = stateDirProblem(error);
          log.warn(
            { event: 'session.unrecorded', session: request.sessionId, code: problem.code, err: error },
            `trigger rejected: ${problem.reason}`,
          );
          return { type: 'trigger.unrecorded' as const, ...answer, ...problem };
        }
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
      }),
      reportSettled: (_, { sessions }) => {
        for (const { request, outcome } of sessions) finish(request, outcome);
      },
    },
  });

  const actor = createActor(machine, {
    input: { agents: settings.agents, maxSessions: config.maxSessions },
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  const reload = createReloader({ started: settings, actor, log, notify });
  send = (event) => actor.send(event);
  handle = {
    actor,
    reload,
    bus,
    store,
    settings,
    instanceId,
    startedAt: Date.now(),
    version: options.version,
    log,
    recent,
    newSessionId: () => randomBytes(8).toString('hex'),
  };

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    log.info(
      { event: 'daemon.signal', signal, count: signals },
      signals === 1
        ? 'shutting down: running sessions finish'
        : 'shutting down now: cancelling running sessions',
    );
    actor.send({ type: 'shutdown' });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // SIGHUP re-reads the configuration (systemd's ExecReload); without a handler it would kill the daemon.
  const onHangup = () => void reload('SIGHUP');
  process.on('SIGHUP', onHangup);

  let previous = '';
  let up = false;
  const done = new Promise<string>((resolve) => {
    actor.subscribe({
      next: (snapshot) => {
        const state = stateName(snapshot.value);
        if (state !== previous) {
          const was = previous;
          previous = state;
          const problem = snapshot.context.stateDir;
          if ((state === 'ready' || state === 'degraded') && !up) {
            up = true;
            log.info(
              {
                event: 'daemon.ready',
                socket: config.socket,
                instanceId,
                pid: process.pid,
                ...(state === 'degraded' ? { degraded: problem?.reason } : {}),
              },
              state === 'degraded'
                ? `agentd is up but degraded, rejecting triggers: ${problem?.reason}`
                : 'agentd is ready',
            );
            notify.ready(readyStatus(actor));
            if (handle) options.onReady?.(handle);
          } else if (state === 'degraded') {
            log.warn(
              { event: 'daemon.degraded', code: problem?.code, reason: problem?.reason },
              `degraded, rejecting triggers: ${problem?.reason}`,
            );
            notify.ready(readyStatus(actor));
          } else if (state === 'ready' && was === 'degraded') {
            log.info(
              { event: 'daemon.state_dir_writable', unwritten: store.unwritten },
              'the state dir takes writes again: accepting triggers',
            );
            notify.ready(readyStatus(actor));
          } else if (state.startsWith('shutdown') && !was.startsWith('shutdown')) {
            // Logged once, whether there is anything to drain or the daemon stops at once.
            const running = Object.keys(snapshot.context.sessions).length;
            notify.stopping(`stopping: ${running} running session(s) to finish`);
            log.info(
              { event: 'daemon.shutdown', running },
              `shutting down: ${running} running session(s) to finish`,
            );
          }
        }
        // `stopped` is final inside `shutdown`; `failed` is final at the top.
        if (snapshot.status === 'done' || snapshot.matches({ shutdown: 'stopped' })) resolve(state);
      },
      error: (error) => {
        log.error({ event: 'daemon.crashed', err: error }, 'the daemon machine failed');
        resolve('failed');
      },
    });
  });
  actor.start();
  const final = await done;
  actor.stop();
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  process.off('SIGHUP', onHangup);
  await server.close();
  await notify.flush();
  if (final !== 'shutdown.stopped') {
    // Reported by the caller like any other start failure: a log line and a plain message.
    throw new AgentdError(
      'START_FAILED',
      `could not start: ${actor.getSnapshot().context.failure ?? 'unknown reason'}`,
      { operation: 'start daemon' },
    );
  }
  log.info({ event: 'daemon.stopped' }, 'agentd stopped');
  return 0;
}

/** How often a degraded daemon looks whether its state dir takes writes again. */
const STATE_DIR_RETRY_MS = 1000;

function stateDirProblem(error: unknown): StateDirProblem {
  if (error instanceof StateDirError) {
    return { code: error.full ? 'state_dir_full' : 'state_dir_unwritable', reason: error.message };
  }
  return { code: 'state_dir_unwritable', reason: `state dir not writable: ${errorMessage(error)}` };
}
