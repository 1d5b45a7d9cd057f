/**
 * Crash recovery at the points where Podman is in the middle of something: a fake podman holds the
 * daemon inside `run` (after the session's secret exists; before the container exists, or once it is
 * created and never started) and inside `rm` (teardown), then the daemon is SIGKILLed and a new one starts.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { containerName, secretName } from '../../src/runner/names.js';
import { launchDaemon, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { listSecrets } from '../helpers/podman.js';
import {
  afterEachTest,
  agent,
  crash,
  FakePodman,
  type FaultRule,
  inspectContainer,
  killOrphans,
  recordFigures,
  waitUntil,
} from './harness.js';

let git: GitServer;
const daemons: TestDaemon[] = [];
const figures = { faultsInjected: 0, sessionsRecovered: 0, sessions: 0, objectsLeftBehind: 0 };

beforeAll(async () => {
  git = await startGitServer();
});

afterAll(async () => {
  await git?.stop();
  await recordFigures('crash-podman', figures);
});

afterEach(() => afterEachTest(figures, daemons));

const TOKEN_ENV = 'AGENTD_REL_CRASHP_TOKEN';
const token = `crashp-token-${randomBytes(8).toString('hex')}`;

/** A daemon whose podman is the fake; the agent has a credential, so every session makes a secret. */
async function start(fake: FakePodman, command: string[]): Promise<TestDaemon> {
  const config = {
    agents: [
      agent('victim', git.url(), command, {
        credentials: [{ name: 'REL_TOKEN', source: `env:${TOKEN_ENV}` }],
      }),
    ],
  };
  const d = await startDaemon(config, { env: { PATH: fake.path, [TOKEN_ENV]: token } });
  daemons.push(d);
  return d;
}

/**
 * Crashes the daemon while podman hangs on `rule`, kills the hanging podman (as a service manager
 * would), and starts the next daemon of the instance with a podman that works again.
 */
async function crashInside(
  d: TestDaemon,
  fake: FakePodman,
  rule: FaultRule,
  id: string,
  afterCrash: () => void = () => {},
): Promise<{ next: TestDaemon; before: ReturnType<TestDaemon['record']> }> {
  await fake.waitForFault(rule.subcommand);
  const before = d.record(id);
  await crash(d);
  await killOrphans(d);
  afterCrash();
  figures.faultsInjected++;
  fake.setRules([]);
  const next = launchDaemon(d.files, { env: { PATH: fake.path, [TOKEN_ENV]: token } });
  daemons.push(next);
  await next.ready();
  return { next, before };
}

/**
 * Ends the process groups of the daemon's podman calls naming `name` that the fake holds (`hang`: its
 * `sleep`, never the real podman), which no one else ends.
 */
