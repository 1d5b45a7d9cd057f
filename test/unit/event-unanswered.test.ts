/**
 * The `event` request (`agentd send`) over the real daemon machine, in the states where the machine
 * answers a trigger or a cancel with nothing: it has stopped while the socket is still open (the
 * daemon's last records and sweeps come after the machine, the socket's close last), and a cancel while
 * the socket opens. Each event still gets its refusal, as the trigger and cancel requests do, so
 * `agentd send` counts it as rejected (exit 1) rather than as done.
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createActor } from 'xstate';
import type { SessionJournal } from '../../src/daemon/journal.js';
import { createDaemonPort } from '../../src/daemon/port.js';
import { dispatch } from '../../src/protocol/dispatch.js';
import { fakeConnection } from '../helpers/fake-connection.js';
import { AGENTS, type FakeOptions, Fakes, settle } from '../helpers/machine-fakes.js';

const ID = '00000000000000e1';

afterEach(() => {
  vi.restoreAllMocks();
});

async function daemon(options: FakeOptions = {}, onShutdown?: () => void) {
  const fakes = new Fakes(options);
  const actor = createActor(fakes.daemon(), { input: { agents: AGENTS, maxSessions: 2 } });
  actor.start();
  await settle();
  const port = createDaemonPort({
    actor,
    journal: { used: () => false, record: () => undefined } as unknown as SessionJournal,
    reload: async () => ({ applied: false }) as never,
    version: '0.0.0',
    instanceId: 'test',
    socket: '/nowhere',
    log: pino({ level: 'silent' }),
    ...(onShutdown === undefined ? {} : { onShutdown }),
  });
  const { connection, sent } = fakeConnection();
  const send = (event: object) => {
    sent.length = 0;
    dispatch(JSON.stringify({ v: 2, id: 'e', type: 'event', event }), connection, port);
    expect(sent).toHaveLength(1);
    return sent[0] as { type: string; answers: { type: string; code?: string; reason?: string }[] };
  };
  return { actor, send };
}

describe('event: a shutdown over the socket takes the path of a SIGTERM', () => {
  it('main.ts is told of each shutdown event (agentd stop, send) before the machine gets it, and of nothing else', async () => {
    const seen: string[] = [];
    const d = await daemon({}, () => seen.push(String(d.actor.getSnapshot().value)));
    d.send({ type: 'cancel', sessionId: ID });
    d.send({ type: 'trigger', agent: 'nosuch', sessionId: ID });
    expect(seen).toEqual([]);
    // Before, nothing was told: the log had no word of who asked, and a reload under way went on.
    expect(d.send({ type: 'shutdown' })).toMatchObject({ state: 'shutdown.draining' });
    expect(seen).toEqual(['ready']);
    d.send({ type: 'shutdown' });
    expect(seen).toHaveLength(2);
    d.actor.stop();
  });
});

describe('event: what the machine answers nothing to', () => {
  it('a trigger and a cancel after the machine has stopped are refused, not answered with an empty list', async () => {
    const d = await daemon();
    expect(d.actor.getSnapshot().matches('ready')).toBe(true);
    expect(d.send({ type: 'shutdown' })).toMatchObject({ answers: [], state: 'shutdown.draining' });
    expect(d.actor.getSnapshot().matches({ shutdown: 'stopped' })).toBe(true);
    // As src/daemon/main.ts does once the machine is stopped; its socket closes only later.
    d.actor.stop();
    // XState's development build (the tests') warns of events sent to a stopped actor.
    vi.spyOn(console, 'warn').mockImplementation(() => {});

    const trigger = d.send({ type: 'trigger', agent: 'demo', sessionId: ID });
    expect(trigger).toMatchObject({ type: 'event.result', state: 'shutdown.draining' });
    expect(trigger.answers).toEqual([
      {
        type: 'trigger.rejected',
        sessionId: ID,
        code: 'not_accepting',
        reason: 'the daemon is not accepting triggers',
      },
    ]);
    expect(d.send({ type: 'cancel', sessionId: ID }).answers).toEqual([
      { type: 'cancel.rejected', sessionId: ID, reason: `session ${ID} cannot be cancelled now` },
    ]);
    // A shutdown has no answer of its own.
    expect(d.send({ type: 'shutdown' }).answers).toEqual([]);
  });

  it('a cancel while the socket opens is refused', async () => {
    const d = await daemon({ openSocket: 'manual' });
    expect(d.actor.getSnapshot().matches('opening')).toBe(true);
    expect(d.send({ type: 'cancel', sessionId: ID }).answers).toEqual([
      { type: 'cancel.rejected', sessionId: ID, reason: `session ${ID} cannot be cancelled now` },
    ]);
    // The machine's own answers are kept as they are.
    expect(d.send({ type: 'trigger', agent: 'demo', sessionId: ID }).answers).toEqual([
      { type: 'trigger.rejected', sessionId: ID, code: 'not_accepting', reason: 'daemon is starting' },
    ]);
    d.actor.stop();
  });
});
