import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { LABEL_AGENT, LABEL_INSTANCE, LABEL_SESSION } from '../../src/constants.js';
import { containerName, secretName } from '../../src/runner/names.js';
import {
  allowLeftover,
  CLI,
  containerEventsSince,
  gitAndGate,
  launchDaemon,
  leftoversAfterCleanup,
  ownInstance,
  plantContainer,
  plantSecret,
  prepareDaemon,
  runCli,
  startDaemon,
  writeFileAt,
} from '../helpers/daemon.js';
import { startHttpGitServer } from '../helpers/git-server.js';
import { randomSessionId, testInstanceId } from '../helpers/ids.js';
import { makeTempDir, track } from '../helpers/resources.js';

const { gate, agent } = gitAndGate();

afterEach(async () => {
  // Read what a user would see before cleaning up, so a leak fails the test instead of being hidden.
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

const SESSION_ID = /session ([0-9a-f]{16}) accepted/;

interface StatusJson {
  state: string;
  running: { id: string; phase: string }[];
  queued: { id: string; position: number }[];
}

function phaseAt(record: { phases: { phase: string; at: string }[] } | undefined, phase: string): number {
  const at = record?.phases.find((p) => p.phase === phase)?.at;
  if (at === undefined) throw new Error(`no ${phase} phase in ${JSON.stringify(record)}`);
  return Date.parse(at);
}

async function podmanNames(kind: 'containers' | 'secrets'): Promise<string[]> {
  const argv =
    kind === 'containers'
      ? ['ps', '--all', '--format', '{{.Names}}']
      : ['secret', 'ls', '--format', '{{.Name}}'];
  return (await execa('podman', argv)).stdout.split('\n').filter(Boolean);
}

/** When a Unix socket at path first accepted a connection (polled every 10 ms, for up to 60 s). */
async function firstConnection(path: string): Promise<number> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const at = await new Promise<number | undefined>((resolve) => {
      const socket = connect(path);
      socket.once('connect', () => {
        const now = Date.now();
        socket.destroy();
        resolve(now);
      });
      socket.once('error', () => resolve(undefined));
    });
    if (at !== undefined) return at;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`nothing accepted connections on ${path} within 60 s`);
}

