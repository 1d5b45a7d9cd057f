/**
 * What `agentd stop` does once it has asked the daemon to shut down: it waits until the daemon's process
 * is gone, saying what the daemon still waits for (its running sessions), or until --timeout. Free of
 * sockets and clocks: the command gives it its ports, the tests give it fakes.
 */

/** What `stop` reads of a status reply. */
export interface StopView {
  state: string;
  pid: number;
  running: readonly { id: string; agent: string }[];
}

/**
 * One look at the daemon: its status, nothing on the socket any more, an answer that is no status, or a
 * daemon's `busy` (its connections all taken), which is not taken for a daemon that does not stop.
 */
export type StopProbe =
  | { kind: 'status'; status: StopView }
  | { kind: 'gone' }
  | { kind: 'other' }
  | { kind: 'busy' };

export interface StopPorts {
  /** The daemon's status, asked on a new connection, within `timeoutMs`. */
  probe(timeoutMs: number): Promise<StopProbe>;
  /** Whether the process is still there (a zombie is not). */
  alive(pid: number): boolean;
  sleep(ms: number): Promise<void>;
  /** A steady clock, in ms. */
  now(): number;
  /** A line of progress (not printed with --quiet or --json). */
  say(line: string): void;
}

/**
 * Why the wait gave up before --timeout: for STOP_STUCK_MS on end nothing went toward the daemon's exit.
 * `ignored`: it answers as itself (its pid) but is not shutting down (`state`); `other`: what answers on the
 * socket is not its status (another program, or a daemon that does not answer) while its process lives;
 * `exiting`: its socket is gone (or another daemon's) and its process has not exited.
 */
export type StopStuck = { why: 'ignored'; state: string } | { why: 'other' } | { why: 'exiting' };

export type StopResult =
  | { kind: 'stopped' }
  /** --timeout ran out: the daemon's process is still there, its socket `open` or not, `running` sessions. */
  | { kind: 'timeout'; open: boolean; running: number }
  /** Nothing went toward the exit for STOP_STUCK_MS: waiting longer would be waiting for ever. */
  | ({ kind: 'stuck'; open: boolean; running: number } & StopStuck);

/** How often the daemon is looked at while it stops. */
export const STOP_POLL_MS = 250;
/** How long one look waits for the status: a daemon that hangs must not hold `stop` past its --timeout. */
export const STOP_PROBE_MS = 5000;

/**
 * How long the wait goes on while nothing goes toward the daemon's exit (see StopStuck): a draining daemon is
 * waited for as long as its sessions run, but one that ignored the shutdown, something else answering on
 * its socket, or a process that outlives its socket by more than its stop takes (some 20 s: its last sweep,
 * records and notifications, then at most EXIT_HELD_MS) held `stop` without --timeout for ever.
 */
export const STOP_STUCK_MS = 60_000;

/** Whether a daemon in `state` is on its way out: draining, or failed (it exits by itself). */
function stopping(state: string): boolean {
  return state === 'failed' || state === 'shutdown' || state.startsWith('shutdown.');
}

/** The sessions a draining daemon waits for, in words. */
export function runningText(running: StopView['running']): string {
  if (running.length === 0) return 'no session runs';
  const shown = running.slice(0, 5).map((s) => `${s.id} (${s.agent})`);
  const more = running.length > shown.length ? ` and ${running.length - shown.length} more` : '';
  return `${running.length} running session(s) to finish: ${shown.join(', ')}${more}`;
}

/**
 * Waits until the daemon of `pid` has exited: its socket no longer answers as it (nothing there, or a
 * new daemon with another pid) and its process is gone. The process, not the socket alone: the daemon
 * closes its socket first, then records, notifies and releases its pid file. `deadline` (steady clock)
 * ends the wait with `timeout`; undefined waits for as long as it takes, as the daemon's drain does.
 */
export async function waitForStop(
  first: StopView,
  deadline: number | undefined,
  ports: StopPorts,
): Promise<StopResult> {
  const pid = first.pid;
  let said = first.running.map((s) => s.id).join(',');
  let open = true;
  let running = first.running.length;
  /** Since when every look found nothing going toward the exit (StopStuck), on the steady clock. */
  let stuckSince: number | undefined;
  for (;;) {
    const left = deadline === undefined ? STOP_PROBE_MS : Math.max(1, deadline - ports.now());
    const probe = await ports.probe(Math.min(STOP_PROBE_MS, left));
    let stuck: StopStuck | undefined;
    if (probe.kind === 'busy') {
      // An agentd daemon answered (its `busy`: its connections taken by other clients), too busy to say how
      // it goes: not taken for one that does not stop, and the count starts again.
      if (!ports.alive(pid)) return { kind: 'stopped' };
    } else if (probe.kind === 'status' && probe.status.pid === pid) {
      const now = probe.status.running.map((s) => s.id).join(',');
      running = probe.status.running.length;
      if (now !== said) {
        said = now;
        ports.say(`waiting: ${runningText(probe.status.running)}`);
      }
      if (!stopping(probe.status.state)) stuck = { why: 'ignored', state: probe.status.state };
    } else if (probe.kind !== 'other') {
      // Nothing answers as this daemon any more: its process says whether it is gone.
      if (!ports.alive(pid)) return { kind: 'stopped' };
      if (open) {
        open = false;
        running = 0;
        ports.say(`the daemon closed its socket; waiting for its process (pid ${pid}) to exit`);
      }
      stuck = { why: 'exiting' };
    } else if (!ports.alive(pid)) {
      return { kind: 'stopped' };
    } else {
      stuck = { why: 'other' };
    }
    if (stuck === undefined) stuckSince = undefined;
    else {
      stuckSince ??= ports.now();
      if (ports.now() - stuckSince >= STOP_STUCK_MS) return { kind: 'stuck', open, running, ...stuck };
    }
    if (deadline !== undefined && ports.now() >= deadline) return { kind: 'timeout', open, running };
    const wait = deadline === undefined ? STOP_POLL_MS : Math.min(STOP_POLL_MS, deadline - ports.now());
    await ports.sleep(Math.max(1, wait));
  }
}
