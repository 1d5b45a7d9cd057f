import { formatDuration } from '../duration.js';
import type { StatusReply } from '../protocol/replies.js';
import { type ClientIo, connectDaemon, failOnReply, failWith } from './client-io.js';
import { EXIT, exitCodeForStatus } from './exit-codes.js';
import { outcomeText } from './format.js';
import { jsonText, shownOn } from './terminal.js';

export interface StatusOptions {
  socket?: string | undefined;
  json: boolean;
}

/** `agentd status`, free of clipanion: StatusCommand and the quick path (quick.ts) both run it. */
export async function runStatus(options: StatusOptions, io: ClientIo): Promise<number> {
  const client = await connectDaemon(options.socket, io, options.json, (path) =>
    startingDaemon(io, options.json, path),
  );
  if (typeof client === 'number') return client;
  try {
    const reply = await client.request({ type: 'status' });
    // A lost connection (4), a busy or stopping daemon (75): the same codes as every client command.
    // One without its fields is a bad_reply already (the client checks each reply against its table).
    if (reply?.type !== 'status') return failOnReply(io, options.json, reply);
    const { type: _type, v: _v, ...status } = reply;
    // 0 only for a ready daemon: a degraded, starting, stopping or failed one exits with its own code,
    // and prints the same status (the whole object with --json) as a ready one.
    if (options.json) io.stdout.write(`${jsonText(status)}\n`);
    else io.stdout.write(shownOn(io.stdout, render(reply)));
    return exitCodeForStatus(reply);
  } finally {
    client.close();
  }
}

/**
 * A daemon that holds no socket yet because it is starting (it reconciles Podman first): not ready (11),
 * rather than "no daemon answers" (69). Undefined when none is starting there. `then` says what the
 * operator can do meanwhile (after "agentd (pid N) is starting and has not opened its socket PATH yet").
 */
export async function startingDaemon(
  io: ClientIo,
  json: boolean,
  path: string,
  then: (pid: number) => string = () =>
    ': it reconciles Podman first (minutes after a crash that left many containers and secrets); try again in a moment',
): Promise<number | undefined> {
  // Loaded only when the socket is not there: a plain status against a running daemon never needs it.
  const { startingDaemonPid } = await import('../adapters/starting-marker.js');
  const pid = startingDaemonPid(path);
  if (pid === undefined) return undefined;
  return failWith(
    io,
    json,
    {
      error: 'starting',
      message: `agentd (pid ${pid}) is starting and has not opened its socket ${path} yet${then(pid)}`,
      pid,
    },
    EXIT.notReady,
  );
}

/**
 * The finished sessions whose record waits to be sealed: their output and logs are still held in the
 * state dir (most often because the records' filesystem is full), which nothing else in `status` shows.
 */
export function unsealedLine(u: NonNullable<StatusReply['unsealed']>): string {
  const records =
    u.count === 1
      ? '1 finished session waits for its record to be sealed'
      : `${u.count} finished sessions wait for their records to be sealed`;
  const ago = u.waitingMs === undefined ? '' : `, ended ${formatDuration(u.waitingMs)} ago`;
  return `unsealed: ${records} (the oldest: ${u.oldest}${ago}); output and logs are held in the state dir until the records' filesystem has room (the log's session.record_unsealed says why; agentd doctor checks records size)`;
}

function render(s: StatusReply): string {
  const lines = [
    `agentd ${s.version}: ${s.state}, pid ${s.pid}, up ${formatDuration(s.uptimeMs)}, socket ${s.socket}`,
    ...(s.degraded === undefined
      ? []
      : [
          // Only the state dir's makes the daemon reject triggers: a log that cannot be written does not.
          s.state === 'degraded'
            ? `degraded: ${s.degraded}; triggers are rejected and queued sessions wait until the state dir takes writes again (looked at every second)`
            : `degraded: ${s.degraded}; sessions still run, and this clears within a second of stderr taking writes again`,
        ]),
    ...(s.failed === undefined ? [] : [s.failed]),
    ...(s.failedHosts ?? []).map((h) => `host ${h.name} failed: ${h.problem}`),
    ...(s.noHost === undefined ? [] : [s.noHost]),
    ...(s.unsealed === undefined ? [] : [unsealedLine(s.unsealed)]),
    `running ${s.running.length}/${s.maxSessions}, queued ${s.queued.length}`,
  ];
  if (s.running.length > 0) {
    lines.push('', 'RUNNING');
    for (const r of s.running)
      lines.push(
        `  ${r.id}  ${r.agent}  ${r.phase}  ${formatDuration(r.elapsedMs)}  ${r.host ?? '-'}  ${r.repo}`,
      );
  }
  if (s.queued.length > 0) {
    lines.push('', 'QUEUED');
    for (const q of s.queued)
      lines.push(`  ${q.id}  ${q.agent}  #${q.position}  waiting ${formatDuration(q.waitingMs)}  ${q.repo}`);
  }
  if (s.schedules !== undefined && s.schedules.length > 0) {
    lines.push('', 'SCHEDULES');
    for (const sc of s.schedules) {
      const zone = sc.timezone === undefined ? '' : ` ${sc.timezone}`;
      const when = sc.failed === undefined ? `next ${sc.next ?? 'never'}` : 'FAILED';
      lines.push(`  ${sc.agent}  "${sc.cron}"${zone}  ${when}  overlap ${sc.overlap}`);
      if (sc.failed !== undefined) lines.push(`    ${sc.failed}`);
    }
  }
  if (s.recent.length > 0) {
    lines.push('', 'RECENT');
    for (const r of s.recent) {
      const code = r.exitCode === undefined ? '' : ` (exit ${r.exitCode})`;
      const took = r.durationMs === undefined ? '' : `  ${formatDuration(r.durationMs)}`;
      lines.push(
        `  ${r.id}  ${r.agent}  ${outcomeText(r)}${code}${took}  ${r.finishedAt ?? ''}  ${r.host ?? '-'}  ${r.repo}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
