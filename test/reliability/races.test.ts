/**
 * Races: events that land at the worst moment, many times over, each round's timing shifted a little.
 * A cancel crossing the agent's own exit, a timeout firing as the agent exits, a stop (and a forced
 * one) while sessions are queued, creating, running and tearing down, then a restart; clients that
 * trigger and hang up at once while status is polled. Against the real daemon and real Podman, every
 * session must get exactly one outcome of an allowed kind (one `session.outcome` line across the
 * daemon's lives, one record, once in `history`), the daemon ready, and nothing left in Podman or in
 * the state dir's work area.
 */
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import {
  gitAndGate,
  type LogLine,
  launchDaemon,
  leftoversAfterCleanup,
  startDaemon,
  type TestDaemon,
  writeDaemonConfig,
} from '../helpers/daemon.js';

const { gate, agent } = gitAndGate();

afterEach(async () => {
  gate.hold();
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

/** A trigger, retried while the daemon says to retry (triggers' files being written: a bound). */
async function trigger(d: TestDaemon, body: Record<string, unknown>): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const reply = await d.request({ type: 'trigger', ...body });
    if (reply?.type === 'accepted') return String(reply.sessionId);
    if (reply?.retryable !== true || attempt > 100) throw new Error(`trigger: ${JSON.stringify(reply)}`);
    await sleep(20);
  }
}

/** Every session.outcome line of these daemon lives, by session. */
function outcomeLines(lives: TestDaemon[]): Map<string, LogLine[]> {
  const out = new Map<string, LogLine[]>();
  for (const life of lives)
    for (const line of life.logs())
      if (line.event === 'session.outcome') {
        const id = String(line.session);
        out.set(id, [...(out.get(id) ?? []), line]);
      }
  return out;
}

/** The session files the state dir still holds beside the records (work dirs): none once all ended. */
function workLeft(d: TestDaemon): string[] {
  const left: string[] = [];
  for (const sub of ['work', 'sessions-work', 'notify']) {
    const dir = join(d.files.stateDir, sub);
    if (existsSync(dir)) for (const name of readdirSync(dir)) left.push(`${sub}/${name}`);
  }
  return left;
}

/**
 * Exactly one outcome per session, of an allowed kind, the same in the log, the record and history;
 * the daemon (the last life) ready and answering.
 */
async function expectOneOutcomeEach(
  lives: TestDaemon[],
  ids: string[],
  allowed: readonly string[],
): Promise<Map<string, string>> {
  const last = lives.at(-1) as TestDaemon;
  const settled = outcomeLines(lives.slice(0, -1));
  await Promise.all(
    ids.filter((id) => !settled.has(id)).map((id) => last.waitForOutcome(id, 90_000).catch(() => undefined)),
  );
  const lines = outcomeLines(lives);
  const kinds = new Map<string, string>();
  const problems: string[] = [];
  for (const id of ids) {
    const mine = lines.get(id) ?? [];
    if (mine.length !== 1) problems.push(`${id}: ${mine.length} outcome lines ${JSON.stringify(mine)}`);
    const kind = String(mine[0]?.outcome);
    kinds.set(id, kind);
    if (mine.length > 0 && !allowed.includes(kind)) problems.push(`${id}: outcome ${kind}`);
    const record = last.record(id);
    if (record?.outcome !== kind) problems.push(`${id}: record says ${record?.outcome}, log ${kind}`);
  }
  const history = (await last.request({ v: 2, type: 'history', limit: 1000 })) as {
    sessions: { id: string; outcome?: string }[];
  };
  for (const id of ids) {
    const seen = history.sessions.filter((s) => s.id === id);
    if (seen.length !== 1 || seen[0]?.outcome !== kinds.get(id))
      problems.push(`${id}: history has ${JSON.stringify(seen)}`);
  }
  // Each record sealed (written after the outcome line, so waited for a moment).
  const deadline = Date.now() + 15_000;
  let open = ids;
  while (open.length > 0 && Date.now() < deadline) {
    open = open.filter((id) => {
      const agentName = last.record(id)?.agent ?? '';
      const dir = join(last.files.stateDir, 'records', agentName, id);
      try {
        return (lstatSync(dir).mode & 0o222) !== 0;
      } catch {
        return true;
      }
    });
    if (open.length > 0) await sleep(100);
  }
  for (const id of open) problems.push(`${id}: its record directory is not sealed`);
  expect(problems).toEqual([]);
  const status = (await last.request({ type: 'status' })) as {
    state: string;
    running: unknown[];
    queued: unknown[];
  };
  expect(status.state).toBe('ready');
  expect(status.running).toEqual([]);
  expect(status.queued).toEqual([]);
  return kinds;
}

