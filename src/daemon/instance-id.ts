import { createHash } from 'node:crypto';
import { resolve } from 'node:path';

/**
 * The id of one daemon instance: stable across restarts of the same instance (same socket and state
 * dir) and different for two instances on one host. Every Podman object it makes carries it.
 */
export function instanceIdOf(socketPath: string, stateDir: string): string {
  return createHash('sha256')
    .update(`${resolve(socketPath)}\0${resolve(stateDir)}`)
    .digest('hex')
    .slice(0, 32);
}