function endHeldCalls(name: string): void {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!args.includes(name) || args.includes('podman') === false) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const group = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      process.kill(-group, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

async function detach(d: TestDaemon): Promise<string> {
  const result = await d.cli(['trigger', 'victim', '--detach']);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
}

/** The new daemon still works: a fresh session runs its command to its own outcome. */
async function stillWorks(d: TestDaemon, outcome = 'succeeded', code = 0): Promise<void> {
  const result = await d.cli(['trigger', 'victim', '--json']);
  expect(result.code, result.stderr).toBe(code);
  expect(JSON.parse(result.stdout)).toMatchObject({ outcome });
  figures.sessions++;
}

describe('crash recovery around podman calls', () => {
  it('abandons a session killed after its secret was made and before its container existed', async () => {
    const fake = new FakePodman();
    // The local Podman creates and starts a session's container in one `podman run`: held before it.
    const rule: FaultRule = { subcommand: 'run', call: 1, action: 'hang' };
    fake.setRules([rule]);
    const d = await start(fake, ['true']);
    const id = await detach(d);
    await fake.waitForFault('run');
    const secret = secretName(d.instanceId, id, 0);
    expect(await listSecrets(d.prefix), 'the session secret exists during run').toEqual([secret]);

    const { next, before } = await crashInside(d, fake, rule, id);
    // `podman run` was started: had it made the container and the container been torn down, no
    // container would be left either, so it is not run again.
    expect(before).toMatchObject({ phase: 'creating', containerCallStarted: true });
    expect(before?.container).toBeUndefined();
    const reconciled = await next.waitForLog((l) => l.event === 'daemon.reconciled');
    expect(reconciled).toMatchObject({ removedSecrets: 1, secrets: [secret] });
    const record = next.record(id);
    expect(record).toMatchObject({ outcome: 'abandoned', phase: 'finished' });
    expect(record?.message).toMatch(
      /^the daemon stopped while the session was creating, after it had started the podman call that makes its container, and no container of it is left, so whether its command ran is not known/,
    );
    expect(await listSecrets(d.prefix)).toEqual([]);
    const status = JSON.parse((await next.cli(['status', '--json'])).stdout) as {
      state: string;
      recent: { id: string; outcome: string }[];
    };
    expect(status.state).toBe('ready');
    expect(status.recent.find((r) => r.id === id)?.outcome).toBe('abandoned');
    figures.sessionsRecovered++;
    figures.sessions++;
    await stillWorks(next);
    expect(await next.stop()).toBe(0);
  });

  it('runs again a session killed while it made its secret, before the call that makes its container', async () => {
    const fake = new FakePodman();
    // Held inside `secret create` (the fake never passes it on: nothing half-written in the secrets file).
    const rule: FaultRule = { subcommand: 'secret-create', call: 1, action: 'hang' };
    fake.setRules([rule]);
    const d = await start(fake, ['sh', '-c', 'echo ran once']);
    const id = await detach(d);
    const container = containerName(d.instanceId, 'victim', id);
    // Its held create ends with it, as a service manager ends it: the fake never passed it to podman (a
    // real one would end by itself, and the next daemon waits for it: see the next test).
    const { next, before } = await crashInside(d, fake, rule, id, () =>
      endHeldCalls(secretName(d.instanceId, id, 0)),
    );
    // Its record says creating, and that the call that makes its container was not made yet.
    expect(before).toMatchObject({ phase: 'creating', containerCallStarted: false });
    expect(before?.container).toBeUndefined();
    const recovered = await next.waitForLog((l) => l.event === 'daemon.recovered');
    expect(recovered).toMatchObject({ requeued: [id], adopted: [], settled: [] });
    const waited = await next.cli(['wait', id, '--json']);
    expect(waited.code, waited.stderr).toBe(0);
    const record = next.record(id);
    expect(record).toMatchObject({ outcome: 'succeeded', phase: 'finished', exitCode: 0 });
    expect(record?.containerCallStarted).toBeUndefined();
    expect(next.logs().filter((l) => l.event === 'session.outcome' && l.session === id)).toHaveLength(1);
    expect((await next.cli(['logs', id])).stdout).toBe('ran once\n');
    // The real podman made one container for it, in the second daemon's run, and removed it.
    expect(fake.calls().filter((c) => c.subcommand === 'run')).toHaveLength(1);
    await waitUntil(
      async () => (await inspectContainer(container)) === undefined,
      () => `container ${container} removed after its run`,
    );
    expect(await listSecrets(d.prefix)).toEqual([]);
    figures.sessionsRecovered++;
    figures.sessions++;
    await stillWorks(next);
    expect(await next.stop()).toBe(0);
  });

  it('waits for the secret create a killed daemon left running, so its secret is removed, then runs the session again', async () => {
    const fake = new FakePodman();
    // The first create is slow (a busy secrets file): it outlives the daemon and would make its secret
    // after the next daemon listed the secrets, which left it (and the credential in it) in Podman.
    fake.setRules([{ subcommand: 'secret-create', call: 1, action: { sleepSeconds: 4 } }]);
    const d = await start(fake, ['sh', '-c', 'echo ran once']);
    const id = await detach(d);
    const secret = secretName(d.instanceId, id, 0);
    await fake.waitForFault('secret-create');
    await waitUntil(
      () => d.record(id)?.phase === 'creating',
      () => 'the record at creating',
    );
    // Killed; its podman children live on (no service manager ends them), the create among them.
    await crash(d);
    figures.faultsInjected++;
    fake.setRules([]);
    const next = launchDaemon(d.files, { env: { PATH: fake.path, [TOKEN_ENV]: token } });
    daemons.push(next);
    await next.ready();
    // Its processes (rootless podman runs itself again in its user namespace).
    const creates = next.logs().find((l) => l.event === 'daemon.secret_creates_waited');
    expect(creates?.count).toBeGreaterThan(0);
    expect(next.logs().find((l) => l.event === 'daemon.reconciled')).toMatchObject({ secrets: [secret] });
    const recovered = await next.waitForLog((l) => l.event === 'daemon.recovered');
    expect(recovered).toMatchObject({ requeued: [id], adopted: [], settled: [] });
    const waited = await next.cli(['wait', id, '--json']);
    expect(waited.code, waited.stderr).toBe(0);
    expect(next.record(id)).toMatchObject({ outcome: 'succeeded', phase: 'finished', exitCode: 0 });
    expect((await next.cli(['logs', id])).stdout).toBe('ran once\n');
    // Past the time the left create took: nothing of it came back.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    expect(await listSecrets(d.prefix)).toEqual([]);
    figures.sessionsRecovered++;
    figures.sessions++;
    expect(await next.stop()).toBe(0);
  });

  it('runs again a session killed after its container was created and before it started', async () => {
    const fake = new FakePodman();
    // `podman run` held after it created the container and before it started it.
    const rule: FaultRule = { subcommand: 'run', call: 1, action: 'create-hang' };
    fake.setRules([rule]);
    const d = await start(fake, ['sh', '-c', 'echo ran once']);
    const id = await detach(d);
    const container = containerName(d.instanceId, 'victim', id);
    await fake.waitForFault('run');
    await waitUntil(
      async () => (await inspectContainer(container)) !== undefined,
      () => `container ${container} created by the held podman run`,
    );
    const { next } = await crashInside(d, fake, rule, id);
    const reconciled = await next.waitForLog((l) => l.event === 'daemon.reconciled');
    // Kept for the plan (its record says creating: had it started, its log would say what ran), then
    // removed as never started, and the session queued again: neither its setup step nor its command ran.
    expect(reconciled).toMatchObject({ removedContainers: 0, removedSecrets: 1, containers: [] });
    const removed = await next.waitForLog((l) => l.event === 'daemon.recovery_removed');
    expect(removed).toMatchObject({ containers: [container] });
    const recovered = await next.waitForLog((l) => l.event === 'daemon.recovered');
    expect(recovered).toMatchObject({ requeued: [id], adopted: [], settled: [] });
    const waited = await next.cli(['wait', id, '--json']);
    expect(waited.code, waited.stderr).toBe(0);
    const record = next.record(id);
    expect(record).toMatchObject({ outcome: 'succeeded', phase: 'finished', exitCode: 0 });
    expect(next.logs().filter((l) => l.event === 'session.outcome' && l.session === id)).toHaveLength(1);
    expect((await next.cli(['logs', id])).stdout).toContain('ran once');
    await waitUntil(
      async () => (await inspectContainer(container)) === undefined,
      () => `container ${container} removed after its second run`,
    );
    figures.sessionsRecovered++;
    figures.sessions++;
    await stillWorks(next);
    expect(await next.stop()).toBe(0);
  });

  it('settles a session killed during teardown with the outcome decided before it (its record keeps it)', async () => {
    const fake = new FakePodman();
    const rule: FaultRule = { subcommand: 'rm', call: 1, action: 'hang' };
    fake.setRules([rule]);
    const d = await start(fake, ['sh', '-c', 'echo finished the work; exit 7']);
    const id = await detach(d);
    const { next, before } = await crashInside(d, fake, rule, id);
    expect(before).toMatchObject({ phase: 'tearing_down' });
    const record = await waitUntil(
      () => next.record(id)?.outcome && next.record(id),
      () => 'the settled record',
    );
    expect(before?.decided).toMatchObject({
      outcome: 'failed',
      kind: 'failure',
      exitCode: 7,
      phase: 'running',
    });
    expect(record).toMatchObject({ outcome: 'failed', kind: 'failure', exitCode: 7, phase: 'finished' });
    expect(record.message).toBe(
      'command exited with code 7 (recovered after a daemon restart while it tore down)',
    );
    expect(await inspectContainer(before?.container ?? '')).toBeUndefined();
    const logs = await next.cli(['logs', id]);
    expect(logs.stdout).toBe('finished the work\n');
    figures.sessionsRecovered++;
    figures.sessions++;
    // The fake now passes every call through; the hang really was the one injected.
    expect(fake.calls().filter((c) => c.action === 'hang')).toEqual([
      { subcommand: 'rm', n: 1, action: 'hang' },
    ]);
    await stillWorks(next, 'failed', 1);
    expect(await next.stop()).toBe(0);
  });
});
