/**
 * An exception inside a machine's action (a record write that fails, a bug): a session actor's own is
 * that session's end, with one outcome.
 */
import { describe, expect, it } from 'vitest';
import { type Actor, createActor } from 'xstate';
import type { DaemonEmitted, daemonMachine } from '../../src/machines/daemon.machine.js';
import { AGENTS, Fakes, settle } from '../helpers/machine-fakes.js';

type DaemonActor = Actor<typeof daemonMachine>;

/** A daemon machine with fakes, up and ready; `machine` changes what it is provided. */
async function readyDaemon(fakes: Fakes, machine = fakes.daemon()): Promise<DaemonActor> {
  const actor = createActor(machine, { input: { agents: AGENTS, maxSessions: 2 } });
  // The daemon (main.ts) listens for the machine's failure; without a listener XState throws it again.
  actor.subscribe({ error: () => {} });
  actor.start();
  await settle();
  expect(actor.getSnapshot().value).toBe('ready');
  return actor;
}

function answersOf(actor: DaemonActor): DaemonEmitted[] {
  const answers: DaemonEmitted[] = [];
  actor.on('*', (answer) => answers.push(answer));
  return answers;
}

describe('a session actor whose own action throws', () => {
  it('ends that session with one outcome, error with the reason, and leaves the daemon ready', async () => {
    const fakes = new Fakes();
    let throws = true;
    const session = fakes.session().provide({
      actions: {
        announcePhase: ({ context }, { phase }) => {
          if (throws && phase === 'resolving') {
            throws = false;
            throw new Error("EACCES: permission denied, open 'sessions/s1.json'");
          }
          fakes.announced.push({ sessionId: context.request.sessionId, phase });
        },
      },
    });
    const actor = await readyDaemon(fakes, fakes.daemon().provide({ actors: { session } }));
    const answers = answersOf(actor);

    actor.send({ type: 'trigger', sessionId: 's1', agent: 'demo', key: 'k1' });
    await settle();
    await settle();

    expect(actor.getSnapshot().status).toBe('active');
    expect(actor.getSnapshot().value).toBe('ready');
    expect(fakes.reportsOf('s1')).toEqual([
      {
        sessionId: 's1',
        via: 'reportSettled',
        outcome: {
          outcome: 'error',
          phase: 'resolving',
          message:
            "the daemon's supervision of this session failed: EACCES: permission denied, open 'sessions/s1.json'",
        },
      },
    ]);
    expect(Object.keys(actor.getSnapshot().context.sessions)).toEqual([]);
    // Its key is that of a finished session: a retry with it is answered with s1, not left running.
    expect(actor.getSnapshot().context.keys.k1?.finishedAt).toBeTypeOf('number');

    // The daemon goes on: the next trigger runs.
    actor.send({ type: 'trigger', sessionId: 's2', agent: 'demo' });
    await settle();
    expect(answers.filter((a) => a.type === 'trigger.accepted').map((a) => a.sessionId)).toEqual([
      's1',
      's2',
    ]);
    fakes.run('s2').finish();
    await settle();
    expect(fakes.reportsOf('s2').map((r) => r.outcome.outcome)).toEqual(['succeeded']);
    expect(fakes.reportsOf('s1')).toHaveLength(1);
    actor.stop();
  });

  it('a schedule actor that throws is not absorbed: the daemon machine fails', async () => {
    const fakes = new Fakes();
    const actor = await readyDaemon(fakes);
    // Not a session: nothing to settle it with. main.ts logs daemon.crashed and exits.
    actor.send({ type: 'xstate.error.actor.demo', error: new Error('schedule log: ENOSPC') } as never);
    expect(actor.getSnapshot().status).toBe('error');
  });
});
