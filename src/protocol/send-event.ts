import { randomUUID } from 'node:crypto';
import type { ClientEvent, DaemonEmitted } from '../machines/daemon.machine.js';
import type { DaemonHandle } from './context.js';

const ANSWERS = [
  'trigger.accepted',
  'trigger.rejected',
  'cancel.accepted',
  'cancel.rejected',
  'reload.applied',
  'reload.rejected',
] as const;

/**
 * Sends one event to the daemon machine and returns what the machine answered. The machine
 * processes events synchronously, so every answer has arrived when send() returns.
 */
export function sendEvent(daemon: Pick<DaemonHandle, 'actor'>, event: ClientEvent): DaemonEmitted[] {
  const requestId = randomUUID();
  const answers: DaemonEmitted[] = [];
  const subscriptions = ANSWERS.map((type) =>
    daemon.actor.on(type, (answer: DaemonEmitted) => {
      if (answer.requestId === requestId) answers.push(answer);
    }),
  );
  try {
    daemon.actor.send({ ...event, requestId });
  } finally {
    for (const subscription of subscriptions) subscription.unsubscribe();
  }
  return answers;
}
