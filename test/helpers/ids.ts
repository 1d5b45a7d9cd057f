import { randomBytes } from 'node:crypto';

/** A session id as the daemon makes them: 16 lowercase hex digits. */
export function randomSessionId(): string {
  return randomBytes(8).toString('hex');
}

/**
 * A fresh agentd instance id for one test file. Object names embed its first 8 hex digits, so
 * test files running in parallel never see or remove each other's containers and secrets.
 */
export function testInstanceId(): string {
  return randomBytes(12).toString('hex');
}
