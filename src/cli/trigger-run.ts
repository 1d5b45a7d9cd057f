import type { RequestBody } from '../protocol/messages.js';
import type { TriggerFields } from '../sessions/check-trigger.js';
import type { WorkPayload } from '../sessions/work.js';
import {
  ANSWER_TIMEOUT_MS,
  type Reply,
  refusesHeartbeat,
  SILENCE_MS,
  silenceMessage,
  steadyMs,
} from './client.js';
import { type ClientIo, connectDaemon, exitCodeForReply, fail, failWith, printJson } from './client-io.js';
import { EXIT, type ExitCodeMode, exitCodeForRecord, exitCodeForRefusal } from './exit-codes.js';
import { outcomeJson, outcomeLine } from './format.js';
import type { OutputReply } from './session-follow.js';
import { outputFilter, quietOnBrokenPipe, shownOn } from './terminal.js';

/** The trigger's fields as the protocol has them, and how the CLI shows the session. */
export type TriggerOptions = { [K in keyof TriggerFields]: TriggerFields[K] | undefined } & {
  agent: string;
  socket?: string | undefined;
  quiet: boolean;
  json: boolean;
  detach: boolean;
  /** The request and input files, read already (their content goes to the daemon). */
  work?: WorkPayload;
  exitCode: ExitCodeMode;
  /** A `blocked` or `nothing_ready` session exits as failed. */
  strict?: boolean;
  /** Write control characters to a terminal as they are. */
  raw: boolean;
  /** How long a followed daemon may send nothing, not even a heartbeat, before it is taken for hung. */
  silenceMs?: number;
};

/**
 * `agentd trigger`, free of clipanion: TriggerCommand and the quick path (quick.ts) both run it. The
 * options are valid: clipanion's validators (or the quick path's fallback to clipanion) saw to it.
 */