function tally(kinds: Iterable<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of kinds) out[k] = (out[k] ?? 0) + 1;
  return out;
}

describe('a signal as the stopped daemon exits', () => {
  it('a SIGTERM, SIGINT or SIGHUP in the last milliseconds of a finished stop does not kill it: it exits 0', {
    timeout: 120_000,
  }, async () => {
    let d = await startDaemon({ agents: [agent('quick', ['true'])] });
    const ends: string[] = [];
    const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
    for (let round = 0; round < 9; round++) {
      d.signal('SIGTERM');
      // daemon.stopped is the stop's last log line: the process ends within milliseconds of it. The
      // signal lands then, a little later each round.
      await d.waitForLog((l) => l.event === 'daemon.stopped');
      await sleep(round % 4);
      if (d.running) d.signal(signals[round % 3] as NodeJS.Signals);
      const end = await d.exited;
      ends.push(`${signals[round % 3]}: ${end.code} ${end.signal}`);
      d = launchDaemon(d.files);
      await d.ready();
    }
    expect(await d.stop()).toBe(0);
    expect(ends.filter((e) => !e.endsWith(' 0 null'))).toEqual([]);
  });
});

describe('a cancel crossing an exit', () => {
  it('a cancel crossing the agent’s own exit: one outcome each, succeeded or cancelled', {
    timeout: 240_000,
  }, async () => {
    gate.hold();
    const d = await startDaemon({
      agents: [agent('gated', gate.command)],
      daemon: { max_sessions: 10 },
    });
    const all: string[] = [];
    const PER_ROUND = 10;
    for (let round = 0; round < 3; round++) {
      const ids = await Promise.all(Array.from({ length: PER_ROUND }, () => trigger(d, { agent: 'gated' })));
      all.push(...ids);
      await gate.waitFor(PER_ROUND);
      gate.open();
      // Each session's cancel lands a little later than the one before: from before the agent's exit
      // through its teardown.
      await Promise.all(
        ids.map(async (id, i) => {
          await sleep(round * 3 + i * 12);
          await d.request({ type: 'cancel', sessionId: id });
        }),
      );
      await expectOneOutcomeEach([d], ids, ['succeeded', 'cancelled']);
      gate.hold();
    }
    // And as each tears down after its own exit, 0 to 9 ms after the phase is logged: the outcome is
    // decided, the cancel refused, the teardown finished.
    const ids = await Promise.all(Array.from({ length: PER_ROUND }, () => trigger(d, { agent: 'gated' })));
    all.push(...ids);
    await gate.waitFor(PER_ROUND);
    gate.open();
    const refused: unknown[] = [];
    await Promise.all(
      ids.map(async (id, i) => {
        await d.waitForPhase(id, 'tearing_down');
        await sleep(i);
        refused.push((await d.request({ type: 'cancel', sessionId: id }))?.type);
      }),
    );
    await expectOneOutcomeEach([d], ids, ['succeeded']);
    expect(refused).toEqual(ids.map(() => 'error'));
    gate.hold();
    const kinds = await expectOneOutcomeEach([d], all, ['succeeded', 'cancelled']);
    console.log('cancel vs exit', tally(kinds.values()), 'cancels in teardown', tally(refused.map(String)));
    expect(workLeft(d)).toEqual([]);
    expect(await d.stop()).toBe(0);
  });
});

