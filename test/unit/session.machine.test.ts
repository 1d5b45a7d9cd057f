import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { type ActorRefFrom, createActor, setup } from 'xstate';
import type {
  AdoptedSession,
  SessionFinishedEvent,
  SessionInput,
  sessionMachine,
} from '../../src/machines/session.machine.js';
import { sessionPhaseOf } from '../../src/machines/session.machine.js';
import { revealSession } from '../../src/sessions/assemble.js';
import {
  Fakes,
  REPO_TOKEN,
  resolvedCredentials,
  SECRET,
  sessionInput,
  settle,
} from '../helpers/machine-fakes.js';
import { secretFormsIn } from '../helpers/secret-forms.js';

type SessionRef = ActorRefFrom<typeof sessionMachine>;

/**
 * Runs a session under a minimal parent, as the daemon spawns it, so `notifyDaemon` (sendParent) has
 * somewhere to go and the test sees what the daemon would receive.
 */
function start(fakes: Fakes, input: SessionInput = sessionInput('s1')) {
  const finished: SessionFinishedEvent[] = [];
  const parent = setup({
    types: { events: {} as SessionFinishedEvent },
    actors: { session: fakes.session() },
  }).createMachine({
    invoke: { id: 's1', src: 'session', input },
    on: { 'session.finished': { actions: ({ event }) => finished.push(event) } },
  });
  const actor = createActor(parent).start();
  const session = actor.getSnapshot().children.s1 as SessionRef;
  return { actor, session, finished };
}

/** The session's top-level state (`run` for any state inside run). */
function state(session: SessionRef): string {
  const { value } = session.getSnapshot();
  return typeof value === 'string' ? value : (Object.keys(value)[0] as string);
}

function phase(session: SessionRef): string {
  return sessionPhaseOf(session.getSnapshot());
}

/** Fails when a credential value shows in any serialised or inspected form of the session. */
function expectNoSecrets(session: SessionRef): void {
  const forms = [
    JSON.stringify(session.getSnapshot()),
    JSON.stringify(session.getPersistedSnapshot()),
    inspect(session.getSnapshot().context, { depth: null }),
    inspect(session.getPersistedSnapshot(), { depth: null }),
  ];
  for (const form of forms) {
    expect(secretFormsIn(form, SECRET)).toEqual([]);
    expect(secretFormsIn(form, REPO_TOKEN)).toEqual([]);
  }
}

