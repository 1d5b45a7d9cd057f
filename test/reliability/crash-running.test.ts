/**
 * Crash recovery with containers that outlive the daemon: SIGKILL during the clone, during the
 * command and with sessions queued, then a new daemon on the same socket and state dir. Also the
 * engine-enforced deadline: a session's container stops on time even if no daemon ever comes back.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchDaemon, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { type Gate, startGate } from '../helpers/gate.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import {
  afterEachTest,
  agent,
  crash,
  inspectContainer,
  killOrphans,
  recordFigures,
  waitUntil,
} from './harness.js';

let git: GitServer;
let stall: Gate;
let gateA: Gate;
let gateB: Gate;
const daemons: TestDaemon[] = [];
const figures = { faultsInjected: 0, sessionsRecovered: 0, sessions: 0, objectsLeftBehind: 0 };

beforeAll(async () => {
  [git, stall, gateA, gateB] = await Promise.all([startGitServer(), startGate(), startGate(), startGate()]);
});

afterAll(async () => {
  await Promise.allSettled([git?.stop(), stall?.close(), gateA?.close(), gateB?.close()]);
  await recordFigures('crash-running', figures);
});

afterEach(() => afterEachTest(figures, daemons));

function track(d: TestDaemon): TestDaemon {
  daemons.push(d);
  return d;
}

const TOKEN_ENV = 'AGENTD_REL_CRASH_TOKEN';
const token = `crash-token-${randomBytes(8).toString('hex')}`;
const withToken = { credentials: [{ name: 'REL_TOKEN', source: `env:${TOKEN_ENV}` }] };

/** Starts a session with `trigger --detach` and returns its id. */
async function detach(d: TestDaemon, name: string, extra: string[] = []): Promise<string> {
  const result = await d.cli(['trigger', name, '--detach', ...extra]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
}

/** The next daemon of the same instance (same socket and state dir), ready. */
async function restart(previous: TestDaemon): Promise<TestDaemon> {
  const next = track(launchDaemon(previous.files, { env: { [TOKEN_ENV]: token } }));
  await next.ready();
  return next;
}

/** Unix sockets bound to path, as the kernel lists them: the listening one and each accepted one. */
function connectionsTo(path: string): number {
  return readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .filter((line) => line.endsWith(` ${path}`)).length;
}

interface StatusJson {
  state: string;
  running: { id: string; phase: string; startedAt: string }[];
  queued: { id: string; position: number }[];
  recent: { id: string; outcome?: string }[];
}

async function status(d: TestDaemon): Promise<StatusJson> {
  const result = await d.cli(['status', '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as StatusJson;
}

describe('crash recovery with live containers', () => {
  it('the engine stops a timed session on time even though the daemon never comes back', async () => {
    // Long enough for creating and cloning to be done first on a loaded machine (the deadline runs from
    // the session's start), so the crash comes while the command runs.
    const timeoutS = 8;
    const d = track(
      await startDaemon(
        { agents: [agent('sleeper', git.url(), ['sleep', '60'], { timeout: `${timeoutS}s`, ...withToken })] },
        { env: { [TOKEN_ENV]: token } },
      ),
    );
    const id = await detach(d, 'sleeper');
    await d.waitForPhase(id, 'running');
    const name = d.record(id)?.container ?? '';
    const running = await inspectContainer(name);
    const config = running?.Config as { Timeout?: number; StopTimeout?: number };
    // timeout + stop_grace 2s + 5s for archiving the output + 5s of slack for the daemon's own stop.
    const engineTimeoutS = timeoutS + 2 + 5 + 5;
    expect(config.Timeout, 'Podman --timeout of the session container').toBe(engineTimeoutS);
    await crash(d);
    figures.faultsInjected++;
    await killOrphans(d);
    const state = running?.State as { StartedAt: string };
    const startedAt = Date.parse(state.StartedAt);
    // Nobody supervises the container now: only Podman's own deadline can stop it.
    const exited = await waitUntil(
      async () => {
        const now = await inspectContainer(name);
        const s = now?.State as { Status: string; FinishedAt: string } | undefined;
        return s?.Status === 'exited' ? Date.parse(s.FinishedAt) : undefined;
      },
      () => `container ${name} to exit`,
      (engineTimeoutS + 15) * 1000,
      250,
    );
    expect(exited - startedAt, 'ran for its engine timeout, not its 60 s command').toBeLessThan(
      (engineTimeoutS + 3) * 1000,
    );
    expect(exited - startedAt).toBeGreaterThanOrEqual((engineTimeoutS - 1) * 1000);

    // A later daemon settles the session from the exited container: it ran past its timeout.
    const next = await restart(d);
    const record = await waitUntil(
      () => next.record(id)?.outcome && next.record(id),
      () => 'the recovered outcome',
    );
    expect(record).toMatchObject({ outcome: 'timed_out', phase: 'finished' });
    expect(record.message).toMatch(/timeout/);
    figures.sessionsRecovered++;
    figures.sessions++;
    expect(await inspectContainer(name), 'exited container removed at start').toBeUndefined();
    expect(await next.stop()).toBe(0);
  });

  it('adopts a session killed during its clone and enforces what is left of its timeout', async () => {
    stall.hold();
    const repo = `git://127.0.0.1:${stall.port}/stalled.git`;
    const d = track(
      await startDaemon(
        { agents: [agent('cloner', repo, ['true'], { timeout: '12s', ...withToken })] },
        { env: { [TOKEN_ENV]: token } },
      ),
    );
    const id = await detach(d, 'cloner');
    // The clone has connected to a server that never answers: the session is stuck cloning.
    await stall.waitFor(1);
    await d.waitForPhase(id, 'cloning');
    const startedAt = Date.parse(d.record(id)?.startedAt ?? '');
    await crash(d);
    figures.faultsInjected++;
    expect(d.record(id)).toMatchObject({ phase: 'cloning' });
    expect(d.record(id)?.outcome).toBeUndefined();

    const next = await restart(d);
    await next.waitForLog((l) => l.event === 'session.adopted' && l.session === id);
    const s = await status(next);
    expect(s.state).toBe('ready');
    expect(s.running).toMatchObject([{ id, phase: 'cloning' }]);

    const outcome = await next.waitForOutcome(id, 40_000);
    expect(outcome.outcome).toBe('timed_out');
    const record = next.record(id);
    expect(record).toMatchObject({ outcome: 'timed_out', phase: 'finished' });
    expect(record?.message).toMatch(/timeout of 12s while cloning/);
    const finishedAt = Date.parse(record?.finishedAt ?? '');
    // Stopped at its original deadline (plus the stop grace), not 12 s after the adoption.
    expect(finishedAt - startedAt).toBeGreaterThanOrEqual(12_000);
    expect(finishedAt - startedAt).toBeLessThan(12_000 + 2_000 + 3_000);
    figures.sessionsRecovered++;
    figures.sessions++;
    const after = await status(next);
    expect(after.running).toEqual([]);
    expect(after.recent.find((r) => r.id === id)?.outcome).toBe('timed_out');
    expect(await next.stop()).toBe(0);
  });

  it('reads the outcome of a session killed during its clone whose container ended before the restart', async () => {
    stall.hold();
    const repo = `git://127.0.0.1:${stall.port}/stalled.git`;
    const d = track(
      await startDaemon(
        { agents: [agent('cloner', repo, ['true'], withToken)] },
        { env: { [TOKEN_ENV]: token } },
      ),
    );
    const id = await detach(d, 'cloner');
    await stall.waitFor(1);
    await d.waitForPhase(id, 'cloning');
    const container = d.record(id)?.container ?? '';
    await crash(d);
    figures.faultsInjected++;
    // With no daemon watching, the clone fails (the server hangs up) and the container exits: the record
    // still says cloning.
    stall.open();
    await waitUntil(
      async () =>
        ((await inspectContainer(container))?.State as { Status?: string } | undefined)?.Status === 'exited',
      () => `container ${container} exited`,
    );
    expect(d.record(id)).toMatchObject({ phase: 'cloning' });

    const next = await restart(d);
    const outcome = await next.waitForOutcome(id, 40_000);
    // What the live session would have said: its log tells the clone failed, not that nothing is known.
    expect({ outcome: outcome.outcome, message: next.record(id)?.message }).toMatchObject({
      outcome: 'failed',
      message: expect.stringMatching(/^git clone of .*stalled\.git failed/),
    });
    expect(await inspectContainer(container)).toBeUndefined();
    figures.sessionsRecovered++;
    figures.sessions++;
    expect(await next.stop()).toBe(0);
  });

  it('adopts a session killed during its command: output continues once, outcome recorded', async () => {
    gateA.hold();
    gateB.hold();
    const block = (gate: Gate) => `git ls-remote git://127.0.0.1:${gate.port}/g.git >/dev/null 2>&1`;
    // stderr lines on both sides of the crash: each stream is replayed and skipped on its own.
    const script = [
      'for i in 1 2 3; do echo "before $i"; done',
      'echo "before err" >&2',
      block(gateA),
      'for i in 1 2 3; do echo "middle $i"; done',
      'echo "middle err" >&2',
      block(gateB),
      'for i in 1 2 3; do echo "after $i"; done',
    ].join('\n');
    const d = track(
      await startDaemon(
        { agents: [agent('worker', git.url(), ['sh', '-c', script], { timeout: '120s', ...withToken })] },
        { env: { [TOKEN_ENV]: token } },
      ),
    );
    const id = await detach(d, 'worker', ['--key', 'crash-key']);
    await gateA.waitFor(1);
    await waitUntil(
      // Both streams are in the log before the crash: the new daemon skips lines of each.
      () => d.cli(['logs', id]).then((r) => r.stdout.includes('before 3') && r.stderr.includes('before err')),
      () => 'the first lines in the session log',
    );
    const startedAt = d.record(id)?.startedAt;
    // Clients that wait for the session across the crash: `wait`, and a retried keyed trigger.
    const waiter = d.spawnCli(['wait', id, '--json']);
    const retried = d.spawnCli(['trigger', 'worker', '--key', 'crash-key']);
    await retried.waitForStdout(new RegExp(`^session ${id} already for key crash-key accepted$`, 'm'));
    // Both are connected (the listening socket and two accepted ones carry the path) before the crash.
    await waitUntil(
      () => connectionsTo(d.socketPath) >= 3,
      () => 'the waiting clients to connect',
    );
    await crash(d);
    figures.faultsInjected++;
    // While no daemon runs, the command goes on and writes more output.
    gateA.open();
    await gateB.waitFor(1);

    const next = await restart(d);
    await next.waitForLog((l) => l.event === 'session.adopted' && l.session === id);
    // startedAt is when the session left the queue, not when this daemon adopted it.
    expect((await status(next)).running).toEqual([
      expect.objectContaining({ id, phase: 'running', startedAt }),
    ]);
    // The key outlives the daemon.
    const again = await next.cli(['trigger', 'worker', '--key', 'crash-key', '--detach', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ sessionId: id, existing: true });
    // The lines written while no daemon ran are caught up before the command ends.
    await waitUntil(
      () => next.cli(['logs', id]).then((r) => r.stdout.includes('middle 3')),
      () => 'the lines written while no daemon ran',
    );
    gateB.open();
    const outcome = await next.waitForOutcome(id, 60_000);
    expect(outcome).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    const waited = await waiter.result;
    expect(waited.code, waited.stderr).toBe(0);
    expect(JSON.parse(waited.stdout)).toMatchObject({ sessionId: id, outcome: 'succeeded', code: 0 });
    expect(waited.stderr).toContain(`session ${id} goes on; waiting for the daemon to come back`);
    const followed = await retried.result;
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toMatch(new RegExp(`\nsession ${id} succeeded, exit code 0`));
    const logs = await next.cli(['logs', id]);
    expect(logs.code, logs.stderr).toBe(0);
    const expected = ['before', 'middle', 'after'].flatMap((w) => [1, 2, 3].map((i) => `${w} ${i}`));
    expect(logs.stdout.split('\n').filter(Boolean)).toEqual(expected);
    // The command's stderr, once each, on the CLI's stderr (before the outcome line).
    expect(logs.stderr.split('\n').filter((l) => l.endsWith(' err'))).toEqual(['before err', 'middle err']);
    const json = await next.cli(['logs', id, '--json']);
    const streams = json.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { stream: string; text: string })
      .filter((l) => l.stream === 'stderr')
      .map((l) => l.text);
    expect(streams).toEqual(['before err', 'middle err']);
    expect(next.record(id)).toMatchObject({ outcome: 'succeeded', exitCode: 0, phase: 'finished' });
    figures.sessionsRecovered++;
    figures.sessions++;
    expect(await next.stop()).toBe(0);
  });

  it('keeps accepted triggers on disk before answering, and runs the queued ones after a crash', async () => {
    gateA.hold();
    const d = track(
      await startDaemon(
        { daemon: { max_sessions: 1 }, agents: [agent('gated', git.url(), gateA.command, withToken)] },
        { env: { [TOKEN_ENV]: token } },
      ),
    );
    const first = await detach(d, 'gated');
    await gateA.waitFor(1);
    const sessionsDir = join(d.files.stateDir, 'sessions');
    // One raw client: the record must exist when the `accepted` line arrives, not some time later.
    const queued = await new Promise<string[]>((resolve, reject) => {
      const socket = connect(d.socketPath);
      const ids: string[] = [];
      const lines = createInterface({ input: socket });
      lines.on('line', (line) => {
        const reply = JSON.parse(line) as { type: string; sessionId: string; queued: boolean };
        if (reply.type !== 'accepted') return reject(new Error(line));
        const file = join(sessionsDir, `${reply.sessionId}.json`);
        if (!existsSync(file)) return reject(new Error(`no record of ${reply.sessionId} when accepted`));
        const record = JSON.parse(readFileSync(file, 'utf8')) as { phase: string };
        if (record.phase !== 'queued' || !reply.queued) return reject(new Error(line));
        ids.push(reply.sessionId);
        if (ids.length === 3) {
          socket.destroy();
          resolve(ids);
        }
      });
      socket.on('error', reject);
      for (let i = 0; i < 3; i++)
        socket.write(`${JSON.stringify({ v: 1, type: 'trigger', agent: 'gated' })}\n`);
    });
    expect((await status(d)).queued.map((q) => q.id)).toEqual(queued);
    await crash(d);
    figures.faultsInjected++;

    const next = await restart(d);
    const recovered = await next.waitForLog((l) => l.event === 'daemon.recovered');
    expect(recovered.adopted).toEqual([first]);
    expect(recovered.requeued).toEqual(queued);
    const s = await status(next);
    expect(s.running.map((r) => r.id)).toEqual([first]);
    expect(s.queued.map((q) => q.id)).toEqual(queued);

    gateA.open();
    for (const id of [first, ...queued]) {
      expect((await next.waitForOutcome(id, 60_000)).outcome, id).toBe('succeeded');
    }
    // Still one at a time, in the order they were accepted.
    const at = (id: string, phase: string) =>
      Date.parse([...(next.record(id)?.phases ?? [])].reverse().find((p) => p.phase === phase)?.at ?? '');
    const order = [first, ...queued];
    for (let i = 1; i < order.length; i++) {
      expect(at(order[i] as string, 'resolving')).toBeGreaterThanOrEqual(
        at(order[i - 1] as string, 'finished'),
      );
    }
    for (const id of order)
      expect(next.record(id)).toMatchObject({ outcome: 'succeeded', phase: 'finished' });
    figures.sessionsRecovered += order.length;
    figures.sessions += order.length;
    expect(await next.stop()).toBe(0);
  });
});

describe('a crash while the teardown searches the output archive', () => {
  it('keeps the archive: the next start searches it with the values read back from the exited container', async () => {
    // 60 MB of random bytes: searching them for the credential's forms takes the teardown a second or
    // more, and the daemon is killed as soon as its record says tearing_down. The leaky session's
    // archive holds the value: it must still be withheld.
    const make = (leak: boolean) => [
      'sh',
      '-c',
      `head -c 60000000 /dev/urandom > /agentd/out/big; ${leak ? 'echo "$REL_TOKEN" > /agentd/out/leak; ' : ''}echo done`,
    ];
    let d = track(
      await startDaemon(
        {
          agents: [
            agent('clean', git.url(), make(false), withToken),
            agent('leaky', git.url(), make(true), withToken),
          ],
        },
        { env: { [TOKEN_ENV]: token } },
      ),
    );
    const outputs: Record<string, unknown>[] = [];
    for (const name of ['clean', 'leaky']) {
      const id = await detach(d, name);
      await d.waitForPhase(id, 'tearing_down', 120_000);
      // The record says tearing_down before the teardown has copied the archive out (CI once killed the
      // daemon in between): killed once it is there, while its search (a second or more) goes on.
      const tar = join(d.files.stateDir, 'work', id, 'out', 'out.tar');
      await waitUntil(
        () => existsSync(tar),
        () => `${tar} to be written`,
        120_000,
        10,
      );
      await crash(d);
      figures.faultsInjected++;
      await killOrphans(d);
      const container = d.record(id)?.container ?? '';
      expect(d.record(id)).toMatchObject({ phase: 'tearing_down' });
      // Killed before the search was done: the archive is there, unmarked.
      expect(existsSync(join(d.files.stateDir, 'work', id, 'out', 'out.tar'))).toBe(true);
      expect(existsSync(join(d.files.stateDir, 'work', id, 'out', 'out.searched'))).toBe(false);
      d = await restart(d);
      const record = await waitUntil(
        () => d.record(id)?.output && d.record(id),
        () => `the sealed record of ${name}`,
      );
      expect(record).toMatchObject({ outcome: 'succeeded', exitCode: 0, phase: 'finished' });
      outputs.push(record.output as Record<string, unknown>);
      expect(await inspectContainer(container), 'its container removed').toBeUndefined();
      figures.sessionsRecovered++;
      figures.sessions++;
    }
    expect(outputs[0]).toMatchObject({ files: 1, bytes: 60_000_000 });
    expect(outputs[0]?.missing).toBeUndefined();
    expect(outputs[1]).toMatchObject({
      files: 0,
      missing: expect.stringMatching(/^withheld: a file in \/agentd\/out held a credential value/),
    });
    expect(await d.stop()).toBe(0);
  });
});
