/**
 * Every error agentd raises on purpose carries a stable code, the operation that failed and,
 * where there is one, the underlying cause. Messages never include credential values.
 */
export type ErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_INVALID'
  | 'PODMAN_NOT_INSTALLED'
  | 'PODMAN_FAILED'
  | 'PODMAN_TIMEOUT'
  | 'PODMAN_UNREACHABLE'
  | 'PODMAN_RLIMIT'
  | 'PODMAN_CGROUPS'
  | 'IMAGE_NOT_FOUND'
  | 'IMAGE_PULL_FAILED'
  | 'CREDENTIAL_UNRESOLVED'
  | 'CREDENTIAL_TOO_LARGE'
  | 'DAEMON_RUNNING'
  | 'SOCKET_PATH_IN_USE'
  | 'DAEMON_UNREACHABLE'
  | 'PROTOCOL'
  | 'START_FAILED'
  | 'UNSAFE_PATH'
  | 'STATE_DIR_FULL'
  | 'STATE_DIR_UNWRITABLE'
  | 'WEBHOOK_FAILED'
  | 'CACHE_FAILED'
  | 'INTERNAL';

export class AgentdError extends Error {
  readonly code: ErrorCode;
  readonly operation: string | undefined;
  constructor(code: ErrorCode, message: string, options: { operation?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentdError';
    this.code = code;
    this.operation = options.operation;
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * An expected failure as log fields: its message and code (agentd's, or the system's errno), without
 * the stack a logged `err` carries, which says nothing to an operator about a full disk or a refusal.
 */
export function errorFields(error: unknown): { reason: string; code?: string; operation?: string } {
  const fields: { reason: string; code?: string; operation?: string } = { reason: errorMessage(error) };
  const { code, errno, operation } = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    errno?: unknown;
    operation?: unknown;
  };
  // StateDirError keeps the system's errno ('ENOSPC') beside its own code.
  const found = [errno, code].find((value) => typeof value === 'string');
  if (typeof found === 'string') fields.code = found;
  if (typeof operation === 'string') fields.operation = operation;
  return fields;
}
