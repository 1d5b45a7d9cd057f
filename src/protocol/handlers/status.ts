import { sessionPhaseOf } from '../../machines/session.machine.js';
import { type Handler, reply, stateName } from '../context.js';

export const status: Handler<'status'> = (request, connection, daemon) => {
  const snapshot = daemon.actor.getSnapshot();
  const now = Date.now();
  const running = Object.values(snapshot.context.sessions).map((ref) => {
    const session = ref.getSnapshot().context;
    return {
      id: session.request.sessionId,
      agent: session.request.agent,
      repo: session.request.repoUrl,
      workUnit: session.request.workUnit,
      phase: sessionPhaseOf(ref.getSnapshot()),
      startedAt: session.startedAt,
      elapsedMs: now - Date.parse(session.startedAt),
    };
  });
  const queued = snapshot.context.queue.map((entry, index) => ({
    id: entry.request.sessionId,
    agent: entry.request.agent,
    repo: entry.request.repoUrl,
    workUnit: entry.request.workUnit,
    position: index + 1,
    acceptedAt: entry.request.acceptedAt,
    waitingMs: now - Date.parse(entry.request.acceptedAt),
  }));
  reply(connection, request, {
    type: 'status',
    state: stateName(snapshot.value),
    pid: process.pid,
    version: daemon.version,
    instanceId: daemon.instanceId,
    socket: daemon.settings.daemon.socket,
    uptimeMs: now - daemon.startedAt,
    maxSessions: snapshot.context.maxSessions,
    running,
    queued,
    recent: daemon.recent.slice(0, 10),
  });
};
