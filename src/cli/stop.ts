import { Command, Option } from 'clipanion';
import { isAlive } from '../adapters/pid-file.js';
import { formatDuration, parseDuration } from '../duration.js';
import {
  ANSWER_TIMEOUT_MS,
  type ClientSideError,
  DaemonClient,
  DaemonUnreachable,
  isClientSideError,
  type Reply,
} from './client.js';
import { ClientCommand } from './client-command.js';
import { connectDaemon, failOnReply, failWith, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { resolveSocketPath } from './socket-path.js';
import { startingDaemon } from './status-run.js';
import {
  runningText,
  STOP_STUCK_MS,
  type StopPorts,
  type StopProbe,
  type StopStuck,
  type StopView,
  waitForStop,
} from './stop-wait.js';
import { shownOn } from './terminal.js';
import { isDuration } from './validators.js';

export class StopCommand extends ClientCommand {
  static override paths = [['stop']];
  static override usage = Command.Usage({
    description: 'Shut the daemon down (as SIGTERM does) and wait until it has exited',
    details: `
      Asks the daemon over its socket to shut down, as a first SIGTERM does: queued sessions are dropped
      (\`cancelled\`), running ones finish, new triggers are refused. Then waits until the daemon's process has
      exited (its socket and pid file removed), saying which sessions it still waits for.
      The daemon decides in one step, whatever shutdown came before: to one already shutting down \`stop\`
      changes nothing (it never cancels a session), and waits for it. --force is a second SIGTERM: the running
      sessions are cancelled (stopped and torn down), whether the daemon was draining or not, and it exits
      once they are.
      Exits 0 once the daemon has exited; 7 when --timeout ran out first (the daemon goes on shutting down),
      or when for 60 s nothing went toward the daemon's exit (it did not take the shutdown, something else
      answers on its socket, or its process outlives its socket): the message says what to do;
      11 a daemon still starting (no socket yet: \`kill PID\` stops it once its reconciliation ends);
      69 no daemon answers; 75 a daemon too busy to answer; 77 this user may not use its socket.
    `,
    examples: [
      ['Stop the daemon, letting running sessions finish', '$0 stop'],
      ['At most ten minutes, then cancel what still runs', '$0 stop --timeout 10m || $0 stop --force'],
      ['Stop now: cancel the running sessions', '$0 stop --force'],
      ['The daemon on another socket, quietly', '$0 stop --socket /run/agentd/agentd.sock --quiet'],
    ],
  });

  timeout = Option.String('--timeout', {
    description: 'Stop waiting after this long (90s, 10m, 2h): exit 7, the daemon goes on shutting down',
    validator: isDuration,
  });
  force = Option.Boolean('--force', false, {
    description: 'Cancel the running sessions (a second SIGTERM) instead of letting them finish',
  });
  quiet = Option.Boolean('--quiet,-q', false, { description: 'Print nothing but errors' });
  json = Option.Boolean('--json', false, {
    description: 'Print one JSON object at the end: {"stopped":true,"pid":N,...} or the failure',
  });

  async execute(): Promise<number> {
    const io = this.context;
    const started = performance.now();
    const deadline = this.timeout === undefined ? undefined : started + (parseDuration(this.timeout) ?? 0);
    const say = (line: string) => {
      if (!this.quiet && !this.json) io.stdout.write(`${shownOn(io.stdout, line)}\n`);
    };
    const client = await connectDaemon(this.socket, io, this.json, (path) =>
      startingDaemon(io, this.json, path, stopWhileStarting),
    );
    if (typeof client === 'number') return client;
    // A daemon that takes the connection and never answers holds `stop` no longer than its --timeout.
    const answerWithin = () =>
      deadline === undefined
        ? ANSWER_TIMEOUT_MS
        : Math.max(1, Math.min(ANSWER_TIMEOUT_MS, deadline - performance.now()));
    // Whether the answer about to be waited for is cut short by --timeout, not by the client's own bound:
    // its `no_answer` is then --timeout running out, not a daemon that does not answer.
    const cutByTimeout = () => deadline !== undefined && deadline - performance.now() < ANSWER_TIMEOUT_MS;
    // --timeout ran out before the daemon answered a request: said as such (not "the daemon did not answer
    // within 0 s"), with whether it was asked to stop. Asked, it goes on shutting down (7, as when --timeout
    // runs out while stop waits); not asked, it was not reached in time (4, as a daemon that does not answer).
    const ranOut = (asked: StopView | undefined) =>
      asked === undefined
        ? failWith(
            io,
            this.json,
            {
              error: 'no_answer',
              message: `--timeout ${this.timeout} ran out before the daemon answered stop's first request (its status): it was not asked to stop; give a longer --timeout (a daemon that is well answers within milliseconds; one that stays silent is hung: look at its log)`,
            },
            EXIT.infrastructure,
          )
        : failWith(
            io,
            this.json,
            {
              error: 'still_running',
              pid: asked.pid,
              running: asked.running.length,
              message: `--timeout ${this.timeout} ran out before agentd (pid ${asked.pid}) answered the shutdown request, which it may have taken: it then goes on shutting down; see agentd status, or wait with agentd stop`,
            },
            EXIT.stillRunning,
          );
    let first: StopView;
    try {
      const statusCut = cutByTimeout();
      const reply = await client.request({ type: 'status' }, answerWithin());
      if (statusCut && isNoAnswer(reply)) return ranOut(undefined);
      if (reply?.type !== 'status') return failOnReply(io, this.json, reply);
      // Its fields were checked as every reply's is (client.ts); the pid is read further.
      const malformed = pidProblem(reply.pid);
      if (malformed) return failOnReply(io, this.json, malformed);
      // Read for its pid (what the wait watches) and what to say: the daemon decides what the shutdown does.
      first = { state: reply.state, pid: reply.pid, running: reply.running };
      const plan = shutdownPlan(reply.state, this.force);
      if (reply.state !== 'failed') {
        // One event whose mode the daemon applies in one step to the state it is in when it comes: a
        // SIGTERM or another `stop` landing since the status above never turns a graceful stop into the
        // second shutdown, which would cancel the running sessions.
        const mode = this.force ? 'force' : 'graceful';
        const eventCut = cutByTimeout();
        const answer = await client.request(
          { type: 'event', event: { type: 'shutdown', mode } },
          answerWithin(),
        );
        if (eventCut && isNoAnswer(answer)) return ranOut(first);
        // A daemon with nothing to wait for stops at once: it may close the connection first.
        if (refusesShutdownMode(answer)) {
          // A daemon older than the mode (the refused event changed nothing): as many plain shutdowns as
          // the state it said calls for, as before.
          for (let sent = 0; sent < plan.send; sent++) {
            const againCut = cutByTimeout();
            const again = await client.request(
              { type: 'event', event: { type: 'shutdown' } },
              answerWithin(),
            );
            if (again === undefined) break;
            if (againCut && isNoAnswer(again)) return ranOut(first);
            if (again.type !== 'event.result') return failOnReply(io, this.json, again);
          }
        } else if (answer !== undefined && answer.type !== 'event.result') {
          return failOnReply(io, this.json, answer);
        }
      }
      say(plan.say(first));
    } finally {
      client.close();
    }
    const path = resolveSocketPath(this.socket);
    const result = await waitForStop(first, deadline, {
      probe: (timeoutMs) => probeDaemon(path, timeoutMs),
      alive: isAlive,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      now: () => performance.now(),
      say,
    } satisfies StopPorts);
    const waitedMs = Math.round(performance.now() - started);
    if (result.kind === 'stopped') {
      if (this.json) printJson(io, { stopped: true, pid: first.pid, waitedMs, code: EXIT.succeeded });
      else say(`agentd (pid ${first.pid}) stopped after ${formatDuration(waitedMs)}`);
      return EXIT.succeeded;
    }
    if (result.kind === 'stuck') {
      return failWith(
        io,
        this.json,
        {
          error: 'not_stopping',
          pid: first.pid,
          why: result.why,
          ...(result.why === 'ignored' ? { state: result.state } : {}),
          message: stuckMessage(result, first.pid, path),
        },
        EXIT.stillRunning,
      );
    }
    const what = result.open
      ? `it still waits for ${result.running} running session(s)`
      : 'it closed its socket, and its process is still finishing (records, notifications)';
    return failWith(
      io,
      this.json,
      {
        error: 'still_running',
        pid: first.pid,
        running: result.running,
        message: `agentd (pid ${first.pid}) has not stopped after ${this.timeout}: ${what}; it goes on shutting down: wait again with agentd stop${result.open && result.running > 0 ? ', or cancel them with agentd stop --force' : ''}`,
      },
      EXIT.stillRunning,
    );
  }
}

/** The client's own `no_answer`: no reply came within the time the request was given. */
function isNoAnswer(reply: Reply | undefined): boolean {
  return reply?.type === 'error' && isClientSideError(reply) && reply.code === 'no_answer';
}

/**
 * What `stop` says when it gave up waiting (waitForStop's `stuck`): what it waited for, for how long, and
 * what to do, with the pid it read from the daemon's status.
 */
export function stuckMessage(stuck: StopStuck, pid: number, socket: string): string {
  const waited = `${STOP_STUCK_MS / 1000} s`;
  switch (stuck.why) {
    case 'ignored':
      return `agentd (pid ${pid}) on ${socket} still says it is ${stuck.state} ${waited} after it was asked to shut down: it did not take the shutdown (is it an agentd daemon, or another program answering on its socket?); stopped waiting: look at its log, then agentd stop --force, or end it with kill ${pid}`;
    case 'other':
      return `nothing on ${socket} has answered as agentd (pid ${pid}) for ${waited}, and that process is still alive: the daemon does not answer (hung?) or another program took its socket; stopped waiting: look at its log and ps -p ${pid}, then end it with kill ${pid} (kill -9 ${pid} if it stays)`;
    case 'exiting':
      return `agentd (pid ${pid}) closed its socket ${waited} ago, and process ${pid} has not exited (its stop takes some 20 s): it seems hung, or ${pid} is another process here (the daemon ran in another pid namespace); stopped waiting: look at ps -p ${pid}, then end it with kill ${pid} (kill -9 ${pid} if it stays)`;
  }
}

/**
 * A daemon older than the shutdown event's `mode` refuses it (`bad_request`, problem path `event.mode`): the
 * event changed nothing, and `stop` sends plain ones as the state it read calls for (shutdownPlan).
 */
export function refusesShutdownMode(reply: Reply | undefined): boolean {
  return (
    reply?.type === 'error' &&
    reply.code === 'bad_request' &&
    'problems' in reply &&
    reply.problems.some((problem) => problem.path === 'event.mode')
  );
}

/**
 * What `stop` says for the state the daemon was in, and how many plain shutdown events it sends to a daemon
 * older than the event's `mode` (refusesShutdownMode). The daemon machine's rule for plain ones: a first
 * shutdown drains, a second cancels the running sessions (as a second SIGTERM). A daemon already draining
 * is not sent another unless --force; a failed one is exiting by itself.
 */
export function shutdownPlan(state: string, force: boolean): { send: number; say: (s: StopView) => string } {
  const who = (s: StopView) => `agentd (pid ${s.pid})`;
  if (state === 'failed') {
    return { send: 0, say: (s) => `${who(s)} has failed and is exiting; waiting for it` };
  }
  const draining = state === 'shutdown' || state.startsWith('shutdown.');
  if (force) {
    return {
      send: draining ? 1 : 2,
      say: (s) =>
        s.running.length === 0
          ? `asked ${who(s)} to shut down now: no session runs`
          : `asked ${who(s)} to shut down now: cancelling its ${s.running.length} running session(s)`,
    };
  }
  const cut = (s: StopView) => (s.running.length === 0 ? '' : '; agentd stop --force cancels them');
  if (draining) {
    return {
      send: 0,
      say: (s) => `${who(s)} is already shutting down: ${runningText(s.running)}${cut(s)}`,
    };
  }
  return { send: 1, say: (s) => `asked ${who(s)} to shut down: ${runningText(s.running)}${cut(s)}` };
}

/**
 * A status whose pid is no process's (0, -1: a signal to a whole group, or to every process, which would
 * always find one alive), as the `bad_reply` it is: `stop` would wait on it for ever.
 */
export function pidProblem(pid: number): ClientSideError | undefined {
  if (Number.isSafeInteger(pid) && pid > 0) return undefined;
  return {
    type: 'error',
    code: 'bad_reply',
    message: `the daemon's status gave ${JSON.stringify(pid)} as its pid, which is no process id (is something else listening on the socket?)`,
  };
}

/** One look at the daemon on `path`: its status, or `gone` when nothing answers there any more. */
async function probeDaemon(path: string, timeoutMs: number): Promise<StopProbe> {
  let client: DaemonClient;
  try {
    client = await DaemonClient.connect(path, timeoutMs);
  } catch (error) {
    if (error instanceof DaemonUnreachable) return { kind: 'gone' };
    throw error;
  }
  try {
    const reply = await client.request({ type: 'status' }, timeoutMs);
    if (reply?.type === 'error' && reply.code === 'busy') return { kind: 'busy' };
    if (reply?.type !== 'status' || pidProblem(reply.pid)) return { kind: 'other' };
    return { kind: 'status', status: { state: reply.state, pid: reply.pid, running: reply.running } };
  } finally {
    client.close();
  }
}

/** What `stop` says of a daemon still starting (status-run.ts's startingDaemon: exit 11, as `status`). */
const stopWhileStarting = (pid: number) =>
  `, so it cannot be asked to stop over it: try again in a moment, or kill ${pid} (SIGTERM: it stops once its start's reconciliation has ended)`;
