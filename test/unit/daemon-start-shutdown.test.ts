import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import type { ContainerSummary } from '../../src/adapters/podman.js';
import { LABEL_AGENT, LABEL_HOST, LABEL_INSTANCE, LABEL_SESSION } from '../../src/constants.js';
import { reconcile } from '../../src/daemon/reconcile.js';
import { planRecovery, readWhenExited } from '../../src/daemon/recovery.js';
import type { ReconcileResult } from '../../src/machines/daemon.machine.js';
import { containerName } from '../../src/runner/names.js';
import { FakePodman } from '../helpers/fake-podman.js';
import { AGENTS, deferred, Fakes, settle } from '../helpers/machine-fakes.js';
import { sessionRecord } from '../helpers/session-record.js';

/**
 * A SIGTERM while the start reconciles: the real reconciliation of a remote host removes the exited
 * container of a session its record says was running, while its secret side still runs. That
 * container's exit code is the session's outcome, and once it is removed it is nowhere else but in the
 * recovery plan: the daemon must record it before it stops.
 */

const INSTANCE = '0123456789abcdef0123456789abcdef';
const SESSION = '00000000000000a1';
const CONTAINER = containerName(INSTANCE, 'demo', SESSION);

/** A remote host whose `secret ls` waits for the test (many orphan secrets, a slow host). */
class SlowSecretsHost extends FakePodman {
  readonly secretsListed = deferred<string[]>();
  override remote = true;

  constructor() {
    super('auto');
    this.containers.set(CONTAINER, 'exited');
  }

  override async listContainers(): Promise<ContainerSummary[]> {
    if (!this.containers.has(CONTAINER)) return [];
    return [
      {
        Id: 'c1',
        Names: [CONTAINER],
        State: 'exited',
        ExitCode: 0,
        ExitedAt: 1_735_700_000,
        Labels: {
          [LABEL_INSTANCE]: INSTANCE,
          [LABEL_SESSION]: SESSION,
          [LABEL_AGENT]: 'demo',
          [LABEL_HOST]: 'b',
        },
      },
    ];
  }

  override listSecretNames(): Promise<string[]> {
    return this.secretsListed.promise;
  }
}

describe('a shutdown while the start reconciles', () => {
  it('records the outcome read from a container the reconciliation removed, then stops', async () => {
    const host = new SlowSecretsHost();
    const record = sessionRecord(SESSION, {
      phase: 'running',
      host: 'b',
      startedAt: '2025-01-01T00:00:01.000Z',
    });
    const log = pino({ level: 'silent' });
    const fakes = new Fakes({ reconcile: 'manual' });
    // What main.ts's reconcile actor does for one remote host: reconcile, then plan the recovery.
    const daemon = fakes.daemon().provide({
      actors: {
        reconcile: fromPromise(async ({ signal }): Promise<ReconcileResult> => {
          const where = { remote: true };
          const { summary, containers } = await reconcile(host, INSTANCE, log, signal, {
            host: 'b',
            keepDead: new Set([record].filter((r) => readWhenExited(r, where)).map((r) => r.id)),
          });
          const { remove: _remove, ...recovery } = planRecovery(
            [record],
            containers,
            AGENTS,
            Date.now(),
            where,
          );
          return { summary, recovery };
        }),
      },
    });
    const actor = createActor(daemon, {
      input: { agents: AGENTS, maxSessions: 2, hosts: [{ name: 'b', maxSessions: 2, labels: {} }] },
    }).start();
    await settle();
    // The container side is done: the exited container is gone, its exit code only in memory.
    expect(host.containers.has(CONTAINER)).toBe(false);
    expect(actor.getSnapshot().matches('reconciling')).toBe(true);

    actor.send({ type: 'shutdown' });
    host.secretsListed.resolve([]);
    await settle();

    expect(actor.getSnapshot().value).toEqual({ shutdown: 'stopped' });
    expect(fakes.reportsOf(SESSION)).toEqual([
      {
        sessionId: SESSION,
        via: 'reportSettled',
        outcome: expect.objectContaining({ outcome: 'succeeded', exitCode: 0 }),
      },
    ]);
  });
});
