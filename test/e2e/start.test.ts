import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cgroupVersion } from '../../src/adapters/fs-checks.js';
import {
  launchDaemon,
  leftoversOfDaemons,
  prepareDaemon,
  runCli,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(async () => {
  const left = await leftoversOfDaemons();
  await cleanupAll();
  expect(left).toEqual([]);
});

/** What an operator must see of a start that failed: exit 1, one `could not start` line, no stack. */
async function expectStartFailure(d: TestDaemon, code: string, message: RegExp): Promise<void> {
  expect(await d.waitForExit()).toBe(1);
  const stderr = d.stderr();
  const plain = stderr.split('\n').filter((line) => line.startsWith('agentd: '));
  expect(plain, stderr).toHaveLength(1);
  expect(plain[0]).toMatch(/^agentd: could not start: /);
  expect(stderr).toMatch(message);
  expect(stderr, 'no stack trace').not.toMatch(/^\s+at /m);
  expect(stderr).not.toContain('\\n    at ');
  const failed = d.logs().filter((l) => l.event === 'daemon.failed');
  expect(failed, stderr).toHaveLength(1);
  expect(failed[0]).toMatchObject({ code, msg: expect.stringMatching(/^could not start: /) });
  expect(failed[0]).not.toHaveProperty('err');
  expect(d.logs().map((l) => l.event)).not.toContain('daemon.ready');
}

describe('agentd start: failures', () => {
  it('a missing configuration file', async () => {
    const files = prepareDaemon({ agents: [{ name: 'x', image: TEST_IMAGE, command: ['true'] }] });
    rmSync(files.configPath);
    await expectStartFailure(launchDaemon(files), 'CONFIG_NOT_FOUND', /no configuration file found/);
  });

  it('an invalid configuration: every problem, still no stack', async () => {
    const files = prepareDaemon({ agents: [{ name: 'x', image: TEST_IMAGE, command: ['true'] }] });
    writeFileSync(files.configPath, 'agents:\n  - name: Bad\n    image: x\n    command: "true"\n');
    const d = launchDaemon(files);
    await expectStartFailure(d, 'CONFIG_INVALID', /2 problems in the configuration/);
    expect(d.stderr()).toMatch(/agents\[0\]\.name .*"Bad"/);
    expect(d.stderr()).toMatch(/agents\[0\]\.command .*must be a list/);
  });

  it('podman missing', async () => {
    const files = prepareDaemon({ agents: [{ name: 'x', image: TEST_IMAGE, command: ['true'] }] });
    const d = launchDaemon(files, { env: { PATH: makeTempDir('agentd-nopath-') } });
    await expectStartFailure(d, 'START_FAILED', /podman is not installed or not on PATH/);
  });

  it('a socket path that is not a socket', async () => {
    const files = prepareDaemon({ agents: [{ name: 'x', image: TEST_IMAGE, command: ['true'] }] });
    const blocker = join(files.dir, 'not-a-socket');
    writeFileSync(blocker, 'x');
    writeFileSync(
      files.configPath,
      `daemon:\n  socket: ${blocker}\n  state_dir: ${files.stateDir}\nagents:\n  - name: x\n    image: ${TEST_IMAGE}\n    command: ["true"]\n`,
    );
    await expectStartFailure(launchDaemon(files), 'START_FAILED', /exists and is not a socket/);
  });

  it('with --log-level debug the failure carries its stack in the log', async () => {
    const files = prepareDaemon({ agents: [{ name: 'x', image: TEST_IMAGE, command: ['true'] }] });
    rmSync(files.configPath);
    const d = launchDaemon(files, { args: ['--log-level', 'debug'] });
    expect(await d.waitForExit()).toBe(1);
    const failed = d.logs().find((l) => l.event === 'daemon.failed');
    expect((failed?.err as { stack?: string } | undefined)?.stack).toMatch(/\n\s+at /);
  });
});

describe('agentd start: preflight warnings', () => {
  // A cgroup v1 machine is warned about whatever the configuration (socket buffers outside the memory limit).
  const machine = cgroupVersion() === 'v1' ? [[40, 'cgroups', 'warn']] : [];
  it('logs a warning per problem and still starts', async () => {
    const d = await startDaemon({
      agents: [
        {
          name: 'broken',
          image: 'localhost/agentd-start-missing:1',
          command: ['true'],
          credentials: [{ name: 'API_KEY', source: 'env:AGENTD_START_UNSET' }],
        },
      ],
    });
    const done = await d.waitForLog((l) => l.event === 'daemon.preflight_done');
    expect(done).toMatchObject({ problems: 2 + machine.length });
    const warnings = d.logs().filter((l) => l.event === 'daemon.preflight');
    expect(warnings.map((w) => [w.level, w.check, w.status])).toEqual([
      [40, 'image localhost/agentd-start-missing:1', 'fail'],
      [40, 'credential broken/API_KEY', 'fail'],
      ...machine,
    ]);
    expect(warnings[0]?.fix).toMatch(/build-image\.sh localhost\/agentd-start-missing:1/);
    expect(warnings[1]?.fix).toMatch(/Set AGENTD_START_UNSET/);
    const status = JSON.parse((await d.cli(['status', '--json'])).stdout) as { state: string };
    expect(status.state).toBe('ready');
    expect(await d.stop()).toBe(0);
  });

  it('logs no warning for a good configuration', async () => {
    const d = await startDaemon({ agents: [{ name: 'good', image: TEST_IMAGE, command: ['true'] }] });
    expect(await d.waitForLog((l) => l.event === 'daemon.preflight_done')).toMatchObject({
      problems: machine.length,
    });
    const warnings = d.logs().filter((l) => l.event === 'daemon.preflight');
    expect(warnings.map((w) => [w.level, w.check, w.status])).toEqual(machine);
    expect(await d.stop()).toBe(0);
  });
});

describe('agentd help', () => {
  it('lists the commands with examples, and names option values', async () => {
    const help = await runCli(['help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('agentd doctor [--config,-c PATH]');
    expect(help.stdout).toContain('agentd trigger [--socket PATH] [--work-unit ID] [--timeout DURATION]');
    expect(help.stdout).not.toContain('#0');
    expect(help.stdout).toMatch(/^Examples\n\n {2}\S.*\n {4}\$ agentd /m);
    expect((await runCli(['--help'])).stdout).toBe(help.stdout);

    const one = await runCli(['help', 'trigger']);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^ {2}--timeout DURATION +Session timeout/m);
    expect(one.stdout).toMatch(/^ {2}--socket PATH +Path of the daemon socket/m);
    expect(one.stdout).toBe((await runCli(['trigger', '--help'])).stdout);

    const unknown = await runCli(['help', 'nosuch']);
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toContain('there is no command "nosuch"');
  });
});
