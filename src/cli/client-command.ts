import { Option } from 'clipanion';
import { AgentdCommand } from './agentd-command.js';
import type { DaemonClient } from './client.js';
import { connectDaemon, fail } from './client-io.js';
import { isPath } from './validators.js';

/** Shared by every command that talks to a running daemon. */
export abstract class ClientCommand extends AgentdCommand {
  socket = Option.String('--socket', {
    description: 'Path of the daemon socket (default: $AGENTD_SOCKET, else the daemon default)',
    validator: isPath,
  });

  /** Connects, or prints why not and returns the exit code for "daemon not reachable". */
  protected connect(json = false): Promise<DaemonClient | number> {
    return connectDaemon(this.socket, this.context, json);
  }

  protected fail(message: string, code: number): number {
    return fail(this.context, message, code);
  }
}
