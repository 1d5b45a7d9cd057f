/**
 * An attachment the runner stopped while it was still building its masker (a session that ended while
 * its host went round following, lost, following again): the session's log was closed with its outcome,
 * and must stay closed. The masker is slowed down here, as long credential values make it (a second).
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { createActor, toPromise } from 'xstate';

vi.mock('../../src/runner/mask.js', async (original) => {
  const real = await original<typeof import('../../src/runner/mask.js')>();
  return {
    ...real,
    maskerOf: async (...args: Parameters<typeof real.maskerOf>) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return real.maskerOf(...args);
    },
  };
});

import type { AgentConfig } from '../../src/config/types.js';
import { runnerMachineFor } from '../../src/machines/runner.machine.js';
import { runnerActors } from '../../src/runner/actors.js';
import { closeSessionLog } from '../../src/runner/session-log.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import type { RunResult } from '../../src/sessions/types.js';
import { unfollowable } from '../helpers/fake-podman.js';
import { AGENTS, request, resolvedCredentials, settle } from '../helpers/machine-fakes.js';
import { makeTempDir } from '../helpers/resources.js';

const CONTAINER = 'agentd-eeeeeeee-demo-0123456789abcdef';

/** Descriptors of this process open on `path`. */
function openOn(path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 2));
  if (!check()) throw new Error(`never happened: ${what}`);
}

/** A session on an unfollowable host, cancelled while it goes round; its log closed as the journal closes it. */
async function cancelledWhileGoingRound(stopExitMs: number): Promise<string> {
  const podman = unfollowable();
  const { repoToken: _none, ...agent } = AGENTS[0] as AgentConfig;
  const trigger = request('0123456789abcdef');
  const session = assembleSession(trigger, agent, { credentials: resolvedCredentials().credentials });
  const logFile = `${makeTempDir('agentd-unit-stale-attachment-')}/${trigger.sessionId}.log`;
  const machine = runnerMachineFor({
    instanceId: 'e'.repeat(32),
    stopGraceMs: 1000,
    workDir: '/var/lib/agentd/work',
    hostDownGraceMs: 3_600_000,
    hostRetryMs: 1,
    connectedHosts: ['b1'],
  }).provide({
    actors: runnerActors(podman, { logFile: () => logFile, logMaxBytes: 100_000, line: () => {} }),
    actions: { warn: () => {}, announceContainerCall: () => {} },
    delays: { stopExit: stopExitMs },
  });
  const actor = createActor(machine, { input: { session, host: 'b1' } }).start();
  const result = toPromise(actor) as Promise<RunResult>;
  await until(() => podman.stream() !== undefined, 'attached');
  const first = podman.stream() ?? expect.fail('no stream');
  const marker = podman.markerOf(CONTAINER);
  for (const line of ['started', 'phase cloning', 'phase running']) first.line(`${marker} ${line}`);
  first.line('hello');
  await settle();
  podman.broken = true;
  first.drop();
  await until(() => podman.follows >= 3, 'going round');
  actor.send({ type: 'cancel' });
  expect(await result).toMatchObject({ outcome: 'cancelled' });
  // What the journal does with the outcome (journal.seal).
  await closeSessionLog(logFile);
  // Longer than an attachment takes to build its masker and follow.
  await new Promise((resolve) => setTimeout(resolve, 100));
  return logFile;
}

describe('an attachment stopped while it builds its masker', () => {
  it('never opens the log of a session that has ended: the daemon holds no descriptor of it', async () => {
    const open: number[] = [];
    for (let i = 0; i < 20; i++) {
      const logFile = await cancelledWhileGoingRound(5 + (i % 10));
      open.push(openOn(logFile));
      await closeSessionLog(logFile);
    }
    expect(
      open.filter((n) => n > 0),
      'sessions whose log was open after their end',
    ).toEqual([]);
  });
});
