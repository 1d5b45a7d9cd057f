import { currentUid, userLabel } from '../adapters/ownership-checks.js';

/**
 * Why a client cannot use the daemon's socket, in words an operator acts on. Apart from client.ts so
 * that client-io.ts picks the exit code from the same reading of connect(2)'s error.
 */

/** connect(2) answers EACCES or EPERM: the socket is there (or a directory on its path), not ours to use. */
export function isAccessDenied(reason: string): boolean {
  return reason === 'EACCES' || reason === 'EPERM';
}

/** No daemon there; a socket not to be trusted; a path no socket can have (over 107 bytes). */
export type UnreachableKind = 'absent' | 'untrusted' | 'too_long';

export function unreachableMessage(socketPath: string, reason: string, kind: UnreachableKind): string {
  if (kind === 'too_long') {
    return (
      `not connecting to ${socketPath}: ${reason}, and a Unix socket's path holds at most 107 (connect(2) would reach whatever socket its first 108 bytes name).\n` +
      "Give the daemon's socket by its own path (daemon.socket, at most 107 bytes: `agentd validate` prints it) with --socket PATH or $AGENTD_SOCKET."
    );
  }
  if (kind === 'untrusted') {
    return (
      `not connecting to ${socketPath}: ${reason}.\n` +
      "Point at your daemon's socket with --socket PATH or $AGENTD_SOCKET; if something else was put there, check who made it (ls -la of it and its directory) and remove it."
    );
  }
  if (isAccessDenied(reason)) {
    return (
      `permission denied on ${socketPath} (${reason}): the daemon's socket, or a directory on its path, does not let ${userLabel(currentUid())} in.\n` +
      'Run the command as the user the daemon runs as (or root), or point at your own daemon with --socket PATH or $AGENTD_SOCKET.'
    );
  }
  return (
    `no agentd daemon answers on ${socketPath} (${reason}).\n` +
    'Start one with `agentd start --config PATH`, or point at a running one with --socket PATH or $AGENTD_SOCKET.'
  );
}
