import type { Writable } from 'node:stream';
import { DaemonClient, DaemonUnreachable, type Reply } from './client.js';
import { EXIT, exitCodeForRefusal } from './exit-codes.js';
import { shownValue } from './reply-check.js';
import { resolveSocketPath } from './socket-path.js';
import { jsonText, shownOn } from './terminal.js';
import { isAccessDenied } from './unreachable.js';

/** Where a client command writes: clipanion's context, or the process's own streams on the quick path. */
export interface ClientIo {
  stdout: Writable;
  stderr: Writable;
}

/**
 * Connects, or prints why not and returns the exit code for "daemon not reachable". `whenAbsent` may
 * say otherwise of a socket that is not there or refuses connections (it printed why: its exit code).
 */
export async function connectDaemon(
  socket: string | undefined,
  io: ClientIo,
  json = false,
  whenAbsent?: (path: string) => Promise<number | undefined>,
): Promise<DaemonClient | number> {
  const path = resolveSocketPath(socket);
  try {
    return await DaemonClient.connect(path);
  } catch (error) {
    if (error instanceof DaemonUnreachable) {
      // Another user's daemon is there: starting one, as for no daemon, is not the fix.
      if (isAccessDenied(error.reason)) {
        return failWith(
          io,
          json,
          { error: 'permission_denied', message: error.message },
          EXIT.permissionDenied,
        );
      }
      const instead = error.kind === 'absent' ? await whenAbsent?.(path) : undefined;
      if (instead !== undefined) return instead;
      return failWith(io, json, { error: 'unreachable', message: error.message }, EXIT.unreachable);
    }
    throw error;
  }
}

export function fail(io: ClientIo, message: string, code: number): number {
  io.stderr.write(`agentd: ${shownOn(io.stderr, message)}\n`);
  return code;
}

/** One JSON object on its own line: what `--json` prints. */
export function printJson(io: ClientIo, value: unknown): void {
  io.stdout.write(`${jsonText(value)}\n`);
}

/**
 * A failure: the message on stderr, and with `--json` also `{"error","message","code"}` on stdout
 * (`error` names what went wrong, `code` is the exit code), so a script always gets one object.
 */
export function failWith(
  io: ClientIo,
  json: boolean,
  failure: { error: string; message: string; [field: string]: unknown },
  exitCode: number,
): number {
  if (json) printJson(io, { ...failure, code: exitCode });
  return fail(io, failure.message, exitCode);
}

/** The exit code an `error` reply (or a closed connection) means for a client command. */
export function exitCodeForReply(reply: Reply | undefined): number {
  if (reply === undefined) return EXIT.infrastructure;
  if (reply.type !== 'error') return EXIT.infrastructure;
  switch (reply.code) {
    case 'unknown_session':
      return EXIT.unknownSession;
    case 'failed':
      // The daemon machine failed and the process is exiting (`cancel`, `hosts drain`): not "no such
      // session" nor a refusal of this request; what `status` exits with for that daemon.
      return EXIT.daemonFailed;
    case 'bad_request':
      return EXIT.usage;
    default:
      return 'retryable' in reply ? exitCodeForRefusal(reply.retryable) : EXIT.infrastructure;
  }
}

/**
 * A reply that is not the one expected, as a failure. `notDone` says what was not done when the daemon
 * answers `failed` (it failed and is exiting: "session X was not cancelled"), before the daemon's words.
 */
export function failOnReply(io: ClientIo, json: boolean, reply: Reply | undefined, notDone?: string): number {
  if (reply === undefined) {
    return failWith(
      io,
      json,
      { error: 'connection_lost', message: 'the daemon closed the connection' },
      EXIT.infrastructure,
    );
  }
  if (reply.type === 'error') {
    const message =
      reply.code === 'failed' && notDone !== undefined ? `${notDone}: ${reply.message}` : reply.message;
    return failWith(io, json, { error: reply.code, message }, exitCodeForReply(reply));
  }
  return failWith(
    io,
    json,
    { error: 'bad_reply', message: `unexpected reply ${shownValue(reply.type)}` },
    EXIT.infrastructure,
  );
}
