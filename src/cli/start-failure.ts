import type { Logger } from 'pino';
import { AgentdError, errorMessage } from '../errors.js';

/**
 * Reports a start that cannot complete, the same way whatever failed (configuration, pid file, Podman,
 * socket, inspector): one `daemon.failed` log line and one plain `agentd: could not start: ...` message
 * on stderr. The stack goes into the log only at --log-level debug or trace: these failures are
 * expected, and their message says what to do.
 */
export function reportStartFailure(log: Logger, stderr: NodeJS.WritableStream, error: unknown): void {
  const code =
    error instanceof AgentdError ? error.code : ((error as { code?: unknown })?.code ?? 'INTERNAL');
  const operation = error instanceof AgentdError ? error.operation : undefined;
  const message = errorMessage(error);
  const line = message.startsWith('could not start') ? message : `could not start: ${message}`;
  const debug = log.isLevelEnabled('debug');
  log.error(
    {
      event: 'daemon.failed',
      code,
      ...(operation === undefined ? {} : { operation }),
      ...(debug ? { err: error } : {}),
    },
    line,
  );
  stderr.write(`agentd: ${line}\n`);
}
