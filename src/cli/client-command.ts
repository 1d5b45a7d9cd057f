import { Command, Option } from 'clipanion';
import { DaemonClient, DaemonUnreachable } from './client.js';
import { EXIT } from './exit-codes.js';
import { resolveSocketPath } from './socket-path.js';

/** Shared by every command that talks to a running daemon. */
export abstract class ClientCommand extends Command {
  socket = Option.String('--socket', {
    description: 'Path of the daemon socket (default: $AGENTD_SOCKET, else the daemon default)',
  });

  /** Connects, or prints why not and returns the exit code for "daemon not reachable". */
  protected async connect(): Promise<DaemonClient | number> {
    const path = resolveSocketPath(this.socket);
    try {
      return await DaemonClient.connect(path);
    } catch (error) {
      if (error instanceof DaemonUnreachable) {
        this.context.stderr.write(`agentd: ${error.message}\n`);
        return EXIT.unreachable;
      }
      throw error;
    }
  }

  protected fail(message: string, code: number): number {
    this.context.stderr.write(`agentd: ${message}\n`);
    return code;
  }
}
