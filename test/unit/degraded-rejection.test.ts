/**
 * A trigger rejected while the daemon is degraded (src/machines/daemon.machine.ts) is told the daemon
 * is degraded by an earlier write: the reason of that write names its own session, which must not read
 * as this trigger's failure.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import type { DaemonEmitted } from '../../src/machines/daemon.machine.js';
import { AGENTS, Fakes, settle } from '../helpers/machine-fakes.js';

const EARLIER = 'aaaaaaaaaaaaaaaa';
const FULL = {
  code: 'state_dir_full',
  reason: `state dir full: cannot prepare the work directory of session ${EARLIER} (ENOSPC on /state/work/${EARLIER}); free space on that filesystem`,
} as const;

describe('daemon machine: a trigger rejected while degraded', () => {
  it('says the daemon is degraded by an earlier write, quoting it, and not as its own failure', async () => {
    const fakes = new Fakes();
    const actor = createActor(fakes.daemon(), { input: { agents: AGENTS, maxSessions: 2 } });
    const answers: DaemonEmitted[] = [];
    actor.on('*', (event) => answers.push(event));
    actor.start();
    await settle();
    actor.send({ type: 'stateDir.unwritable', ...FULL });
    expect(actor.getSnapshot().value).toBe('degraded');
    answers.length = 0;
    actor.send({ type: 'trigger', sessionId: 'bbbbbbbbbbbbbbbb', agent: 'demo' });
    expect(answers).toEqual([
      expect.objectContaining({
        type: 'trigger.rejected',
        sessionId: 'bbbbbbbbbbbbbbbb',
        code: 'state_dir_full',
      }),
    ]);
    const reason = String((answers[0] as { reason?: unknown }).reason);
    expect(reason).toMatch(/^daemon degraded, this trigger was not tried: /);
    expect(reason).toContain(`since an earlier one failed (${FULL.reason})`);
    expect(reason).toMatch(/triggers are accepted again as soon as it does$/);
    expect(reason.startsWith(FULL.reason)).toBe(false);
    actor.stop();
  });
});
