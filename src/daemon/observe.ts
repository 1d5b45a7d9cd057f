import type { Logger } from 'pino';
import type { SessionJournal } from './journal.js';
import type { DaemonGauges } from './metrics.js';
import type { MetricsRecorder } from './metrics-recorder.js';
import type { Notifier } from './notifier.js';
import { type DaemonActor, scheduleViews } from './port.js';

/** A firing's trigger has the request id `schedule:<agent>:<firing>`. */
function firingOf(requestId: string | undefined): { agent: string; firing: string } | undefined {
  const match = /^schedule:([^:]+):(.+)$/.exec(requestId ?? '');
  return match ? { agent: match[1] as string, firing: match[2] as string } : undefined;
}

/**
 * What the daemon tells about itself without being asked: the machine's answers (to the metrics, and
 * to the log for the triggers that schedule firings made) and the session bus (to the metrics, and
 * outcomes to the notifier).
 */
export function observeDaemon(options: {
  actor: DaemonActor;
  journal: SessionJournal;
  metrics: MetricsRecorder;
  notifier: Notifier;
  log: Logger;
}): void {
  const { actor, journal, metrics, notifier, log } = options;
  // Two followers, not one: the bus keeps a follower's throw from the others, so a fault in the metrics
  // never costs an operator the notification of an outcome.
  journal.followAll((event) => {
    if (event.type === 'outcome') notifier.notify(event.record);
  });
  journal.followAll((event) => metrics.session(event));
  actor.on('trigger.accepted', (answer) => {
    // A repeated idempotency key is answered with its first session: nothing new was accepted.
    if (answer.existing) return;
    metrics.acceptedSession(answer.sessionId);
    const fired = firingOf(answer.requestId);
    if (fired === undefined) return;
    metrics.firing(fired.agent, 'triggered');
    log.info(
      { event: 'schedule.fired', ...fired, session: answer.sessionId, queued: answer.queued },
      `schedule of ${fired.agent} fired (${fired.firing}): session ${answer.sessionId} ${answer.queued ? 'queued' : 'started'}`,
    );
  });
  actor.on('trigger.rejected', (answer) => {
    metrics.rejectedTrigger(answer.code);
    const fired = firingOf(answer.requestId);
    if (fired === undefined) return;
    metrics.firing(fired.agent, 'rejected');
    log.warn(
      {
        event: 'schedule.rejected',
        ...fired,
        session: answer.sessionId,
        code: answer.code,
        reason: answer.reason,
      },
      `schedule of ${fired.agent} fired (${fired.firing}) but its session was rejected: ${answer.reason}`,
    );
  });
}

/** The metrics' gauges, read from the daemon machine. */
export function gaugesOf(actor: DaemonActor | undefined): DaemonGauges {
  if (!actor) return { ready: false, running: 0, queued: 0, maxSessions: 0, schedules: [] };
  const snapshot = actor.getSnapshot();
  const { context } = snapshot;
  return {
    ready: snapshot.matches('ready'),
    running: Object.keys(context.sessions).length,
    queued: context.queue.length,
    maxSessions: context.maxSessions,
    schedules: scheduleViews(context.schedules, context.restarts),
    failedHosts: context.hosts
      .filter((ref) => ref.getSnapshot().status === 'error')
      .map((ref) => ref.getSnapshot().context.name),
  };
}

/** The agent of a queued or running session, from the daemon machine. */
export function agentOf(actor: DaemonActor | undefined, sessionId: string): string | undefined {
  if (!actor) return undefined;
  const { context } = actor.getSnapshot();
  return (
    context.sessions[sessionId]?.getSnapshot().context.request.agent ??
    context.queue.find((s) => s.request.sessionId === sessionId)?.request.agent
  );
}