describe('session machine', () => {
  it('resolves credentials, assembles, runs and reports, then tells the daemon', async () => {
    const fakes = new Fakes();
    const { session, finished } = start(fakes);
    await settle();
    expect(state(session)).toBe('run');
    const run = fakes.run('s1');
    // The runner gets the assembled session; its values unwrap only at the runner boundary.
    const revealed = revealSession(run.input.session ?? expect.fail('runner got no assembled session'));
    expect(revealed.spec.credentials).toEqual([{ name: 'API_KEY', value: Buffer.from(SECRET) }]);
    expect(revealed.invocation.repoToken).toEqual(Buffer.from(REPO_TOKEN));
    expect(revealed.invocation.repoUrl).toBe('https://git.example/demo.git');
    expect(session.getSnapshot().context.resolved).toBeUndefined();

    run.finish('succeeded');
    await settle();
    const outcome = {
      outcome: 'succeeded',
      phase: 'running',
      exitCode: 0,
      timings: { creating: 1, running: 2 },
    };
    expect(fakes.reports).toEqual([{ sessionId: 's1', outcome, via: 'reportOutcome', tornDownBefore: true }]);
    expect(session.getSnapshot().status).toBe('done');
    expect(state(session)).toBe('done');
    expect(finished).toEqual([{ type: 'session.finished', sessionId: 's1', outcome }]);
  });

  it('announces every phase: resolving from the machine, the rest from the runner, whose tags say where it is', async () => {
    const fakes = new Fakes();
    const { session } = start(fakes);
    expect(phase(session)).toBe('resolving');
    await settle();
    const run = fakes.run('s1');
    expect(phase(session)).toBe('creating');
    run.phase('cloning');
    expect(phase(session)).toBe('cloning');
    run.phase('running');
    expect(phase(session)).toBe('running');
    run.finish('failed', { exitCode: 3, message: 'command exited with code 3' });
    await settle();
    expect(fakes.announced.map((a) => a.phase)).toEqual([
      'resolving',
      'creating',
      'cloning',
      'running',
      'tearing_down',
    ]);
    expect(phase(session)).toBe('finished');
    expect(fakes.reports[0]?.outcome).toMatchObject({ outcome: 'failed', exitCode: 3 });
  });

  it('reports an error in phase resolving when credentials cannot be resolved, without running', async () => {
    const fakes = new Fakes({ credentials: new Error('environment variable API_KEY is not set') });
    const { session, finished } = start(fakes);
    await settle();
    expect(fakes.started).toEqual([]);
    const outcome = {
      outcome: 'error',
      phase: 'resolving',
      message: 'environment variable API_KEY is not set',
    };
    expect(fakes.reports).toEqual([{ sessionId: 's1', outcome, via: 'reportOutcome' }]);
    expect(state(session)).toBe('done');
    expect(finished).toEqual([{ type: 'session.finished', sessionId: 's1', outcome }]);
  });

  it('ends cancelled without running when cancelled while resolving', async () => {
    const fakes = new Fakes({ credentials: 'manual' });
    const { session, finished } = start(fakes);
    await settle();
    expect(state(session)).toBe('resolveCredentials');
    session.send({ type: 'cancel' });
    expect(fakes.signals.credentials[0]?.aborted).toBe(true);
    // A resolution that completes late changes nothing.
    fakes.credentialCalls.get('s1')?.resolve(resolvedCredentials());
    await settle();
    expect(fakes.started).toEqual([]);
    expect(fakes.reports.map((r) => r.outcome)).toEqual([
      {
        outcome: 'cancelled',
        phase: 'resolving',
        message: 'session cancelled before its container was created',
      },
    ]);
    expect(finished).toHaveLength(1);
    expectNoSecrets(session);
  });

  it('passes a cancel during run to the runner, which reports cancelled after teardown', async () => {
    const fakes = new Fakes({ onCancel: 'note' });
    const { session, finished } = start(fakes);
    await settle();
    const run = fakes.run('s1');
    run.phase('running');
    session.send({ type: 'cancel' });
    expect(run.cancelRequested).toBe(true);
    expect(state(session)).toBe('run');
    run.finish('cancelled');
    await settle();
    expect(run.tornDown).toBe(true);
    expect(finished[0]?.outcome).toMatchObject({ outcome: 'cancelled', message: 'session cancelled' });
  });

  it('reports an error outcome when the runner actor fails', async () => {
    const fakes = new Fakes();
    const { session, finished } = start(fakes);
    await settle();
    fakes.run('s1').phase('cloning');
    fakes.run('s1').fail(new Error('podman went away'));
    await settle();
    // A failing runner machine is a bug: its phase is gone with it, so the report says `creating`.
    const outcome = { outcome: 'error', phase: 'creating', message: 'runner failed: podman went away' };
    expect(fakes.reports.map((r) => r.outcome)).toEqual([outcome]);
    expect(session.getSnapshot().context.session).toBeUndefined();
    expect(finished[0]?.outcome).toEqual(outcome);
  });

  it('reports an error outcome when the runner throws as it starts', async () => {
    const fakes = new Fakes({ runnerThrows: new Error('cannot reveal session') });
    const { finished } = start(fakes);
    await settle();
    // The phase is not asserted: it is still `resolving` here, which the report questions.
    expect(finished[0]?.outcome).toMatchObject({
      outcome: 'error',
      message: 'runner failed: cannot reveal session',
    });
  });

  it('still ends and notifies the daemon when the report cannot be written', async () => {
    const fakes = new Fakes({ failReport: true });
    const { session, finished } = start(fakes);
    await settle();
    fakes.run('s1').finish('timed_out');
    await settle();
    expect(state(session)).toBe('done');
    expect(finished[0]?.outcome.outcome).toBe('timed_out');
  });

  it("takes an adopted session to run without resolving credentials: its runner masks with its container's", async () => {
    const fakes = new Fakes({ credentials: 'manual' });
    const adopted: AdoptedSession = { container: 'agentd-abc-s1', phase: 'running', remainingMs: 5_000 };
    const { session, finished } = start(fakes, { ...sessionInput('s1'), adopted });
    await settle();
    expect(fakes.credentialCalls.size).toBe(0);
    expect(state(session)).toBe('run');
    // In the phase its container was found in, never `resolving`.
    expect(phase(session)).toBe('running');
    expect(fakes.announced.map((a) => a.phase)).not.toContain('resolving');
    const run = fakes.run('s1');
    expect(run.input.adopted).toEqual(adopted);
    expect(run.input.session?.spec.credentials).toEqual([]);
    run.finish('succeeded');
    await settle();
    expect(finished[0]?.outcome.outcome).toBe('succeeded');
  });

  it('never shows credential values in snapshots, persisted snapshots or inspection', async () => {
    const fakes = new Fakes({ credentials: 'manual', onCancel: 'note' });
    const { actor, session } = start(fakes);
    await settle();
    expectNoSecrets(session);
    fakes.credentialCalls.get('s1')?.resolve(resolvedCredentials());
    await settle();
    expect(state(session)).toBe('run');
    // The assembled session with its values is in context now (and in the runner's input).
    expect(session.getSnapshot().context.session).toBeDefined();
    expectNoSecrets(session);
    expect(secretFormsIn(JSON.stringify(actor.getPersistedSnapshot()), SECRET)).toEqual([]);
    expect(JSON.stringify(session.getSnapshot())).toContain('[redacted]');
    fakes.run('s1').finish('succeeded');
    await settle();
    expectNoSecrets(session);
  });
});
