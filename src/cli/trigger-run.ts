import { parseDuration } from '../duration.js';
import type { Reply } from './client.js';
import { type ClientIo, connectDaemon, fail } from './client-io.js';
import { EXIT, exitCodeForOutcome } from './exit-codes.js';
import { type OutcomeRecord, outcomeLine } from './format.js';

export interface TriggerOptions {
  agent: string;
  repo?: string | undefined;
  workUnit?: string | undefined;
  timeout?: string | undefined;
  socket?: string | undefined;
  quiet: boolean;
  json: boolean;
  detach: boolean;
}

/** `agentd trigger`, free of clipanion: TriggerCommand and the quick path (quick.ts) both run it. */
export async function runTrigger(options: TriggerOptions, io: ClientIo): Promise<number> {
  if (options.timeout !== undefined && parseDuration(options.timeout) === undefined) {
    return fail(
      io,
      `--timeout ${JSON.stringify(options.timeout)} is not a duration; use a number with a unit like 90s, 10m or 2h`,
      EXIT.usage,
    );
  }
  if (options.detach && options.json) return fail(io, '--detach and --json cannot be combined', EXIT.usage);
  const client = await connectDaemon(options.socket, io);
  if (typeof client === 'number') return client;
  const { stdout } = io;
  const started = Date.now();
  const verbose = !options.quiet && !options.json;
  let sessionId: string | undefined;
  let interrupts = 0;
  let leave: ((code: number) => void) | undefined;
  const left = new Promise<number>((resolve) => {
    leave = resolve;
  });
  const onInterrupt = () => {
    interrupts++;
    if (interrupts === 1) {
      // Before "accepted" arrives there is no id yet: the cancel goes out as soon as it does.
      if (sessionId) cancel(sessionId);
    } else {
      leave?.(EXIT.interrupted);
    }
  };
  const cancel = (id: string) => {
    io.stderr.write(`agentd: cancelling session ${id}; press Ctrl-C again to leave without waiting\n`);
    client.send({ type: 'cancel', sessionId: id });
  };
  process.on('SIGINT', onInterrupt);
  try {
    client.send({
      type: 'trigger',
      agent: options.agent,
      follow: !options.detach,
      ...(options.repo === undefined ? {} : { repo: options.repo }),
      ...(options.workUnit === undefined ? {} : { workUnit: options.workUnit }),
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    });
    for (;;) {
      const reply = await Promise.race([
        client.next(),
        left.then((code) => ({ type: 'left', code }) as Reply),
      ]);
      if (reply === undefined) {
        return fail(
          io,
          `lost the connection to the daemon${sessionId ? ` while following session ${sessionId}; see \`agentd status\`` : ''}`,
          EXIT.infrastructure,
        );
      }
      switch (reply.type) {
        case 'left':
          return reply.code as number;
        case 'accepted': {
          sessionId = String(reply.sessionId);
          if (interrupts === 1) cancel(sessionId);
          if (options.detach) {
            stdout.write(`${sessionId}\n`);
            return EXIT.succeeded;
          }
          if (verbose) {
            const queued = reply.queued ? ` (queued at position ${reply.position})` : '';
            stdout.write(`session ${sessionId} accepted${queued}\n`);
          }
          break;
        }
        case 'rejected':
          if (options.json) {
            stdout.write(
              `${JSON.stringify({ outcome: 'rejected', code: EXIT.rejected, reason: reply.reason })}\n`,
            );
          }
          return fail(io, `trigger rejected: ${String(reply.reason)}`, EXIT.rejected);
        case 'phase':
          if (verbose) stdout.write(`==> ${String(reply.phase)}\n`);
          break;
        case 'output':
          if (verbose) stdout.write(`${String(reply.line)}\n`);
          break;
        case 'cancelling':
          break;
        case 'outcome': {
          const record = reply.record as OutcomeRecord;
          const code = exitCodeForOutcome(record.outcome ?? 'error');
          if (options.json) {
            stdout.write(
              `${JSON.stringify({
                sessionId: record.id,
                agent: record.agent,
                outcome: record.outcome,
                exitCode: record.exitCode,
                signal: record.signal,
                message: record.message,
                durationMs: record.durationMs,
                code,
                elapsedMs: Date.now() - started,
              })}\n`,
            );
          } else {
            stdout.write(`${outcomeLine(record)}\n`);
          }
          return code;
        }
        case 'error':
          return fail(
            io,
            `${String(reply.message)}`,
            reply.code === 'bad_request' ? EXIT.usage : EXIT.rejected,
          );
        default:
          break;
      }
    }
  } finally {
    process.off('SIGINT', onInterrupt);
    client.close();
  }
}