describe('Daemon', () => {
  it("removes only its own instance's dead containers and orphan secrets, before the socket accepts", async () => {
    const files = prepareDaemon({ agents: [agent('demo', ['true'])] });
    const id = files.instanceId;
    const other = testInstanceId();
    // Shares the first 8 hex digits, so its names start like ours: only the labels tell them apart.
    const lookalike = `${id.slice(0, 8)}${testInstanceId().slice(8)}`;
    const labels = (instance: string, session: string) => ({
      [LABEL_INSTANCE]: instance,
      [LABEL_SESSION]: session,
      [LABEL_AGENT]: 'demo',
    });
    const sessions = Array.from({ length: 7 }, () => randomSessionId());
    const sid = (i: number) => sessions[i] ?? '';
    const ours = {
      created: containerName(id, 'demo', sid(0)),
      exited: containerName(id, 'demo', sid(1)),
      secretOfDeadContainer: secretName(id, sid(0), 0),
      secretWithoutContainer: secretName(id, sid(2), 0),
      secondSecretWithoutContainer: secretName(id, sid(2), 1),
    };
    const kept = {
      otherContainer: containerName(other, 'demo', sid(3)),
      otherSecret: secretName(other, sid(3), 0),
      lookalikeContainer: containerName(lookalike, 'demo', sid(4)),
      lookalikeSecret: secretName(lookalike, sid(4), 0),
      unlabelledContainer: containerName(id, 'demo', sid(5)),
      unlabelledSecret: secretName(id, sid(5), 0),
      plainContainer: `e2e-not-agentd-${sid(6)}`,
      plainSecret: `e2e-not-agentd-${sid(6)}`,
    };
    for (const name of Object.values(kept)) allowLeftover(name);
    await Promise.all([
      plantContainer(ours.created, labels(id, sid(0)), 'created'),
      plantContainer(ours.exited, labels(id, sid(1)), 'exited'),
      plantSecret(ours.secretOfDeadContainer, 'v0-ours', labels(id, sid(0))),
      plantSecret(ours.secretWithoutContainer, 'v1-ours', labels(id, sid(2))),
      plantSecret(ours.secondSecretWithoutContainer, 'v2-ours', labels(id, sid(2))),
      plantContainer(kept.otherContainer, labels(other, sid(3)), 'exited'),
      plantSecret(kept.otherSecret, 'v-other', labels(other, sid(3))),
      plantContainer(kept.lookalikeContainer, labels(lookalike, sid(4)), 'exited'),
      plantSecret(kept.lookalikeSecret, 'v-lookalike', labels(lookalike, sid(4))),
      plantContainer(kept.unlabelledContainer, {}, 'created'),
      plantSecret(kept.unlabelledSecret, 'v-unlabelled', {}),
      plantContainer(kept.plainContainer, {}, 'exited'),
      plantSecret(kept.plainSecret, 'v-plain', {}),
    ]);

    const d = launchDaemon(files);
    const firstAccepted = firstConnection(files.socketPath);
    await d.ready();
    const acceptedAt = await firstAccepted;

    const events = d.logs().map((l) => l.event);
    const reconciledAt = events.indexOf('daemon.reconciled');
    expect(reconciledAt, 'daemon.reconciled logged').toBeGreaterThanOrEqual(0);
    expect(reconciledAt, 'reconciled before ready').toBeLessThan(events.indexOf('daemon.ready'));
    const reconciled: Record<string, unknown> = d.logs()[reconciledAt] ?? {};
    expect(reconciled).toMatchObject({ removedContainers: 2, removedSecrets: 3, runningContainers: 0 });
    // Same clock: the first connection the socket accepted came after the removals were done.
    expect(acceptedAt).toBeGreaterThanOrEqual(reconciled.time as number);
    expect([...(reconciled.containers as string[])].sort()).toEqual([ours.created, ours.exited].sort());
    expect([...(reconciled.secrets as string[])].sort()).toEqual(
      [ours.secretOfDeadContainer, ours.secretWithoutContainer, ours.secondSecretWithoutContainer].sort(),
    );

    const [containers, secrets] = await Promise.all([podmanNames('containers'), podmanNames('secrets')]);
    for (const name of [ours.created, ours.exited]) expect(containers).not.toContain(name);
    for (const name of [
      ours.secretOfDeadContainer,
      ours.secretWithoutContainer,
      ours.secondSecretWithoutContainer,
    ]) {
      expect(secrets).not.toContain(name);
    }
    for (const name of [
      kept.otherContainer,
      kept.lookalikeContainer,
      kept.unlabelledContainer,
      kept.plainContainer,
    ]) {
      expect(containers, `${name} must be left alone`).toContain(name);
    }
    for (const name of [kept.otherSecret, kept.lookalikeSecret, kept.unlabelledSecret, kept.plainSecret]) {
      expect(secrets, `${name} must be left alone`).toContain(name);
    }
    expect(await d.stop()).toBe(0);
  });

  it('derives its seccomp profile at start into the state dir: its sessions get no user namespace', async () => {
    const d = await startDaemon({
      agents: [agent('userns', ['sh', '-c', 'unshare -U true 2>&1 || :; echo "core $(ulimit -Hc)"'])],
    });
    const profile = join(d.files.stateDir, 'seccomp.json');
    expect(await d.waitForLog((l) => l.event === 'daemon.seccomp_profile')).toMatchObject({
      level: 30,
      file: profile,
    });
    expect(d.logs().filter((l) => l.event === 'daemon.seccomp_default')).toEqual([]);
    expect(statSync(profile).mode & 0o777).toBe(0o600);
    const result = await d.cli(['trigger', 'userns']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('\nunshare: unshare failed: Operation not permitted\ncore 0\n');
    expect(await d.stop()).toBe(0);
  });

  it('binds its socket 0600 in a 0700 directory and removes socket and pid file when it stops', async () => {
    const d = await startDaemon({ agents: [agent('demo', ['true'])] });
    const socket = statSync(d.socketPath);
    expect(socket.isSocket()).toBe(true);
    expect((socket.mode & 0o777).toString(8)).toBe('600');
    expect((statSync(dirname(d.socketPath)).mode & 0o777).toString(8)).toBe('700');
    expect((statSync(d.files.stateDir).mode & 0o777).toString(8)).toBe('700');
    expect(readFileSync(d.files.pidFile, 'utf8').trim()).toBe(String(d.pid));

    expect(await d.stop('SIGTERM')).toBe(0);
    expect(existsSync(d.socketPath), 'socket removed').toBe(false);
    expect(existsSync(d.files.pidFile), 'pid file removed').toBe(false);
    expect(d.logs().map((l) => l.event)).toContain('daemon.stopped');
  });

  it('refuses a second daemon on the same socket and state dir at once, naming the running pid', async () => {
    const first = await startDaemon({ agents: [agent('demo', ['true'])] });
    const started = Date.now();
    const second = launchDaemon(first.files);
    const code = await second.waitForExit(30_000);
    expect(code).toBe(1);
    expect(Date.now() - started, 'fails at once').toBeLessThan(15_000);
    expect(second.stderr()).toMatch(
      new RegExp(`^agentd: could not start: another agentd \\(pid ${first.pid}\\) is already running`, 'm'),
    );
    // It stopped before touching Podman or the socket.
    expect(second.logs().map((l) => l.event)).not.toContain('daemon.reconciled');
    expect(readFileSync(first.files.pidFile, 'utf8').trim()).toBe(String(first.pid));
    const status = await first.cli(['status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ pid: first.pid, state: 'ready' });
    expect(await first.stop()).toBe(0);
  });

  it('rejects a trigger of an unknown agent without creating anything', async () => {
    const d = await startDaemon({ agents: [agent('demo', ['true']), agent('other', ['true'])] });
    const since = new Date();
    const result = await d.cli(['trigger', 'nosuch']);
    expect(result).toEqual({
      code: 3,
      stdout: '',
      stderr: 'agentd: trigger rejected: unknown agent "nosuch"; known agents: demo, other\n',
    });
    expect(d.records()).toEqual([]);
    expect(await containerEventsSince(since, d.prefix)).toEqual([]);
    // The same check sees the container of a trigger that is accepted.
    const accepted = await d.cli(['trigger', 'demo', '--json']);
    expect(accepted.code, accepted.stderr).toBe(0);
    const { sessionId } = JSON.parse(accepted.stdout) as { sessionId: string };
    expect(await containerEventsSince(since, d.prefix)).toContain(
      `create ${containerName(d.instanceId, 'demo', sessionId)}`,
    );
    expect(await d.stop()).toBe(0);
  });

  it('ends a session whose credential source is not set as error, naming it, with nothing created', async () => {
    const value = `set-value-${randomBytes(8).toString('hex')}`;
    const d = await startDaemon(
      {
        agents: [
          agent('creds', ['sh', '-c', 'echo should not run'], {
            credentials: [
              { name: 'SET_TOKEN', source: 'env:AGENTD_E2E_SET_TOKEN' },
              { name: 'MISSING_TOKEN', source: 'env:AGENTD_E2E_MISSING_TOKEN' },
            ],
          }),
        ],
      },
      { env: { AGENTD_E2E_SET_TOKEN: value, AGENTD_E2E_MISSING_TOKEN: undefined } },
    );
    const since = new Date();
    const result = await d.cli(['trigger', 'creds', '--json']);
    expect(result.code).toBe(4);
    expect(result.stderr).toBe('');
    const out = JSON.parse(result.stdout) as { sessionId: string; outcome: string; message: string };
    expect(out).toMatchObject({ outcome: 'error', code: 4 });
    expect(out.message).toContain('MISSING_TOKEN');
    expect(out.message).toContain('env:AGENTD_E2E_MISSING_TOKEN');

    const record = d.record(out.sessionId);
    expect(record).toMatchObject({ outcome: 'error', phase: 'finished' });
    expect(record?.container).toBeUndefined();
    expect(record?.phases.map((p) => p.phase)).toEqual(['queued', 'resolving', 'finished']);
    expect(await containerEventsSince(since, d.prefix)).toEqual([]);
    expect(await d.leftovers()).toEqual({ containers: [], secrets: [] });
    for (const text of [result.stdout, d.stderr(), d.stateDirText()]) expect(text).not.toContain(value);
    expect(await d.stop()).toBe(0);
  });

  it('gives a credential as long as one variable holds whole, and refuses one longer or with a NUL byte', async () => {
    const dir = makeTempDir('agentd-e2e-cred-values-');
    // X=value and its NUL: 131,072 bytes, Linux's limit on one environment string.
    const fits = randomBytes(98_302).toString('base64').slice(0, 131_069);
    writeFileSync(join(dir, 'fits'), fits);
    writeFileSync(join(dir, 'over'), `${fits}z`);
    const nul = `nul-${randomBytes(8).toString('hex')}`;
    writeFileSync(join(dir, 'nul'), `abcd\0${nul}`);
    const echo = ['sh', '-c', 'printf %s "$X" | wc -c; echo "$X"'];
    const d = await startDaemon({
      agents: [
        agent('fits', echo, { credentials: [{ name: 'X', source: `file:${join(dir, 'fits')}` }] }),
        agent('over', echo, { credentials: [{ name: 'X', source: `file:${join(dir, 'over')}` }] }),
        agent('nul', echo, { credentials: [{ name: 'X', source: `file:${join(dir, 'nul')}` }] }),
      ],
    });
    const run = async (name: string) => {
      const result = await d.cli(['trigger', name, '--json']);
      return JSON.parse(result.stdout) as {
        sessionId: string;
        outcome: string;
        message?: string;
      };
    };
    const ok = await run('fits');
    expect(ok.outcome, ok.message).toBe('succeeded');
    const log = await d.cli(['logs', ok.sessionId]);
    expect(log.stdout).toContain('131069');
    expect(log.stdout).toContain('********');
    const since = new Date();
    const over = await run('over');
    expect(over).toMatchObject({ outcome: 'error' });
    expect(over.message).toContain(
      `credential X: the value of file:${join(dir, 'over')} is 131070 bytes, more than an environment variable can hold`,
    );
    const refused = await run('nul');
    expect(refused).toMatchObject({ outcome: 'error' });
    expect(refused.message).toContain('holds a NUL byte');
    // Refused before anything was made; the values are nowhere (before, the command got "abcd<nul>"
    // without its NUL byte and printed it unmasked into the session log).
    expect(await containerEventsSince(since, d.prefix)).toEqual([]);
    for (const text of [d.stderr(), d.stateDirText()]) {
      expect(text).not.toContain(nul);
      expect(text).not.toContain(fits.slice(0, 64));
    }
    expect(await d.stop()).toBe(0);
  });

  it('runs two triggers at the same time', async () => {
    gate.hold();
    const d = await startDaemon({ agents: [agent('gated', gate.command)] });
    const a = d.spawnCli(['trigger', 'gated']);
    const b = d.spawnCli(['trigger', 'gated']);
    // Both commands are blocked at the gate: they run at the same time.
    await gate.waitFor(2);
    // Their first line came after the daemon saw them enter `running` (same stream, in order).
    await Promise.all([a.waitForStdout(/^waiting$/m), b.waitForStdout(/^waiting$/m)]);
    const status = await d.cli(['status', '--json']);
    const parsed = JSON.parse(status.stdout) as StatusJson;
    expect(parsed.running.map((r) => r.phase)).toEqual(['running', 'running']);
    expect(parsed.queued).toEqual([]);
    gate.open();
    const [ra, rb] = await Promise.all([a.result, b.result]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    const ids = [ra.stdout.match(SESSION_ID)?.[1], rb.stdout.match(SESSION_ID)?.[1]];
    expect(new Set(parsed.running.map((r) => r.id))).toEqual(new Set(ids));
    const [recA, recB] = ids.map((id) => d.record(id ?? ''));
    expect(recA?.outcome).toBe('succeeded');
    expect(recB?.outcome).toBe('succeeded');
    // The records agree: each one was running before the other finished.
    expect(phaseAt(recA, 'running')).toBeLessThanOrEqual(phaseAt(recB, 'finished'));
    expect(phaseAt(recB, 'running')).toBeLessThanOrEqual(phaseAt(recA, 'finished'));
    expect(await d.stop()).toBe(0);
  });

  it('queues the second trigger when max_sessions is 1 and runs it once the first finished', async () => {
    gate.hold();
    const d = await startDaemon({ daemon: { max_sessions: 1 }, agents: [agent('gated', gate.command)] });
    const a = d.spawnCli(['trigger', 'gated']);
    await gate.waitFor(1);
    const b = d.spawnCli(['trigger', 'gated']);
    const [, idB] = await b.waitForStdout(/session ([0-9a-f]{16}) accepted \(queued at position 1\)/);
    const [, idA] = await a.waitForStdout(SESSION_ID);
    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as StatusJson;
    expect(status.running.map((r) => r.id)).toEqual([idA]);
    expect(status.queued).toMatchObject([{ id: idB, position: 1 }]);
    expect(gate.connections).toBe(1);

    // A third one waits behind it; cancelling it takes it out of the queue.
    const c = d.spawnCli(['trigger', 'gated']);
    const [, idC] = await c.waitForStdout(/session ([0-9a-f]{16}) accepted \(queued at position 2\)/);
    expect(await d.cli(['cancel', idC ?? ''])).toEqual({
      code: 0,
      stdout: `session ${idC} removed from the queue\n`,
      stderr: '',
    });
    const rc = await c.result;
    expect(rc.code, rc.stderr).toBe(5);
    expect(rc.stdout).toMatch(
      new RegExp(`\\nsession ${idC} cancelled.*: session cancelled while queued\\n$`),
    );
    expect(d.record(idC ?? '')?.phases.map((p) => p.phase)).toEqual(['queued', 'finished']);

    gate.open();
    const [ra, rb] = await Promise.all([a.result, b.result]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    // B left the queue only after A had finished.
    expect(phaseAt(d.record(idB ?? ''), 'resolving')).toBeGreaterThanOrEqual(
      phaseAt(d.record(idA ?? ''), 'finished'),
    );
    expect(await d.stop()).toBe(0);
  });

  it('drains on SIGTERM: the running session finishes, the queued one is cancelled, new triggers are refused', async () => {
    gate.hold();
    const d = await startDaemon({ daemon: { max_sessions: 1 }, agents: [agent('gated', gate.command)] });
    const a = d.spawnCli(['trigger', 'gated']);
    await gate.waitFor(1);
    const b = d.spawnCli(['trigger', 'gated']);
    const [, idB] = await b.waitForStdout(/session ([0-9a-f]{16}) accepted \(queued at position 1\)/);

    d.signal('SIGTERM');
    await d.waitForLog((l) => l.event === 'daemon.shutdown');
    const late = await d.cli(['trigger', 'gated']);
    // Retryable: the same trigger is accepted once the daemon is up again.
    expect(late.code).toBe(75);
    expect(late.stdout).toBe('');
    expect(late.stderr).toBe(
      'agentd: trigger rejected: daemon is shutting down: trigger again once it has started again\n',
    );

    const rb = await b.result;
    expect(rb.code, rb.stderr).toBe(5);
    expect(rb.stdout.trimEnd().split('\n').at(-1)).toMatch(
      new RegExp(`^session ${idB} cancelled.*: daemon shut down before the session started$`),
    );
    expect(d.running, 'still draining the running session').toBe(true);

    gate.open();
    const ra = await a.result;
    expect(ra.code, ra.stderr).toBe(0);
    expect(ra.stdout).toContain('\nreleased\n');
    expect(ra.stdout.trimEnd().split('\n').at(-1)).toMatch(/^session [0-9a-f]{16} succeeded, exit code 0/);
    const code = await d.waitForExit(30_000);
    expect(code).toBe(0);
    expect(existsSync(d.socketPath), 'socket removed').toBe(false);
    expect(existsSync(d.files.pidFile), 'pid file removed').toBe(false);
    const outcomes = Object.fromEntries(d.records().map((r) => [r.id, r.outcome]));
    expect(outcomes).toEqual({
      [ra.stdout.match(SESSION_ID)?.[1] ?? 'a']: 'succeeded',
      [idB ?? 'b']: 'cancelled',
    });
  });

  it('drains on a Ctrl-C in its terminal (SIGINT to its whole process group): the running session finishes', async () => {
    gate.hold();
    const d = await startDaemon({ agents: [agent('gated', gate.command)] });
    const a = d.spawnCli(['trigger', 'gated']);
    await gate.waitFor(1);
    // What a terminal does: the signal goes to every process of the foreground group the daemon leads.
    process.kill(-d.pid, 'SIGINT');
    await d.waitForLog((l) => l.event === 'daemon.shutdown');
    gate.open();
    const ra = await a.result;
    expect(ra.code, ra.stdout + ra.stderr).toBe(0);
    expect(ra.stdout.trimEnd().split('\n').at(-1)).toMatch(/^session [0-9a-f]{16} succeeded, exit code 0/);
    expect(await d.waitForExit(30_000)).toBe(0);
  });

  it('stopping with sessions queued and none running, their followers get the cancelled outcome', async () => {
    const d = await startDaemon({ agents: [agent('gated', gate.command)] });
    // The only host drained: triggers queue, nothing runs.
    expect((await d.cli(['hosts', 'drain', 'local'])).code).toBe(0);
    const triggers = [0, 1, 2].map(() => d.spawnCli(['trigger', 'gated']));
    const ids = await Promise.all(
      triggers.map(async (t) => (await t.waitForStdout(/session ([0-9a-f]{16}) accepted \(queued/))[1] ?? ''),
    );
    // A socket client waiting for each; the status reply after them says the waits are in place.
    const socket = connect(d.socketPath);
    const replies: Record<string, unknown>[] = [];
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    createInterface({ input: socket }).on('line', (line) => replies.push(JSON.parse(line)));
    for (const id of ids) socket.write(`${JSON.stringify({ v: 2, id, type: 'wait', sessionId: id })}\n`);
    socket.write(`${JSON.stringify({ v: 2, id: 'status', type: 'status' })}\n`);
    await expect.poll(() => replies.some((r) => r.id === 'status'), { timeout: 10_000 }).toBe(true);

    d.signal('SIGTERM');
    expect(await d.waitForExit(30_000)).toBe(0);
    await closed;
    for (const id of ids) {
      expect(replies.find((r) => r.id === id)).toMatchObject({
        type: 'outcome',
        sessionId: id,
        outcome: 'cancelled',
      });
    }
    for (const [i, t] of triggers.entries()) {
      const r = await t.result;
      expect(r.code, r.stderr).toBe(5);
      expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(
        new RegExp(`^session ${ids[i]} cancelled.*: daemon shut down before the session started$`),
      );
    }
  });

  it('cancels running sessions on a second SIGTERM and leaves nothing behind', async () => {
    const d = await startDaemon({ agents: [agent('sleeper', ['sleep', '300'])] });
    const a = d.spawnCli(['trigger', 'sleeper']);
    const b = d.spawnCli(['trigger', 'sleeper']);
    await Promise.all([a.waitForStdout(/==> running/), b.waitForStdout(/==> running/)]);
    d.signal('SIGTERM');
    await d.waitForLog((l) => l.event === 'daemon.shutdown');
    const started = Date.now();
    d.signal('SIGTERM');
    const code = await d.waitForExit(30_000);
    expect(code).toBe(0);
    expect(Date.now() - started, 'stops within the grace period and teardown').toBeLessThan(30_000);
    for (const r of await Promise.all([a.result, b.result])) {
      expect(r.code, r.stderr).toBe(5);
      expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(/^session [0-9a-f]{16} cancelled/);
    }
    expect(d.records().map((r) => r.outcome)).toEqual(['cancelled', 'cancelled']);
    expect(await d.leftovers()).toEqual({ containers: [], secrets: [] });
    expect(existsSync(d.socketPath)).toBe(false);
  });

  it('does not delete a regular file at the socket path, and exits non-zero saying why', async () => {
    const files = prepareDaemon({ agents: [agent('demo', ['true'])] });
    writeFileAt(files.socketPath, 'precious\n');
    const d = launchDaemon(files);
    const code = await d.waitForExit(30_000);
    expect(code).not.toBe(0);
    expect(readFileSync(files.socketPath, 'utf8')).toBe('precious\n');
    expect(d.stderr()).toContain(
      `socket path ${files.socketPath} exists and is not a socket; agentd will not delete it`,
    );
    expect(d.logs().map((l) => l.event)).not.toContain('daemon.ready');
    expect(existsSync(files.pidFile), 'pid file released').toBe(false);
  });

  it('never writes credential values into its logs or session records', async () => {
    const hex = randomBytes(8).toString('hex');
    const values = { env: `env-cred-${hex}`, file: `file-cred-${hex}`, token: `repo-token-${hex}` };
    const secretFile = join(makeTempDir('agentd-e2e-cred-'), 'file-token');
    writeFileSync(secretFile, `${values.file}\n`, { mode: 0o600 });
    // The repo token goes only to an http(s) origin: the clone comes from git's smart HTTP here.
    const http = await startHttpGitServer();
    track.onCleanup(() => http.stop());
    const d = await startDaemon(
      {
        agents: [
          agent('leaky', ['sh', '-c', 'echo "env=$ENV_TOKEN file=$FILE_TOKEN"; exit 7'], {
            credentials: [
              { name: 'ENV_TOKEN', source: 'env:AGENTD_E2E_ENV_TOKEN' },
              { name: 'FILE_TOKEN', source: `file:${secretFile}` },
            ],
            repo: http.url(),
            repo_token: 'env:AGENTD_E2E_REPO_TOKEN',
            allow_insecure_http: true,
          }),
        ],
      },
      {
        env: { AGENTD_E2E_ENV_TOKEN: values.env, AGENTD_E2E_REPO_TOKEN: values.token },
        args: ['--log-level', 'trace'],
      },
    );
    const result = await d.cli(['trigger', 'leaky']);
    expect(result.code, result.stderr).toBe(1);
    // The command saw the values (it printed something in their place), masked on the way out.
    expect(result.stdout).toContain('env=******** file=********\n');
    const status = await d.cli(['status', '--json']);
    expect(await d.stop()).toBe(0);
    const id = result.stdout.match(SESSION_ID)?.[1] ?? '';
    expect(d.record(id)).toMatchObject({ outcome: 'failed', exitCode: 7 });
    // The token was sent with the clone.
    expect(http.requests.map((r) => r.authorization)).toContain(`Bearer ${values.token}`);
    for (const value of Object.values(values)) {
      expect(d.stderr(), 'daemon log').not.toContain(value);
      expect(d.stateDirText(), 'state dir').not.toContain(value);
      expect(result.stdout + result.stderr, 'trigger output').not.toContain(value);
      expect(status.stdout, 'status').not.toContain(value);
    }
  });
});

describe('a daemon whose log cannot be written', () => {
  it('runs sessions to their outcome and stops with 0 when stderr takes no writes (/dev/full: ENOSPC, a log file on a full disk)', async () => {
    // Before, the first log line threw ENOSPC out of the logger: the start ended with exit 4 and no
    // word; a daemon whose log filled up later had its machine stopped by a line logged in an action.
    const files = prepareDaemon({ agents: [agent('echoer', ['echo', 'echoed'])] });
    ownInstance(files);
    const full = openSync('/dev/full', 'w');
    const child = spawn(process.execPath, [CLI, 'start', '--config', files.configPath], {
      stdio: ['ignore', 'ignore', full],
    });
    closeSync(full);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    track.onCleanup(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const cli = (args: string[]) => runCli([...args, '--socket', files.socketPath]);
    const deadline = Date.now() + 60_000;
    // Up: ready (0), or already telling that its log cannot be written (10).
    while (![0, 10].includes((await cli(['status'])).code)) {
      expect(child.exitCode, 'the daemon exited instead of starting').toBeNull();
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    for (let i = 0; i < 3; i++) {
      const ran = await cli(['trigger', 'echoer']);
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout).toMatch(/echoed/);
    }
    // Before, status said ready and exited 0: an operator whose log went silent could not tell. Now it
    // exits 10 (degraded) and says why, while the sessions still run (above).
    const status = await cli(['status', '--json']);
    expect(status.code, status.stdout).toBe(10);
    expect(JSON.parse(status.stdout)).toMatchObject({
      state: 'ready',
      degraded: expect.stringMatching(
        /^the daemon's log could not be written since \S+: .*\(ENOSPC\); free space on the filesystem stderr is written to$/,
      ),
    });
    const plain = await cli(['status']);
    expect(plain.code).toBe(10);
    expect(plain.stdout).toMatch(
      /^degraded: the daemon's log could not be written since .*; sessions still run/m,
    );
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
