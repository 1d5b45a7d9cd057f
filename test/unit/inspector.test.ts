import { describe, expect, it } from 'vitest';
import { assign, createActor, createMachine, fromPromise, setup } from 'xstate';
import { InspectorHub, type InspectorMessage } from '../../src/inspector/hub.js';
import { machineStructure } from '../../src/inspector/structure.js';
import { daemonMachine } from '../../src/machines/daemon.machine.js';
import { secretFormsIn } from '../helpers/secret-forms.js';

const SECRET = 'hunter2-secret-value';

/** A runner-like grandchild, a session-like child that invokes it (both holding a secret), and a parent that spawns the child. */
const grandchild = createMachine({
  id: 'runner',
  types: {} as { context: { token: string } },
  context: { token: SECRET },
  initial: 'running',
  states: { running: {} },
});
const child = setup({
  types: {} as { context: { token: string }; events: { type: 'go'; token: string } },
  actors: { grandchild },
}).createMachine({
  id: 'session',
  context: { token: SECRET },
  initial: 'waiting',
  states: {
    waiting: { invoke: { id: 'runner', src: 'grandchild' }, on: { go: 'finished' } },
    finished: { type: 'final' },
  },
});
const parent = setup({
  types: {} as { context: { token: string }; events: { type: 'spawn'; token: string } },
  actors: { child, work: fromPromise(async () => SECRET) },
}).createMachine({
  id: 'daemon',
  context: { token: SECRET },
  initial: 'idle',
  states: {
    idle: {
      invoke: { src: 'work', onDone: 'ready' },
    },
    ready: {
      on: {
        spawn: {
          actions: assign(({ spawn, event }) => {
            spawn('child', { id: 'abc123' });
            return { token: event.token };
          }),
        },
      },
    },
  },
});

function run() {
  const hub = new InspectorHub({ machines: { daemon: parent, session: child, runner: grandchild } });
  const seen: InspectorMessage[] = [];
  hub.subscribe((m) => seen.push(m));
  // A listener that throws must not reach the actors.
  hub.subscribe(() => {
    throw new Error('broken page');
  });
  const actor = createActor(parent, { inspect: hub.inspect }).start();
  return { hub, seen, actor };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

describe('inspector hub', () => {
  it('reports daemon and session states and event types, nothing from contexts or payloads', async () => {
    const { hub, seen, actor } = run();
    await settle();
    actor.send({ type: 'spawn', token: SECRET });
    const session = actor.getSnapshot().children.abc123;
    expect(session).toBeDefined();
    session?.send({ type: 'go', token: SECRET });

    expect(secretFormsIn(JSON.stringify(seen), SECRET)).toEqual([]);
    expect(secretFormsIn(JSON.stringify(hub.replay()), SECRET)).toEqual([]);
    const snapshots = seen.filter((m) => m.kind === 'snapshot');
    expect(snapshots.map((m) => [m.machine, m.value, m.status])).toEqual(
      expect.arrayContaining([
        ['daemon', 'idle', 'active'],
        ['daemon', 'ready', 'active'],
        ['session', 'waiting', 'active'],
        ['runner', 'running', 'active'],
        ['session', 'finished', 'done'],
      ]),
    );
    expect(snapshots.find((m) => m.machine === 'session')).toMatchObject({ sessionId: 'abc123' });
    // A runner is shown as its session's.
    expect(snapshots.find((m) => m.machine === 'runner')).toMatchObject({ sessionId: 'abc123' });
    const events = seen.filter((m) => m.kind === 'event');
    expect(events).toContainEqual(
      expect.objectContaining({ machine: 'daemon', event: 'spawn', source: null }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({
        machine: 'session',
        sessionId: 'abc123',
        event: 'xstate.init',
        source: 'daemon',
      }),
    );
    // The promise actor is not a chart: its own events and snapshots are left out.
    expect(seen.every((m) => m.kind === 'reset' || ['daemon', 'session', 'runner'].includes(m.machine))).toBe(
      true,
    );
    actor.stop();
  });

  it('replays the current state of every actor, finished sessions included', async () => {
    const { hub, actor } = run();
    await settle();
    actor.send({ type: 'spawn', token: SECRET });
    actor.getSnapshot().children.abc123?.send({ type: 'go', token: SECRET });
    const replay = hub.replay();
    expect(replay[0]).toEqual({ kind: 'reset' });
    const states = replay.filter((m) => m.kind === 'snapshot').map((m) => [m.machine, m.value, m.status]);
    expect(states).toEqual([
      ['daemon', 'ready', 'active'],
      ['runner', 'running', 'stopped'],
      ['session', 'finished', 'done'],
    ]);
    actor.stop();
  });
});

describe('machine structure', () => {
  it('walks the daemon machine into nested states and named transitions', () => {
    const json = machineStructure(daemonMachine);
    expect(json.id).toBe('daemon');
    const shutdown = json.root.states.find((s) => s.key === 'shutdown');
    expect(shutdown).toMatchObject({ type: 'compound', initial: 'draining', path: 'shutdown' });
    expect(shutdown?.states.map((s) => s.path)).toEqual(['shutdown.draining', 'shutdown.stopped']);
    expect(json.transitions).toContainEqual(
      expect.objectContaining({ source: 'reconciling', targets: ['opening'], event: 'done: reconcile' }),
    );
    expect(json.transitions).toContainEqual(
      expect.objectContaining({ source: 'ready', event: 'trigger', guard: 'sessionIdRecorded', targets: [] }),
    );
    expect(json.transitions).toContainEqual(
      expect.objectContaining({
        source: 'shutdown.draining',
        event: 'always',
        guard: 'and(noSessionsRunning, not(hostReconciling))',
        targets: ['shutdown.stopped'],
      }),
    );
  });
});
