import { describe, expect, it } from 'vitest';
import type { AgentConfig } from '../../src/config/types.js';
import {
  abandonedWaiting,
  keptDeadContainers,
  sortByHost,
  staleContainers,
} from '../../src/daemon/host-recovery.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import { planRun } from '../../src/sessions/run-plan.js';
import { AGENTS, request } from '../helpers/machine-fakes.js';

function record(id: string, phase: SessionRecord['phase'], host?: string): SessionRecord {
  return {
    version: 1,
    id,
    agent: 'demo',
    repo: 'git://127.0.0.1/x.git',
    acceptedAt: '2026-01-01T00:00:00.000Z',
    phase,
    phases: [{ phase, at: '2026-01-01T00:00:00.000Z' }],
    ...(host === undefined ? {} : { host }),
  };
}

/** A container of session `session` in Podman's `State`, as `podman ps` lists it. */
const c = (session: string, State: string) => ({
  Id: session,
  Names: [`agentd-x-demo-${session}`],
  State,
  Labels: { 'io.agentd.session': session },
});

describe('recovering sessions host by host', () => {
  it('queues the never started anywhere, waits for their host with the rest, and settles those of a host gone', () => {
    const sorted = sortByHost(
      [
        record('q', 'queued'),
        // Killed while it resolved its credentials (on a host no longer configured, even): it never ran.
        record('r', 'resolving', 'gone'),
        record('a1', 'running', 'a'),
        record('old', 'running'),
        record('b1', 'cloning', 'b'),
        record('z1', 'running', 'z'),
      ],
      ['a', 'b', 'local'],
    );
    expect(sorted.queued.map((r) => r.id)).toEqual(['q', 'r']);
    expect(Object.fromEntries([...sorted.byHost].map(([h, rs]) => [h, rs.map((r) => r.id)]))).toEqual({
      a: ['a1'],
      // From before hosts existed: it ran on the local Podman.
      local: ['old'],
      b: ['b1'],
    });
    expect(sorted.lost).toEqual([
      {
        request: expect.objectContaining({ sessionId: 'z1' }),
        outcome: {
          outcome: 'abandoned',
          phase: 'running',
          message: expect.stringMatching(/^its host z is no longer configured/),
        },
      },
    ]);
  });

  it('abandons what waited for a host past the grace period, saying how long', () => {
    const [settled] = abandonedWaiting([record('a1', 'running', 'a')], 'a', 600_000);
    expect(settled?.outcome).toMatchObject({ outcome: 'abandoned', phase: 'running' });
    expect(settled?.outcome.message).toMatch(/host a did not answer within 10m \(daemon.host_down_grace\)/);
  });

  it('stops running containers nobody plans for (sessions over, or not rebuilt), and nothing else', () => {
    expect(
      staleContainers(
        [c('done', 'running'), c('planned', 'running'), c('exited', 'exited'), c('stranger', 'running')],
        new Set(['planned']),
      ),
    ).toEqual(['agentd-x-demo-done', 'agentd-x-demo-stranger']);
  });

  it('removes the dead containers kept for the plan that it did not adopt', () => {
    expect(
      keptDeadContainers(
        [
          c('adopted', 'exited'),
          c('late', 'exited'),
          c('never', 'created'),
          c('other', 'exited'),
          c('live', 'running'),
        ],
        new Set(['adopted', 'late', 'never', 'live']),
        new Set(['adopted']),
      ),
    ).toEqual(['agentd-x-demo-late', 'agentd-x-demo-never']);
  });
});

describe('a session on a host that does not see this machine', () => {
  const agent = { ...(AGENTS[1] as AgentConfig) };
  const session = assembleSession(
    {
      ...request('0123456789abcdef', 'norepo'),
      work: {
        request: { bytes: 3, sha256: 'a'.repeat(64) },
        inputs: [{ name: 'notes.md', bytes: 1, sha256: 'b'.repeat(64) }],
      },
    },
    agent,
    { credentials: [] },
  );
  const settings = { instanceId: 'e'.repeat(32), stopGraceMs: 1000, workDir: '/var/lib/agentd/work' };

  it('gets its work copied in and its output out instead of bind mounts of the work dir', () => {
    const plan = planRun(session, { ...settings, copyHosts: ['far'] }, 'far');
    expect(plan.container.mounts?.map((m) => m.source) ?? []).not.toContainEqual(
      expect.stringContaining('/var/lib/agentd/work'),
    );
    expect(plan.copyIn).toEqual({
      dir: '/var/lib/agentd/work/0123456789abcdef',
      entries: ['request', 'input'],
    });
    expect(plan.copyOut).toEqual({
      from: '/run/agentd/out/out.tar',
      to: '/var/lib/agentd/work/0123456789abcdef/out/out.tar',
    });
    expect(plan.container.env).toMatchObject({
      AGENTD_REQUEST_FILE: '/agentd/request',
      AGENTD_INPUT_DIR: '/agentd/input',
      AGENTD_SETUP_COPY: '/run/agentd/out',
    });
    expect(plan.labels['io.agentd.host']).toBe('far');
  });

  it('on a host that sees this machine, mounts them as before', () => {
    const plan = planRun(session, { ...settings, copyHosts: ['far'] }, 'near');
    expect(plan.copyIn).toBeUndefined();
    expect(plan.copyOut).toBeUndefined();
    expect(plan.container.mounts?.map((m) => m.target)).toEqual(
      expect.arrayContaining(['/agentd/request', '/agentd/input', '/run/agentd/out']),
    );
  });
});
