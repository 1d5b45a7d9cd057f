import type { Writable } from 'node:stream';
import { DaemonClient, DaemonUnreachable } from './client.js';
import { EXIT } from './exit-codes.js';
import { resolveSocketPath } from './socket-path.js';

/** Where a client command writes: clipanion's context, or the process's own streams on the quick path. */
export interface ClientIo {
  stdout: Writable;
  stderr: Writable;
}

/** Connects, or prints why not and returns the exit code for "daemon not reachable". */
export async function connectDaemon(
  socket: string | undefined,
  io: ClientIo,
): Promise<DaemonClient | number> {
  const path = resolveSocketPath(socket);
  try {
    return await DaemonClient.connect(path);
  } catch (error) {
    if (error instanceof DaemonUnreachable) {
      io.stderr.write(`agentd: ${error.message}\n`);
      return EXIT.unreachable;
    }
    throw error;
  }
}

export function fail(io: ClientIo, message: string, code: number): number {
  io.stderr.write(`agentd: ${message}\n`);
  return code;
}
