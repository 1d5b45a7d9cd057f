import { describe, expect, it } from 'vitest';
import type { ContainerSummary } from '../../src/adapters/podman.js';
import { LABEL_AGENT, LABEL_INSTANCE, LABEL_SESSION } from '../../src/constants.js';
import { LOST_REPO, planRecovery, recordsFromLabels } from '../../src/daemon/recovery.js';
import { AGENTS } from '../helpers/machine-fakes.js';

function container(session: string, state: string, agent = 'demo', extra: Partial<ContainerSummary> = {}) {
  return {
    Id: `id-${session}`,
    Names: [`agentd-x-${agent}-${session}`],
    State: state,
    Labels: { [LABEL_INSTANCE]: 'x', [LABEL_SESSION]: session, [LABEL_AGENT]: agent },
    Created: 1_700_000_000,
    ...extra,
  } satisfies ContainerSummary;
}

const RUNNING = 'aaaaaaaaaaaaaaaa';
const EXITED = 'bbbbbbbbbbbbbbbb';
const GONE_AGENT = 'cccccccccccccccc';
const KNOWN = 'dddddddddddddddd';

describe('sessions whose record was lost', () => {
  const containers = [
    container(RUNNING, 'running'),
    container(EXITED, 'exited', 'demo', { ExitCode: 3 }),
    container(GONE_AGENT, 'running', 'retired'),
    container(KNOWN, 'running'),
    { ...container('not-a-session', 'running') },
  ];
  const known = { used: (id: string) => id === KNOWN };
  const rebuilt = recordsFromLabels(containers, known);

  it('are rebuilt from the container labels, once each, only for valid ids without a record', () => {
    expect(rebuilt.map((r) => [r.id, r.agent, r.phase, r.container])).toEqual([
      [RUNNING, 'demo', 'running', `agentd-x-demo-${RUNNING}`],
      [EXITED, 'demo', 'creating', `agentd-x-demo-${EXITED}`],
      [GONE_AGENT, 'retired', 'running', `agentd-x-retired-${GONE_AGENT}`],
    ]);
    expect(rebuilt.every((r) => r.repo === LOST_REPO && r.acceptedAt === '2023-11-14T22:13:20.000Z')).toBe(
      true,
    );
  });

  it('are adopted when running, else settled abandoned with the reason; unsupervised ones are removed', () => {
    const plan = planRecovery(rebuilt, containers, AGENTS);
    expect(plan.adopted.map((a) => [a.request.sessionId, a.adopted])).toEqual([
      [RUNNING, { container: `agentd-x-demo-${RUNNING}`, phase: 'running' }],
    ]);
    expect(plan.queued).toEqual([]);
    expect(plan.finished.map((f) => [f.request.sessionId, f.outcome.outcome, f.outcome.message])).toEqual([
      [
        EXITED,
        'abandoned',
        `the session's record could not be read (moved to sessions/quarantine); its container agentd-x-demo-${EXITED} had exited with exit code 3, so its outcome is unknown`,
      ],
      [
        GONE_AGENT,
        'abandoned',
        `the session's record could not be read (moved to sessions/quarantine); its container agentd-x-retired-${GONE_AGENT} was still running, but agent retired is no longer configured, so it was stopped`,
      ],
    ]);
    expect(plan.remove).toEqual([`agentd-x-retired-${GONE_AGENT}`]);
  });

  it('are rebuilt only where they could have run, as many running as the host has slots', () => {
    const many = Array.from({ length: 10 }, (_, i) => container(`e${i}`.padStart(16, '0'), 'running'));
    const limited = recordsFromLabels([...containers, ...many], known, {
      // demo may run here; retired is no longer configured (settled, its container stopped); pinned is
      // configured for another host.
      allowed: (agent) => agent !== 'pinned',
      maxLive: 3,
      maxRecords: 5,
    });
    expect(limited.map((r) => r.id)).toEqual([RUNNING, EXITED, GONE_AGENT, many[0]?.Labels?.[LABEL_SESSION]]);
    const pinned = recordsFromLabels([container(RUNNING, 'running', 'pinned')], known, {
      allowed: (agent) => agent !== 'pinned',
    });
    expect(pinned).toEqual([]);
    expect(recordsFromLabels(many, known, { maxRecords: 2 })).toHaveLength(2);
  });

  it('keep their timeout, counted from the container start the host reports, never longer', () => {
    const agents = AGENTS.map((a) => (a.name === 'demo' ? { ...a, timeoutMs: 3_600_000 } : a));
    const now = 1_700_000_000_000;
    const started = (seconds: number) => [container(RUNNING, 'running', 'demo', { Created: seconds })];
    const remaining = (created: number) => {
      const records = recordsFromLabels(started(created), known);
      return planRecovery(records, started(created), agents, now).adopted[0]?.adopted.remainingMs;
    };
    expect(remaining(now / 1000 - 600)).toBe(3_000_000);
    expect(remaining(now / 1000 + 86_400)).toBe(3_600_000);
    expect(remaining(now / 1000 - 7200)).toBe(0);
  });

  it('take a creation time no date holds as now, instead of failing the host’s reconciliation', () => {
    const [record] = recordsFromLabels([container(RUNNING, 'running', 'demo', { Created: 1e20 })], known);
    expect(Math.abs(Date.parse(record?.acceptedAt ?? '') - Date.now())).toBeLessThan(60_000);
  });
});
