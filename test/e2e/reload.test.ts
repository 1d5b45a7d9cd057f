import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  gitAndGate,
  leftoversAfterCleanup,
  startDaemon,
  type TestDaemon,
  writeDaemonConfig,
} from '../helpers/daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';

const { gate, agent } = gitAndGate();

afterEach(async () => {
  gate.hold();
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

/** Rewrites the daemon's configuration file in place, keeping its socket and state dir. */
function rewrite(d: TestDaemon, agents: Record<string, unknown>[], daemon: Record<string, unknown> = {}) {
  writeDaemonConfig(d.files, { agents, daemon });
}

async function detach(d: TestDaemon, args: string[]): Promise<string> {
  const result = await d.cli(['trigger', ...args, '--detach']);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
}

describe('reload (SIGHUP and agentd reload)', () => {
  it('SIGHUP: adds, changes and removes agents for new sessions; running and queued sessions keep theirs', async () => {
    const worker = agent('worker', ['sh', '-c', `echo v1; ${gate.command[2]}`]);
    const old = agent('old', ['sh', '-c', 'echo old definition']);
    const d = await startDaemon({ agents: [worker, old], daemon: { max_sessions: 1 } });

    const running = await detach(d, ['worker']);
    await gate.waitFor(1);
    const queued = await detach(d, ['old']);
    expect((await d.cli(['status', '--json'])).stdout).toContain('"queued":[{');

    rewrite(d, [agent('worker', ['sh', '-c', 'echo v2']), agent('fresh', ['sh', '-c', 'echo fresh agent'])], {
      max_sessions: 2,
    });
    d.signal('SIGHUP');
    const reloaded = await d.waitForLog((l) => l.event === 'daemon.reloaded');
    expect(reloaded).toMatchObject({
      trigger: 'SIGHUP',
      added: ['fresh'],
      changed: ['worker'],
      removed: ['old'],
      maxSessions: 2,
    });

    // max_sessions 2 leaves room: the removed agent's queued session runs with the definition it was accepted with.
    const queuedOutcome = await d.waitForOutcome(queued);
    expect(queuedOutcome.outcome).toBe('succeeded');
    expect((await d.cli(['logs', queued])).stdout).toContain('old definition');

    // New sessions use the new file.
    const fresh = await d.cli(['trigger', 'fresh', '--quiet']);
    expect(fresh.code, fresh.stderr).toBe(0);
    const v2 = await d.cli(['trigger', 'worker']);
    expect(v2.code, v2.stderr).toBe(0);
    expect(v2.stdout).toContain('v2');
    const gone = await d.cli(['trigger', 'old']);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/old/);

    // The session that ran through the reload was never touched: it still runs its v1 command.
    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as {
      state: string;
      maxSessions: number;
      running: { id: string }[];
    };
    expect(status.state).toBe('ready');
    expect(status.maxSessions).toBe(2);
    expect(status.running.map((r) => r.id)).toEqual([running]);
    gate.open();
    expect((await d.waitForOutcome(running)).outcome).toBe('succeeded');
    const log = (await d.cli(['logs', running])).stdout;
    expect(log).toContain('v1');
    expect(log).toContain('released');
    expect(await d.stop()).toBe(0);
  });

  it('an invalid file is rejected with every problem; the daemon keeps its configuration and stays ready', async () => {
    const d = await startDaemon({ agents: [agent('demo', ['sh', '-c', 'echo still here'])] });
    writeFileSync(
      d.files.configPath,
      stringify({
        daemon: { socket: d.files.socketPath, state_dir: d.files.stateDir, max_sesions: 3 },
        agents: [{ name: 'Demo', image: TEST_IMAGE, command: 'echo' }],
      }),
    );
    const cli = await d.cli(['reload']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain(d.files.configPath);
    expect(cli.stderr).toMatch(/daemon\.max_sesions .*did you mean "max_sessions"/);
    expect(cli.stderr).toMatch(/agents\[0\]\.name .*"Demo" is not a valid agent name/);
    expect(cli.stderr).toMatch(/agents\[0\]\.command .*must be a list/);
    expect(cli.stderr).toContain('keeps running with the configuration it had');

    d.signal('SIGHUP');
    await d.waitForLog((l) => l.event === 'daemon.reload_failed' && l.trigger === 'SIGHUP');
    const failed = d.logs().filter((l) => l.event === 'daemon.reload_failed');
    expect(failed).toHaveLength(2);
    expect(failed[1]?.problems).toHaveLength(3);

    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as { state: string };
    expect(status.state).toBe('ready');
    const session = await d.cli(['trigger', 'demo']);
    expect(session.code, session.stderr).toBe(0);
    expect(session.stdout).toContain('still here');
    expect(d.running).toBe(true);
    expect(await d.stop()).toBe(0);
  });

  it('a file whose aliases expand past their bound is refused at the alias; the daemon keeps its agents, its memory bounded', async () => {
    // One 1 MiB argument used by 600 agents through an alias (a 1.1 MB file): the reload's thread took the
    // daemon to a VmHWM of 755 MB before it failed "Invalid string length", naming no key or alias.
    const d = await startDaemon({ agents: [agent('demo', ['sh', '-c', 'echo still here'])] });
    const peak = () =>
      Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))?.[1]) * 1024;
    const before = peak();
    const big = 'x'.repeat(1024 * 1024);
    const lines = [`  - {name: a0, image: ${TEST_IMAGE}, command: [&big "${big}"]}`];
    for (let i = 1; i < 600; i++) lines.push(`  - {name: a${i}, image: ${TEST_IMAGE}, command: [*big]}`);
    writeFileSync(
      d.files.configPath,
      `daemon:\n  socket: ${d.files.socketPath}\n  state_dir: ${d.files.stateDir}\nagents:\n${lines.join('\n')}\n`,
    );
    const cli = await d.cli(['reload']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain(d.files.configPath);
    expect(cli.stderr).toMatch(
      /agents\[15\]\.command\[0\] \(line 20, col \d+\): the aliases up to this one \(\*big\) make the configuration more than 16 MiB/,
    );
    expect(cli.stderr).toContain('keeps running with the configuration it had');
    expect(peak() - before).toBeLessThan(200 * 1024 * 1024);
    const agents = await d.cli(['agents', '--json']);
    expect(agents.code, agents.stderr).toBe(0);
    expect((JSON.parse(agents.stdout) as { agents: { name: string }[] }).agents.map((a) => a.name)).toEqual([
      'demo',
    ]);
    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as { state: string };
    expect(status.state).toBe('ready');
    expect(await d.stop()).toBe(0);
  });

  it('a file of more agents than MAX_AGENTS is refused with the count and the limit; the daemon keeps its agents', async () => {
    // 20,000 merged agents (540 KB) were loaded: some 2 to 3 KB of the daemon's memory each, for its life.
    const d = await startDaemon({
      agents: [agent('demo', ['sh', '-c', 'echo still here']), agent('other', ['true'])],
    });
    const lines = [`  - &d {name: a0, image: ${TEST_IMAGE}, command: [echo, hi]}`];
    for (let i = 1; i < 20_000; i++) lines.push(`  - {<<: *d, name: a${i}}`);
    writeFileSync(
      d.files.configPath,
      `daemon:\n  socket: ${d.files.socketPath}\n  state_dir: ${d.files.stateDir}\nagents:\n${lines.join('\n')}\n`,
    );
    const cli = await d.cli(['reload']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain(`${d.files.configPath}: 1 problem in the configuration`);
    expect(cli.stderr).toMatch(
      /agents \(line 5, col 3\): 20,000 agents, more than the 10,000 one daemon takes .*; split them between daemons of their own/,
    );
    expect(cli.stderr).toContain('keeps running with the configuration it had');
    expect(d.logs().filter((l) => l.event === 'daemon.reload_failed')).toHaveLength(1);
    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as { state: string };
    expect(status.state).toBe('ready');
    const agents = await d.cli(['agents', '--json']);
    expect(agents.code, agents.stderr).toBe(0);
    expect((JSON.parse(agents.stdout) as { agents: { name: string }[] }).agents.map((a) => a.name)).toEqual([
      'demo',
      'other',
    ]);
    const session = await d.cli(['trigger', 'demo']);
    expect(session.code, session.stderr).toBe(0);
    expect(session.stdout).toContain('still here');
    expect(await d.stop()).toBe(0);
  });

  it('names the settings that need a restart and keeps using the old socket and state dir', async () => {
    const d = await startDaemon({ agents: [agent('demo', ['true'])] });
    writeFileSync(
      d.files.configPath,
      stringify({
        daemon: {
          socket: join(d.files.dir, 'other.sock'),
          state_dir: join(d.files.dir, 'other-state'),
          stop_grace: '2s',
          max_sessions: 3,
        },
        agents: [agent('demo', ['true'])],
      }),
    );
    const cli = await d.cli(['reload']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/max_sessions 4 -> 3/);
    expect(cli.stdout).toMatch(/daemon\.socket \(.*agentd\.sock -> .*other\.sock\)/);
    expect(cli.stdout).toMatch(/daemon\.state_dir \(.*state -> .*other-state\)/);
    expect(cli.stdout).toMatch(/cannot change while agentd runs/);
    const warning = await d.waitForLog((l) => l.event === 'daemon.reload_restart_needed');
    // records_dir defaults to a folder of the state dir, so it moves with it.
    expect((warning.settings as { key: string }[]).map((s) => s.key)).toEqual([
      'daemon.socket',
      'daemon.state_dir',
      'daemon.records_dir',
    ]);
    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as { maxSessions: number };
    expect(status.maxSessions).toBe(3);
    expect(await d.stop()).toBe(0);
  });
});