export async function runTrigger(options: TriggerOptions, io: ClientIo): Promise<number> {
  const client = await connectDaemon(options.socket, io, options.json);
  if (typeof client === 'number') return client;
  const { stdout } = io;
  const started = steadyMs();
  const show = outputFilter(stdout, options.raw);
  const showErr = outputFilter(io.stderr, options.raw);
  // A reader that went away (`agentd trigger x | head`) stops the printing, not the following: the
  // exit code still says how the session ended.
  const readerGone = quietOnBrokenPipe(stdout, () => {});
  const print = (text: string) => {
    if (!readerGone()) stdout.write(text);
  };
  const verbose = !options.quiet && !options.json;
  /** The daemon said it closes this connection: the client stopped reading for too long. */
  let closedForStalling = false;
  /** The last line of output shown: a follow that resumes goes on after it. */
  let lastSeq = 0;
  const showOutput = (reply: OutputReply) => {
    if (typeof reply.seq === 'number') lastSeq = Math.max(lastSeq, reply.seq);
    else if (reply.skipped) lastSeq = Math.max(lastSeq, reply.skipped.toSeq);
    if (!verbose) return;
    // The command's stderr goes to stderr, as `podman logs` does it.
    if (reply.stream === 'stderr') io.stderr.write(`${showErr(reply.line)}\n`);
    else print(`${show(reply.line)}\n`);
  };
  let sessionId: string | undefined;
  let interrupts = 0;
  /** The exit code to leave with at once (Ctrl-C), when set. */
  let leftWith: number | undefined;
  let leave: ((code: number) => void) | undefined;
  const left = new Promise<number>((resolve) => {
    leave = (code) => {
      leftWith ??= code;
      resolve(code);
      // Wakes the read under way (and a resumed follow's, through `until`).
      client.close();
    };
  });
  const onInterrupt = () => {
    interrupts++;
    if (interrupts === 1) {
      if (sessionId) cancel(sessionId);
      // No id yet: the cancel goes out as soon as "accepted" does; a daemon slow to answer is left with a
      // second Ctrl-C.
      else
        io.stderr.write(
          'agentd: the session is cancelled as soon as the daemon accepts the trigger; press Ctrl-C again to leave without waiting\n',
        );
      return;
    }
    if (!sessionId) {
      // Nothing to cancel yet, and a daemon that is slow to answer must not hold the operator.
      io.stderr.write(
        `agentd: left before the daemon answered; the trigger may still have been accepted: look for its session with \`agentd status\` or \`agentd history --agent ${options.agent}\` (and stop it with \`agentd cancel ID\`)\n`,
      );
    }
    leave?.(EXIT.interrupted);
  };
  const cancel = (id: string) => {
    io.stderr.write(`agentd: cancelling session ${id}; press Ctrl-C again to leave without waiting\n`);
    client.send({ type: 'cancel', sessionId: id });
  };
  const finished = (record: Extract<Reply, { type: 'outcome' }>['record']): number => {
    const code = exitCodeForRecord(record, options.exitCode, options.strict);
    if (options.json)
      printJson(io, { ...outcomeJson(record, code), elapsedMs: Math.round(steadyMs() - started) });
    // agentd's own line, made visible on a terminal even with --raw (which is for the output): its
    // message can hold a git server's `remote:` lines.
    else print(`${shownOn(stdout, outcomeLine(record))}\n`);
    return code;
  };
  process.on('SIGINT', onInterrupt);
  let closeClient = true;
  let answerTimer: NodeJS.Timeout | undefined;
  /** No `accepted` or `rejected` came within ANSWER_TIMEOUT_MS. */
  let unanswered = false;
  const silenceMs = options.silenceMs ?? SILENCE_MS;
  const triggerRequest = (heartbeat: boolean): RequestBody => ({
    type: 'trigger',
    agent: options.agent,
    follow: !options.detach,
    // Nothing of the output is printed (--quiet, --json): the daemon need not send it.
    ...(!verbose && !options.detach ? { output: false } : {}),
    // A follower hears from the daemon at least every HEARTBEAT_MS, so a hung one is told from a quiet session.
    ...(heartbeat ? { heartbeat: true } : {}),
    ...(options.repo === undefined ? {} : { repo: options.repo }),
    ...(options.workUnit === undefined ? {} : { workUnit: options.workUnit }),
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.work?.request === undefined ? {} : { request: options.work.request.toString('base64') }),
    ...(options.work === undefined || options.work.inputs.length === 0
      ? {}
      : {
          inputs: options.work.inputs.map((input) => ({
            name: input.name,
            data: input.bytes.toString('base64'),
          })),
        }),
    ...(options.key === undefined ? {} : { key: options.key }),
  });
  try {
    client.send(triggerRequest(!options.detach));
    if (!options.detach) {
      // While stdout (or stderr) is full, the daemon is not read: it skips lines for this client, and one
      // that reads nothing for 30 s it disconnects (exit 8), instead of this client holding the output.
      client.paceBy([stdout, io.stderr]);
      client.expectWithin(silenceMs, () =>
        silenceMessage(
          silenceMs,
          sessionId === undefined
            ? 'the trigger may have been accepted: see `agentd status` once the daemon answers'
            : `session ${sessionId} may still be running: \`agentd wait ${sessionId}\` once the daemon answers`,
        ),
      );
    }
    // A daemon answers a trigger at once (accepted or rejected); something on the socket that takes the
    // connection and says nothing of the kind must not hold the script for ever.
    answerTimer = setTimeout(() => {
      unanswered = true;
      client.close();
    }, ANSWER_TIMEOUT_MS);
    for (;;) {
      // One read at a time, woken by closing the connection (Ctrl-C, no answer): not a race of every read
      // against those, each of which left a reaction (and the reply it carried) until the end.
      const reply = await client.next();
      if (leftWith !== undefined) return leftWith;
      if (unanswered) {
        return failWith(
          io,
          options.json,
          {
            error: 'no_answer',
            message: `the daemon took the connection but did not accept or reject the trigger within ${ANSWER_TIMEOUT_MS / 1000} s; look at its log (journalctl -u agentd)`,
          },
          EXIT.infrastructure,
        );
      }
      if (reply === undefined) {
        if (!sessionId) {
          // Nothing was accepted (or nobody heard that it was): one JSON object with --json, as for any failure.
          return failWith(
            io,
            options.json,
            { error: 'connection_lost', message: 'lost the connection to the daemon' },
            EXIT.infrastructure,
          );
        }
        if (closedForStalling) {
          return failWith(
            io,
            options.json,
            {
              error: 'connection_lost',
              sessionId,
              message: `connection lost; the session goes on (this client stopped reading; follow session ${sessionId} with \`agentd logs ${sessionId} --follow\`)`,
            },
            EXIT.connectionLost,
          );
        }
        // The session goes on without us: wait for the daemon to come back and for the outcome.
        client.close();
        closeClient = false;
        return await resume(sessionId);
      }
      if (sessionId === undefined && refusesHeartbeat(reply)) {
        // A daemon older than heartbeats: the refused trigger changed nothing; it goes again without them.
        client.expectWithin(undefined);
        client.send(triggerRequest(false));
        continue;
      }
      switch (reply.type) {
        case 'accepted': {
          clearTimeout(answerTimer);
          sessionId = reply.sessionId;
          if (interrupts === 1) cancel(sessionId);
          if (options.detach) {
            if (options.json) {
              printJson(io, {
                sessionId,
                queued: reply.queued,
                position: reply.position,
                existing: reply.existing === true,
              });
            } else {
              print(`${sessionId}\n`);
            }
            return EXIT.succeeded;
          }
          if (verbose) {
            const queued = reply.queued ? ` (queued at position ${reply.position})` : '';
            const existing = reply.existing ? ` already for key ${options.key}` : '';
            print(`session ${sessionId}${existing} accepted${queued}\n`);
          }
          break;
        }
        case 'rejected': {
          const code = exitCodeForRefusal(reply.retryable);
          if (options.json) {
            printJson(io, {
              outcome: 'rejected',
              code,
              rejection: reply.code,
              retryable: reply.retryable === true,
              reason: reply.reason,
            });
          }
          return fail(io, `trigger rejected: ${reply.reason}`, code);
        }
        case 'phase':
          if (verbose) print(`==> ${reply.phase}\n`);
          break;
        case 'output':
          showOutput(reply);
          break;
        case 'closing':
          closedForStalling = true;
          break;
        case 'cancelling':
        case 'heartbeat':
          break;
        case 'outcome':
          return finished(reply.record);
        case 'error':
          return failWith(
            io,
            options.json,
            { error: reply.code, message: reply.message },
            exitCodeForReply(reply),
          );
        default:
          break;
      }
    }
  } finally {
    clearTimeout(answerTimer);
    process.off('SIGINT', onInterrupt);
    if (closeClient) client.close();
  }

  async function resume(id: string): Promise<number> {
    io.stderr.write(
      `agentd: lost the connection to the daemon; session ${id} goes on; waiting for the daemon to come back\n`,
    );
    // Loaded only here: a trigger whose connection holds (nearly all) does not load it and session-wait.
    const { followSession } = await import('./session-follow.js');
    const result = await followSession({
      socket: options.socket,
      sessionId: id,
      afterSeq: lastSeq,
      onOutput: showOutput,
      onLost: () => io.stderr.write('agentd: lost the connection to the daemon again; waiting for it\n'),
      onResumed: (after) => {
        if (verbose) io.stderr.write(`agentd: reconnected; the output goes on after line ${after}\n`);
      },
      until: left,
      pace: [stdout, io.stderr],
      silenceMs,
    });
    switch (result.kind) {
      case 'stopped':
        return await left;
      case 'outcome':
        return finished(result.record);
      case 'error':
        return failWith(
          io,
          options.json,
          { error: result.reply.code, message: result.reply.message },
          exitCodeForReply(result.reply),
        );
      case 'stalled':
        return failWith(
          io,
          options.json,
          {
            error: 'connection_lost',
            sessionId: id,
            message: `connection lost; the session goes on (this client stopped reading; follow session ${id} with \`agentd logs ${id} --follow\`)`,
          },
          EXIT.connectionLost,
        );
      case 'lost':
        return failWith(
          io,
          options.json,
          {
            error: 'connection_lost',
            sessionId: id,
            message: `no daemon came back (${result.reason}); session ${id} may still run: \`agentd wait ${id}\` once the daemon is up`,
          },
          EXIT.retry,
        );
    }
  }
}
