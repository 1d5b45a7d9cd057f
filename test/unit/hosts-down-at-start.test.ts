/**
 * A host the start could not reach (or reconcile in time) is named in the log once the daemon is up
 * (`host.down` with `atStart`, README's events table): the operator's only word of it at start.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import type { HostInfo } from '../../src/machines/daemon.machine.js';
import { AGENTS, Fakes, RECONCILED, settle } from '../helpers/machine-fakes.js';

const HOSTS: HostInfo[] = [
  { name: 'a', maxSessions: 1, labels: {} },
  { name: 'b', maxSessions: 1, labels: {} },
];

describe('hosts down at start', () => {
  it('are announced with their reasons once the daemon is up', async () => {
    const down = [{ host: 'b', reason: 'probe the host: cannot reach the Podman host (connection refused)' }];
    const fakes = new Fakes({ reconcile: { ...RECONCILED, down } });
    fakes.unreachable.set('b', 'connection refused');
    const announced: { host: string; reason: string }[][] = [];
    const machine = fakes.daemon().provide({
      actions: { announceHostsDown: (_, hosts) => announced.push([...hosts]) },
    });
    const actor = createActor(machine, { input: { agents: AGENTS, maxSessions: 2, hosts: HOSTS } });
    actor.start();
    await settle();
    expect(actor.getSnapshot().value).toBe('ready');
    expect(announced).toEqual([down]);
    actor.stop();
  });
});