const SLEEPER = ['sh', '-c', 'sleep "$(cat "$AGENTD_REQUEST_FILE")"'];
const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('stops, reloads, keys and clients at the worst moment', () => {
  it('the timeout firing as the agent exits: one outcome each, succeeded or timed_out', {
    timeout: 240_000,
  }, async () => {
    const d = await startDaemon({
      agents: [agent('sleeper', SLEEPER, { timeout: '4s' })],
      daemon: { max_sessions: 8 },
    });
    const all: string[] = [];
    for (let round = 0; round < 2; round++) {
      // Sleeps from 1.0 s to 2.4 s against a 2 s deadline counted from the run's start: some end before
      // it, some as it fires, some after; each round shifted by 20 ms.
      const ids = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          trigger(d, { agent: 'sleeper', request: b64((1 + i * 0.5 + round * 0.05).toFixed(3)) }),
        ),
      );
      all.push(...ids);
      await expectOneOutcomeEach([d], ids, ['succeeded', 'timed_out']);
    }
    const kinds = await expectOneOutcomeEach([d], all, ['succeeded', 'timed_out']);
    console.log('timeout vs exit', tally(kinds.values()));
    expect(workLeft(d)).toEqual([]);
    expect(await d.stop()).toBe(0);
  });

  it('a stop, then a forced stop, landing in every phase; a restart settles nothing twice', {
    timeout: 300_000,
  }, async () => {
    let d = await startDaemon({
      agents: [agent('sleeper', SLEEPER)],
      daemon: { max_sessions: 3, stop_grace: '1s' },
    });
    const lives: TestDaemon[] = [d];
    const all: string[] = [];
    const phasesHit = new Set<string>();
    const ROUNDS = 8;
    for (let round = 0; round < ROUNDS; round++) {
      const ids = await Promise.all(
        Array.from({ length: 5 }, () => trigger(d, { agent: 'sleeper', request: b64('0.6') })),
      );
      all.push(...ids);
      // The first stop from right after the triggers (queued, creating) to well into the run.
      await sleep((round * 211) % 2000);
      const status = (await d.request({ v: 2, type: 'status' })) as {
        running?: { phase?: string }[];
      };
      for (const s of status.running ?? []) phasesHit.add(String(s.phase));
      d.signal('SIGTERM');
      // The forced one: at once, or while the drain waits, or during teardown.
      await sleep((round * 137) % 1500);
      if (d.running) d.signal('SIGTERM');
      await d.waitForExit(60_000);
      const end = await d.exited;
      expect(
        end,
        `round ${round}: ${d
          .logs()
          .slice(-8)
          .map((l) => JSON.stringify(l))
          .join('\n')}`,
      ).toEqual({ code: 0, signal: null });
      d = launchDaemon(d.files);
      lives.push(d);
      await d.ready();
      const kinds = await expectOneOutcomeEach(lives, ids, ['succeeded', 'cancelled']);
      void kinds;
    }
    const kinds = await expectOneOutcomeEach(lives, all, ['succeeded', 'cancelled']);
    console.log('stop/force stop', tally(kinds.values()), 'phases seen at the stop', [...phasesHit]);
    expect(workLeft(d)).toEqual([]);
    expect(await d.stop()).toBe(0);
  });

  it('a reload that removes or changes the agent while its sessions are queued, creating, running', {
    timeout: 240_000,
  }, async () => {
    gate.hold();
    const withAgent = {
      agents: [agent('gated', gate.command), agent('other', ['true'])],
      daemon: { max_sessions: 2 },
    };
    const changed = {
      agents: [agent('gated', ['sh', '-c', 'exit 3']), agent('other', ['true'])],
      daemon: { max_sessions: 2 },
    };
    const without = { agents: [agent('other', ['true'])], daemon: { max_sessions: 2 } };
    const d = await startDaemon(withAgent);
    const all: string[] = [];
    for (let round = 0; round < 6; round++) {
      writeDaemonConfig(d.files, withAgent);
      const back = await d.request({ v: 2, type: 'reload' });
      expect(back?.type, JSON.stringify(back)).toBe('reloaded');
      gate.hold();
      const ids = await Promise.all(Array.from({ length: 4 }, () => trigger(d, { agent: 'gated' })));
      all.push(...ids);
      await sleep((round * 41) % 400);
      writeDaemonConfig(d.files, round % 2 === 0 ? without : changed);
      d.signal('SIGHUP');
      await sleep((round * 29) % 300);
      gate.open();
      // Every session keeps the definition it was accepted with: it waits at the gate and succeeds.
      await expectOneOutcomeEach([d], ids, ['succeeded']);
    }
    const kinds = await expectOneOutcomeEach([d], all, ['succeeded']);
    console.log('reload vs sessions', tally(kinds.values()));
    expect(workLeft(d)).toEqual([]);
    expect(await d.stop()).toBe(0);
  });

  it('two triggers with one key on two connections at once make one session, 30 times', async () => {
    const d = await startDaemon({ agents: [agent('quick', ['true'])], daemon: { max_sessions: 4 } });
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const key = `race-${i}`;
      const [a, b] = await Promise.all([
        d.request({ type: 'trigger', agent: 'quick', key }),
        d.request({ type: 'trigger', agent: 'quick', key }),
      ]);
      expect(a?.sessionId, JSON.stringify([a, b])).toBe(b?.sessionId);
      expect([a?.existing, b?.existing].filter((e) => e === true)).toHaveLength(1);
      ids.push(String(a?.sessionId));
      await sleep(i % 10);
    }
    expect(new Set(ids).size).toBe(30);
    await expectOneOutcomeEach([d], ids, ['succeeded']);
    expect(d.records()).toHaveLength(30);
    expect(workLeft(d)).toEqual([]);
    expect(await d.stop()).toBe(0);
  });

  it('300 clients that trigger and hang up at once while status is polled', {
    timeout: 240_000,
  }, async () => {
    gate.hold();
    const d = await startDaemon({ agents: [agent('gated', gate.command)], daemon: { max_sessions: 4 } });
    let polling = true;
    let slowest = 0;
    let polls = 0;
    const poller = (async () => {
      while (polling) {
        const start = Date.now();
        const s = await d.request({ type: 'status' });
        expect(s?.type).toBe('status');
        slowest = Math.max(slowest, Date.now() - start);
        polls++;
        await sleep(10);
      }
    })();
    for (let i = 0; i < 300; i++) {
      const socket = connect(d.socketPath);
      socket.on('error', () => {});
      socket.write(`${JSON.stringify({ v: 2, type: 'trigger', agent: 'gated', follow: i % 2 === 0 })}\n`);
      // Hang up at once, or a little later (as the reply or the stream begins).
      if (i % 3 === 0) socket.destroy();
      else setTimeout(() => socket.destroy(), i % 17);
      if (i % 10 === 0) await sleep(1);
    }
    await sleep(500);
    // Every trigger that was accepted is in the journal; let them all finish: the queued ones are
    // cancelled, the running ones released.
    const status = (await d.request({ v: 2, type: 'status' })) as { queued: { id: string }[] };
    await Promise.all(status.queued.map((s) => d.request({ type: 'cancel', sessionId: s.id })));
    gate.open();
    const ids = d.records().map((r) => r.id);
    expect(ids.length).toBeGreaterThan(0);
    await expectOneOutcomeEach([d], ids, ['succeeded', 'cancelled']);
    polling = false;
    await poller;
    console.log('trigger and hang up', { accepted: ids.length, polls, slowestStatusMs: slowest });
    expect(slowest).toBeLessThan(10_000);
    expect(workLeft(d)).toEqual([]);
    expect(await d.stop()).toBe(0);
  });
});
