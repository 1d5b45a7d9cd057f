/** Crash recovery planning (src/daemon/recovery.ts): the fate of each session an earlier daemon left. */
import { describe, expect, it } from 'vitest';
import type { ContainerSummary } from '../../src/adapters/podman.js';
import { LABEL_AGENT, LABEL_INSTANCE, LABEL_SESSION } from '../../src/constants.js';
import { planRecovery, readWhenExited } from '../../src/daemon/recovery.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import { AGENTS } from '../helpers/machine-fakes.js';

const NOW = Date.parse('2026-01-01T00:10:00.000Z');
const STARTED = '2026-01-01T00:00:00.000Z';

function record(
  id: string,
  phase: SessionRecord['phase'],
  extra: Partial<SessionRecord> = {},
): SessionRecord {
  return {
    version: 1,
    id,
    agent: 'demo',
    repo: 'https://git.example/demo.git',
    acceptedAt: STARTED,
    phase,
    phases: [{ phase: 'queued', at: STARTED }],
    ...(phase === 'queued' ? {} : { startedAt: STARTED }),
    ...extra,
  };
}

function container(session: string, state: string, extra: Partial<ContainerSummary> = {}): ContainerSummary {
  return {
    Id: `id-${session}`,
    Names: [`agentd-x-demo-${session}`],
    State: state,
    Labels: { [LABEL_INSTANCE]: 'x', [LABEL_SESSION]: session, [LABEL_AGENT]: 'demo' },
    ...extra,
  };
}

const id = (n: number) => n.toString(16).padStart(16, '0');

