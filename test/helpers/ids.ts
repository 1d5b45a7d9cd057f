import { randomBytes } from 'node:crypto';
import { instanceSecretPrefix } from '../../src/runner/names.js';
import { recordInstance } from './run-instances.js';

/** A session id as the daemon makes them: 16 lowercase hex digits. */
export function randomSessionId(): string {
  return randomBytes(8).toString('hex');
}

/**
 * A fresh agentd instance id for one test file. Object names embed its first 8 hex digits, so
 * test files running in parallel never see or remove each other's containers and secrets.
 */
export function testInstanceId(): string {
  const id = randomBytes(12).toString('hex');
  recordInstance(instanceSecretPrefix(id));
  return id;
}
