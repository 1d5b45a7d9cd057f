/** A session a schedule made, left by an earlier daemon: it still holds its schedule back (overlap: skip). */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor } from 'xstate';
import type { ContainerSummary } from '../../src/adapters/podman.js';
import type { AgentConfig, ScheduleConfig } from '../../src/config/types.js';
import { LABEL_AGENT, LABEL_INSTANCE, LABEL_SESSION } from '../../src/constants.js';
import { planRecovery } from '../../src/daemon/recovery.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import { AGENTS, Fakes, RECONCILED, settle } from '../helpers/machine-fakes.js';

const EVERY_5S: ScheduleConfig = { cron: '*/5 * * * * *', overlap: 'skip', catchUp: 'none' };
const NIGHTLY: AgentConfig = { ...(AGENTS[0] as AgentConfig), name: 'nightly', schedule: EVERY_5S };
const FIRING = '2026-06-01T10:00:00.000Z';

function scheduledRecord(id: string, phase: SessionRecord['phase']): SessionRecord {
  return {
    version: 1,
    id,
    agent: 'nightly',
    repo: 'https://git.example/demo.git',
    acceptedAt: FIRING,
    phase,
    phases: [{ phase: 'queued', at: FIRING }],
    ...(phase === 'queued' ? {} : { startedAt: FIRING }),
    scheduledFor: FIRING,
  };
}

function running(id: string): ContainerSummary {
  return {
    Id: `id-${id}`,
    Names: [`agentd-x-nightly-${id}`],
    State: 'running',
    Labels: { [LABEL_INSTANCE]: 'x', [LABEL_SESSION]: id, [LABEL_AGENT]: 'nightly' },
  };
}

describe('a scheduled session recovered after a restart', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(new Date('2026-06-01T10:00:02.000Z'));
  });
  afterEach(() => vi.useRealTimers());

  it.each([
    [
      'adopted while its container runs',
      scheduledRecord('00000000000000a1', 'running'),
      [running('00000000000000a1')],
    ],
    ['queued again, never started', scheduledRecord('00000000000000a2', 'queued'), []],
  ])(
    '%s keeps its firing, and the next firing is skipped with overlap: skip',
    async (_, record, containers) => {
      const recovery = planRecovery([record], containers, [NIGHTLY], Date.now());
      const [request] = [...recovery.adopted, ...recovery.queued].map((s) => s.request);
      expect(request?.scheduledFor).toBe(FIRING);

      const fakes = new Fakes({ reconcile: { ...RECONCILED, recovery } });
      const skipped: string[] = [];
      const actor = createActor(
        fakes.daemon().provide({
          actions: { announceFiringSkipped: (_, { firing }) => skipped.push(firing) },
        }),
        { input: { agents: [NIGHTLY], maxSessions: 4 } },
      );
      actor.start();
      await settle();
      await vi.advanceTimersByTimeAsync(3_000);
      // The firing at 10:00:05 made no second session while the recovered one runs.
      expect(fakes.accepted).toEqual([]);
      expect(skipped).toEqual(['2026-06-01T10:00:05.000Z']);
      actor.stop();
    },
  );
});