describe('recovery planning', () => {
  it('queues again what never started, oldest first', () => {
    const later = record(id(1), 'queued', { acceptedAt: '2026-01-01T00:05:00.000Z' });
    const earlier = record(id(2), 'queued');
    // Killed while its credentials were resolved: its record says creating before anything is made in
    // Podman, so it never ran (it used to be settled abandoned, "its container is gone").
    const resolving = record(id(3), 'resolving', { acceptedAt: '2026-01-01T00:01:00.000Z' });
    const plan = planRecovery([later, earlier, resolving], [], AGENTS, NOW);
    expect(plan.queued.map((q) => q.request.sessionId)).toEqual([id(2), id(3), id(1)]);
    expect(plan.adopted).toEqual([]);
    expect(plan.finished).toEqual([]);
  });

  it('adopts a session whose container still runs, with what is left of its timeout', () => {
    const plan = planRecovery(
      [record(id(1), 'cloning', { timeoutMs: 15 * 60_000 }), record(id(2), 'running')],
      [container(id(1), 'running'), container(id(2), 'running')],
      AGENTS,
      NOW,
    );
    expect(plan.adopted.map((a) => a.adopted)).toEqual([
      { container: `agentd-x-demo-${id(1)}`, phase: 'cloning', remainingMs: 5 * 60_000 },
      { container: `agentd-x-demo-${id(2)}`, phase: 'running' },
    ]);
  });

  it('never gives an adopted session more than its whole timeout, though the clock went back since its start', () => {
    // Two hours behind the record's start: its deadline looks three hours off with a one-hour timeout.
    const behind = Date.parse(STARTED) - 2 * 3_600_000;
    const plan = planRecovery(
      [
        record(id(1), 'running', { timeoutMs: 3_600_000 }),
        // The longest timeout there is: a delay past setTimeout's bound fires at once.
        record(id(2), 'running', { timeoutMs: 2_147_483_647 }),
      ],
      [container(id(1), 'running'), container(id(2), 'running')],
      AGENTS,
      behind,
    );
    expect(plan.adopted.map((a) => a.adopted.remainingMs)).toEqual([3_600_000, 2_147_483_647]);
  });

  it('adopts a running session whose container exited unseen, to read what it printed meanwhile', () => {
    const plan = planRecovery(
      [record(id(1), 'running', { timeoutMs: 60 * 60_000 })],
      [container(id(1), 'exited', { ExitCode: 3 })],
      AGENTS,
      NOW,
    );
    expect(plan.finished).toEqual([]);
    // Its log is read from where the last daemon's copy ends; no timeout: it exited already.
    expect(plan.adopted.map((a) => a.adopted)).toEqual([
      { container: `agentd-x-demo-${id(1)}`, phase: 'running', exited: true },
    ]);
    // On a remote host the copies of its values are out of reach (its output would be withheld) and a
    // connection that drops would leave it abandoned: its exit code settles it, as before.
    const remote = planRecovery(
      [record(id(1), 'running', { timeoutMs: 60 * 60_000 })],
      [container(id(1), 'exited', { ExitCode: 3 })],
      AGENTS,
      NOW,
      { remote: true },
    );
    expect(remote.adopted).toEqual([]);
    expect(remote.finished.map((f) => [f.outcome.outcome, f.outcome.exitCode])).toEqual([['succeeded', 3]]);
    expect(readWhenExited(record(id(1), 'running'), { remote: true })).toBe(false);
    expect(readWhenExited(record(id(1), 'cloning'), { remote: true })).toBe(true);
  });

  it('settles a session whose container exited after its command ran with that exit code and its kind', () => {
    // Tearing down: its output was all read. An agent no longer configured: nobody reads it.
    const plan = planRecovery(
      [
        record(id(2), 'tearing_down'),
        record(id(3), 'tearing_down'),
        { ...record(id(4), 'running'), agent: 'gone' },
      ],
      [
        container(id(2), 'exited', { ExitCode: 5 }),
        container(id(3), 'exited', { ExitCode: 3 }),
        container(id(4), 'exited', { ExitCode: 0 }),
      ],
      AGENTS,
      NOW,
    );
    expect(plan.adopted).toEqual([]);
    expect(plan.finished.map((f) => [f.outcome.outcome, f.outcome.exitCode, f.outcome.kind])).toEqual([
      ['failed', 5, 'work_failed'],
      ['succeeded', 3, 'blocked'],
      ['succeeded', 0, 'success'],
    ]);
    // Its log ends where the daemon that died read it: the message says so.
    expect(plan.finished[2]?.outcome.message).toBe(
      "recovered after a daemon restart: the container had exited with code 0 (success); what it printed while no daemon watched, if anything, is not in the session's log",
    );
  });

  it('abandons, never settles by exit code 0, a session whose container a restart of its host made configured again', () => {
    const plan = planRecovery(
      [record(id(1), 'running'), record(id(2), 'tearing_down')],
      [container(id(1), 'configured', { ExitCode: 0 }), container(id(2), 'created', { ExitCode: 0 })],
      AGENTS,
      NOW,
    );
    expect(plan.adopted).toEqual([]);
    expect(plan.finished.map((f) => f.outcome.outcome)).toEqual(['abandoned', 'abandoned']);
    expect(plan.finished[0]?.outcome.message).toMatch(
      /while the session was running; its container is configured again, as Podman leaves a container that was running when its host restarted/,
    );
  });

  it('abandons, never settles by exit code 0 nor adopts, a session whose container Podman 5 made exited at its host restart', () => {
    // Podman 5 makes every container that ran `exited` at its host's next start, its exit never recorded:
    // an exit time of zero (year 1), exit code 0. One that exited for real has an exit time.
    const started = Date.parse(STARTED) / 1000 + 5;
    const zero = -62135596800;
    const plan = planRecovery(
      [
        record(id(1), 'running'),
        record(id(2), 'tearing_down'),
        record(id(3), 'cloning'),
        record(id(4), 'running'),
      ],
      [
        container(id(1), 'exited', { ExitCode: 0, StartedAt: started, ExitedAt: zero }),
        container(id(2), 'exited', { ExitCode: 0, StartedAt: started, ExitedAt: zero }),
        container(id(3), 'exited', { ExitCode: 0, StartedAt: started, ExitedAt: zero }),
        container(id(4), 'exited', { ExitCode: 0, StartedAt: started, ExitedAt: started + 1 }),
      ],
      AGENTS,
      NOW,
    );
    // The one that exited for real is read (adopted), as before.
    expect(plan.adopted.map((a) => a.request.sessionId)).toEqual([id(4)]);
    expect(plan.finished.map((f) => [f.request.sessionId, f.outcome.outcome, f.outcome.exitCode])).toEqual([
      [id(1), 'abandoned', undefined],
      [id(2), 'abandoned', undefined],
      [id(3), 'abandoned', undefined],
    ]);
    expect(plan.finished[0]?.outcome.message).toMatch(
      /while the session was running; its container is exited with no exit time, as Podman leaves a container that was running when its host restarted/,
    );
  });

  it('calls a session timed out when its container was stopped at its deadline by Podman', () => {
    const exitedAt = Date.parse(STARTED) / 1000 + 70;
    const plan = planRecovery(
      [record(id(1), 'running', { timeoutMs: 60_000 })],
      [container(id(1), 'exited', { ExitCode: 137, ExitedAt: exitedAt })],
      AGENTS,
      NOW,
    );
    expect(plan.finished[0]?.outcome).toMatchObject({
      outcome: 'timed_out',
      phase: 'running',
      exitCode: 137,
    });
    expect(plan.finished[0]?.outcome.message).toMatch(/timeout of 1m while running/);
  });

  it('calls a session timed out when the daemon stopped its container at its deadline and crashed before recording it', () => {
    // The session's deadline counts from before the container's start (its secret, podman's own start):
    // stopped on time, the container ran a little less than the timeout.
    const start = Date.parse(STARTED) / 1000;
    const plan = planRecovery(
      [record(id(1), 'running', { timeoutMs: 60_000 })],
      [
        container(id(1), 'exited', {
          ExitCode: 143,
          Created: start + 0.2,
          StartedAt: start + 0.6,
          ExitedAt: start + 60.3,
        }),
      ],
      AGENTS,
      NOW,
      { remote: true },
    );
    expect(plan.finished[0]?.outcome).toMatchObject({ outcome: 'timed_out', exitCode: 143 });
    // One that exited by itself (0) in the same last seconds before its deadline was not stopped.
    const itself = planRecovery(
      [record(id(2), 'running', { timeoutMs: 60_000 })],
      [
        container(id(2), 'exited', {
          ExitCode: 0,
          Created: start + 0.2,
          StartedAt: start + 0.6,
          ExitedAt: start + 59,
        }),
      ],
      AGENTS,
      NOW,
      { remote: true },
    );
    expect(itself.finished[0]?.outcome).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
  });

  it("settles a session the daemon died tearing down with the outcome decided before, not its container's exit code", () => {
    // Cancelled while podman run created its container (the run cut short exits 0), cancelled while it
    // ran (the stop's 143), a clone that failed (exit 128): the record kept what the teardown ends with.
    const phases = (...list: SessionRecord['phase'][]) => list.map((phase) => ({ phase, at: STARTED }));
    const plan = planRecovery(
      [
        record(id(1), 'tearing_down', {
          phases: phases('queued', 'resolving', 'creating', 'tearing_down'),
          decided: { outcome: 'cancelled', phase: 'creating', message: 'session cancelled while creating' },
        }),
        record(id(2), 'tearing_down', {
          phases: phases('queued', 'resolving', 'creating', 'cloning', 'running', 'tearing_down'),
          decided: {
            outcome: 'cancelled',
            phase: 'running',
            exitCode: 143,
            signal: 'SIGTERM',
            message: 'session cancelled while running',
          },
        }),
        record(id(3), 'tearing_down', {
          phases: phases('queued', 'resolving', 'creating', 'cloning', 'tearing_down'),
          decided: {
            outcome: 'failed',
            phase: 'cloning',
            exitCode: 128,
            message: 'git clone of x failed: boom',
          },
        }),
        // Its container still runs (its stop failed): it is removed, the decided outcome stands.
        record(id(4), 'tearing_down', {
          phases: phases('queued', 'resolving', 'creating', 'cloning', 'running', 'tearing_down'),
          decided: { outcome: 'succeeded', kind: 'success', phase: 'running', exitCode: 0 },
        }),
      ],
      [
        container(id(1), 'exited', { ExitCode: 0 }),
        container(id(2), 'exited', { ExitCode: 143 }),
        container(id(3), 'exited', { ExitCode: 128 }),
        container(id(4), 'running'),
      ],
      AGENTS,
      NOW,
    );
    expect(plan.adopted).toEqual([]);
    expect(plan.remove).toEqual([`agentd-x-demo-${id(4)}`]);
    const recovered = 'recovered after a daemon restart while it tore down';
    expect(plan.finished.map((f) => f.outcome)).toEqual([
      { outcome: 'cancelled', phase: 'creating', message: `session cancelled while creating (${recovered})` },
      {
        outcome: 'cancelled',
        phase: 'running',
        exitCode: 143,
        signal: 'SIGTERM',
        message: `session cancelled while running (${recovered})`,
      },
      {
        outcome: 'failed',
        phase: 'cloning',
        exitCode: 128,
        message: `git clone of x failed: boom (${recovered})`,
      },
      { outcome: 'succeeded', kind: 'success', phase: 'running', exitCode: 0, message: recovered },
    ]);
    // A record of a daemon that kept no decided outcome, torn down before its command ran: the exit
    // code is podman's or the setup step's, never a success nor the command's failure.
    const older = planRecovery(
      [
        record(id(5), 'tearing_down', { phases: phases('queued', 'resolving', 'creating', 'tearing_down') }),
        record(id(6), 'tearing_down', { phases: phases('queued', 'creating', 'cloning', 'tearing_down') }),
      ],
      [container(id(5), 'exited', { ExitCode: 0 }), container(id(6), 'exited', { ExitCode: 143 })],
      AGENTS,
      NOW,
    );
    expect(older.finished.map((f) => [f.outcome.outcome, f.outcome.exitCode, f.outcome.kind])).toEqual([
      ['abandoned', undefined, undefined],
      ['abandoned', undefined, undefined],
    ]);
    expect(older.finished[1]?.outcome.message).toMatch(
      /while the session was tearing_down, before its command ran \(it had got to cloning\); its container exited with code 143, which is not the command's exit/,
    );
  });

  it('gives a recovered session the exit code and signal a live one would have: none for a timeout while cloning', () => {
    const exitedAt = Date.parse(STARTED) / 1000 + 70;
    const plan = planRecovery(
      [
        record(id(1), 'cloning', { timeoutMs: 60_000 }),
        record(id(2), 'running', { timeoutMs: 60_000 }),
        record(id(3), 'tearing_down'),
      ],
      [
        // Podman's --timeout stopped the clone: 143 is the setup step's, not the command's.
        container(id(1), 'exited', { ExitCode: 143, ExitedAt: exitedAt }),
        container(id(2), 'exited', { ExitCode: 143, ExitedAt: exitedAt }),
        container(id(3), 'exited', { ExitCode: 137 }),
      ],
      AGENTS,
      NOW,
    );
    expect(plan.finished.map((f) => f.outcome)).toEqual([
      expect.objectContaining({ outcome: 'timed_out', phase: 'cloning' }),
      expect.objectContaining({ outcome: 'timed_out', phase: 'running', exitCode: 143, signal: 'SIGTERM' }),
      expect.objectContaining({ outcome: 'failed', kind: 'killed', exitCode: 137, signal: 'SIGKILL' }),
    ]);
    expect(plan.finished[0]?.outcome).not.toHaveProperty('exitCode');
    expect(plan.finished[0]?.outcome).not.toHaveProperty('signal');
  });

  it("judges a timeout by the container's own run, start to exit on its host's clock, not by the daemon's clock", () => {
    const start = Date.parse(STARTED) / 1000;
    // Its host's clock an hour ahead: it exited after the deadline by that clock, having run 30 s of 60.
    const ahead = planRecovery(
      [record(id(1), 'running', { timeoutMs: 60_000 })],
      [container(id(1), 'exited', { ExitCode: 3, StartedAt: start + 3600, ExitedAt: start + 3630 })],
      AGENTS,
      NOW,
      { remote: true },
    );
    // Its exit code settles it (on a remote host, not adopted to read its log).
    expect(ahead.finished[0]?.outcome).toMatchObject({ exitCode: 3 });
    expect(ahead.finished[0]?.outcome.outcome).not.toBe('timed_out');
    // Its host's clock an hour behind: it exited "before" the deadline, having run 70 s of 60.
    const behind = planRecovery(
      [record(id(2), 'running', { timeoutMs: 60_000 })],
      [container(id(2), 'exited', { ExitCode: 137, StartedAt: start - 3600, ExitedAt: start - 3530 })],
      AGENTS,
      NOW,
    );
    expect(behind.finished[0]?.outcome).toMatchObject({ outcome: 'timed_out', exitCode: 137 });
  });

  it('adopts a session whose container started and exited while its record said creating or cloning', () => {
    const plan = planRecovery(
      [record(id(1), 'creating'), record(id(2), 'cloning')],
      [
        { ...container(id(1), 'exited'), ExitCode: 3 },
        { ...container(id(2), 'exited'), ExitCode: 128 },
      ],
      AGENTS,
      NOW,
    );
    // Its log says whether the clone failed or the command ran, and how it ended: the runner reads it.
    expect(plan.adopted.map((a) => [a.request.sessionId, a.adopted])).toEqual([
      [id(1), { container: `agentd-x-demo-${id(1)}`, phase: 'cloning', exited: true }],
      [id(2), { container: `agentd-x-demo-${id(2)}`, phase: 'cloning', exited: true }],
    ]);
    expect(plan.finished).toEqual([]);
    // Past its deadline now, though it exited before it: reading its log is not the session running late.
    const late = planRecovery(
      [record(id(3), 'cloning', { timeoutMs: 5 * 60_000 })],
      [{ ...container(id(3), 'exited'), ExitCode: 0, ExitedAt: Date.parse(STARTED) / 1000 + 60 }],
      AGENTS,
      NOW,
    );
    expect(late.adopted.map((a) => a.adopted)).toEqual([
      { container: `agentd-x-demo-${id(3)}`, phase: 'cloning', exited: true },
    ]);
  });

  it('runs again a session killed while `podman run` made its container, before it started', () => {
    // Podman's zero time, as `podman ps -a` lists a container that never started.
    const never = { StartedAt: -62135596800, ExitedAt: -62135596800, ExitCode: 0 };
    const plan = planRecovery(
      [
        record(id(1), 'creating'),
        record(id(2), 'creating'),
        record(id(3), 'creating'),
        record(id(4), 'creating', { agent: 'retired' }),
      ],
      [
        container(id(1), 'created', never),
        // Podman 4 makes a container that ran `created` again at its host's restart: it has a start time.
        container(id(2), 'created', { StartedAt: Date.parse(STARTED) / 1000, ExitCode: 0 }),
        // No start time listed: it may have run.
        container(id(3), 'created'),
        container(id(4), 'created', never),
      ],
      AGENTS,
      NOW,
    );
    expect(plan.queued.map((q) => q.request.sessionId)).toEqual([id(1)]);
    const fates = Object.fromEntries(plan.finished.map((f) => [f.request.sessionId, f.outcome]));
    expect(Object.keys(fates).sort()).toEqual([id(2), id(3), id(4)]);
    expect(fates[id(4)]?.message).toMatch(/agent retired is no longer configured|never ran the command/);
  });

  it('runs again a session killed at creating before the call that makes its container, and only that one', () => {
    const never = { StartedAt: -62135596800, ExitedAt: -62135596800, ExitCode: 0 };
    const plan = planRecovery(
      [
        // Killed while it made its secrets: its record says the container's call was not started.
        record(id(1), 'creating', { containerCallStarted: false }),
        // Started: no container left may be one torn down while its record lagged.
        record(id(2), 'creating', { containerCallStarted: true }),
        // An older daemon's record does not say.
        record(id(3), 'creating'),
        record(id(4), 'creating', { containerCallStarted: false, agent: 'retired' }),
        // A container of it is listed after all: what it says decides, as before (adopted, to read its log).
        record(id(5), 'creating', { containerCallStarted: false }),
        // Still a never-started one whose container is listed runs again (removed first), with the marker set.
        record(id(6), 'creating', { containerCallStarted: true }),
      ],
      [container(id(5), 'exited', { ExitCode: 0 }), container(id(6), 'created', never)],
      AGENTS,
      NOW,
    );
    expect(plan.queued.map((q) => q.request.sessionId)).toEqual([id(1), id(6)]);
    expect(plan.adopted.map((a) => a.request.sessionId)).toEqual([id(5)]);
    const fates = Object.fromEntries(plan.finished.map((f) => [f.request.sessionId, f.outcome]));
    expect(Object.keys(fates).sort()).toEqual([id(2), id(3), id(4)]);
    expect(fates[id(2)]).toEqual({
      outcome: 'abandoned',
      phase: 'creating',
      message:
        'the daemon stopped while the session was creating, after it had started the podman call that makes its container, and no container of it is left, so whether its command ran is not known (a container torn down before its record said so leaves none either): it is not run again, trigger it again if it should run',
    });
    expect(fates[id(3)]?.message).toBe(
      'the daemon stopped while the session was creating and its container is gone',
    );
    expect(fates[id(4)]).toEqual({
      outcome: 'abandoned',
      phase: 'creating',
      message: 'agent retired is no longer configured',
    });
  });

  it('abandons, with the reason, what cannot be run or judged', () => {
    const plan = planRecovery(
      [
        record(id(1), 'creating'),
        record(id(2), 'cloning'),
        record(id(3), 'queued', { agent: 'retired' }),
        record(id(4), 'running', { agent: 'retired' }),
        record(id(5), 'cloning', { agent: 'retired' }),
      ],
      [
        container(id(2), 'created'),
        container(id(4), 'running'),
        { ...container(id(5), 'exited'), ExitCode: 0 },
      ],
      AGENTS,
      NOW,
    );
    const fates = Object.fromEntries(plan.finished.map((f) => [f.request.sessionId, f.outcome]));
    expect(fates[id(1)]).toMatchObject({
      outcome: 'abandoned',
      message: expect.stringMatching(/container is gone/),
    });
    expect(fates[id(2)]).toMatchObject({
      outcome: 'abandoned',
      message: expect.stringMatching(/never ran the command/),
    });
    // Started and exited with no daemon watching, and no agent to adopt it: the clone and the command
    // share the container, so the command may have run; the outcome does not say it did not, and says
    // why its log was not read (scripts/chaos.mjs, a reload removing the agent then a SIGKILL: the
    // message gave no reason, so an exit 0 with the report in the log looked unreadable).
    expect(fates[id(5)]).toMatchObject({
      outcome: 'abandoned',
      message:
        "the daemon stopped while the session was cloning; its container exited with code 0 with no daemon watching, and agent retired is no longer configured, so its log, which says how far the setup step got, was not read and whether the agent's command ran is not known",
    });
    expect(fates[id(3)]?.message).toMatch(/agent retired is no longer configured/);
    expect(fates[id(4)]?.message).toMatch(/agent retired is no longer configured/);
    expect(plan.queued).toEqual([]);
    expect(plan.adopted).toEqual([]);
  });
});
