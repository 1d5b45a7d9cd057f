import { Command, Option } from 'clipanion';
import type { DaemonClient } from './client.js';
import { connectDaemon, fail } from './client-io.js';
import { EXIT } from './exit-codes.js';

/** Shared by every command that talks to a running daemon. */
export abstract class ClientCommand extends Command {
  socket = Option.String('--socket', {
    description: 'Path of the daemon socket (default: $AGENTD_SOCKET, else the daemon default)',
  });

  /** Connects, or prints why not and returns the exit code for "daemon not reachable". */
  protected connect(): Promise<DaemonClient | number> {
    return connectDaemon(this.socket, this.context);
  }

  /** Undefined when the id is well formed, else the usage-error exit code after saying why. */
  protected rejectSessionId(id: string): number | undefined {
    if (/^[0-9a-f]{16}$/.test(id)) return undefined;
    return this.fail(
      `"${id}" is not a session id (16 hex characters, as printed by agentd trigger)`,
      EXIT.usage,
    );
  }

  protected fail(message: string, code: number): number {
    return fail(this.context, message, code);
  }
}
