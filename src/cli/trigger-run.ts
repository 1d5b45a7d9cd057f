import type { TriggerFields } from '../sessions/check-trigger.js';
import type { WorkPayload } from '../sessions/work.js';
import type { Reply } from './client.js';
import { type ClientIo, connectDaemon, fail } from './client-io.js';
import { EXIT, exitCodeForOutcome } from './exit-codes.js';
import { outcomeLine } from './format.js';

/** The trigger's fields as the protocol has them, and how the CLI shows the session. */
export type TriggerOptions = { [K in keyof TriggerFields]: TriggerFields[K] | undefined } & {
  agent: string;
  socket?: string | undefined;
  quiet: boolean;
  json: boolean;
  detach: boolean;
  /** The request and input files, read already (their content goes to the daemon). */
  work?: WorkPayload;
};

/**
 * `agentd trigger`, free of clipanion: TriggerCommand and the quick path (quick.ts) both run it. The
 * options are valid: clipanion's validators (or the quick path's fallback to clipanion) saw to it.
 */
export async function runTrigger(options: TriggerOptions, io: ClientIo): Promise<number> {
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
      ...(options.work?.request === undefined ? {} : { request: options.work.request.toString('base64') }),
      ...(options.work === undefined || options.work.inputs.length === 0
        ? {}
        : {
            inputs: options.work.inputs.map((input) => ({
              name: input.name,
              data: input.bytes.toString('base64'),
            })),
          }),
    });
    for (;;) {
      const reply: Reply | { type: 'left'; code: number } | undefined = await Promise.race([
        client.next(),
        left.then((code) => ({ type: 'left' as const, code })),
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
          return reply.code;
        case 'accepted': {
          sessionId = reply.sessionId;
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
          return fail(io, `trigger rejected: ${reply.reason}`, EXIT.rejected);
        case 'phase':
          if (verbose) stdout.write(`==> ${reply.phase}\n`);
          break;
        case 'output':
          if (verbose) stdout.write(`${reply.line}\n`);
          break;
        case 'cancelling':
          break;
        case 'outcome': {
          const { record } = reply;
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
          return fail(io, reply.message, reply.code === 'bad_request' ? EXIT.usage : EXIT.rejected);
        default:
          break;
      }
    }
  } finally {
    process.off('SIGINT', onInterrupt);
    client.close();
  }
}
