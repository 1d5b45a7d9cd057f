import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  containerEventsSince,
  gitAndGate,
  runCli,
  settleSharedDaemon,
  spawnCli,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { scriptedDaemon } from '../helpers/fake-daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

const VERSION = (
  JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;
const MISSING_IMAGE = 'localhost/agentd-e2e-no-such-image:latest';
const KNOWN = 'ok, fail, gated, sleeper, stubborn, norepo, nocred, noimage';
const ID = '[0-9a-f]{16}';
const DURATION = '[0-9.]+m?s';
const UNREACHABLE_HINT =
  'Start one with `agentd start --config PATH`, or point at a running one with --socket PATH or $AGENTD_SOCKET.';

const { git, gate, agent } = gitAndGate();
/** One daemon shared by the tests of this file; each test leaves it idle and empty. */
let d: TestDaemon;

beforeAll(async () => {
  d = await startDaemon(
    {
      agents: [
        agent('ok', ['sh', '-c', 'echo hello from $AGENTD_AGENT; cat hello.txt']),
        agent('fail', ['sh', '-c', 'echo about to fail; exit 7']),
        agent('gated', gate.command),
        agent('sleeper', ['sleep', '30']),
        // Ignores SIGTERM: a stop takes the whole grace period (2s) before SIGKILL.
        agent('stubborn', ['sh', '-c', "trap '' TERM; sleep 30"]),
        { name: 'norepo', image: TEST_IMAGE, command: ['true'], network: 'host' },
        agent('nocred', ['true'], { credentials: [{ name: 'API_KEY', source: 'env:AGENTD_E2E_NOT_SET' }] }),
        agent('noimage', ['true'], { image: MISSING_IMAGE }),
      ],
    },
    { env: { AGENTD_E2E_NOT_SET: undefined } },
  );
});

afterAll(async () => {
  if (d?.running) expect(await d.stop('SIGTERM', 30_000)).toBe(0);
  await cleanupAll();
});

afterEach(async () => {
  // A test that failed halfway may leave sessions behind: they are cancelled so the next test starts clean.
  const { busy, left } = await settleSharedDaemon(d, gate);
  expect(busy, 'sessions still queued or running after the test').toEqual([]);
  expect(left, 'podman objects left behind').toEqual([]);
});

function lines(text: string): string[] {
  return text.split('\n').slice(0, -1);
}

function lastLine(text: string): string {
  return lines(text).at(-1) ?? '';
}

function sessionIdOf(stdout: string): string {
  const id = stdout.match(new RegExp(`session (${ID}) accepted`))?.[1];
  if (id === undefined) throw new Error(`no session id in:\n${stdout}`);
  return id;
}

describe('CLI', () => {
  describe('every command', () => {
    it('--version prints the package version, and --help lists every command', async () => {
      for (const flag of ['--version', '-v']) {
        expect(await runCli([flag])).toEqual({ code: 0, stdout: `agentd ${VERSION}\n`, stderr: '' });
      }
      const help = await runCli(['--help']);
      expect(help.code).toBe(0);
      expect(help.stderr).toBe('');
      for (const command of ['start', 'trigger', 'status', 'logs', 'cancel', 'send', 'validate']) {
        expect(help.stdout).toMatch(new RegExp(`^  agentd ${command}\\b`, 'm'));
      }
    });

    it('--help of each command shows its usage and examples', async () => {
      const commands = ['start', 'trigger', 'status', 'logs', 'cancel', 'send', 'validate'];
      const results = await Promise.all(commands.map((command) => runCli([command, '--help'])));
      for (const [index, result] of results.entries()) {
        const command = commands[index] as string;
        expect(result.code, command).toBe(0);
        expect(result.stderr, command).toBe('');
        expect(result.stdout, command).toMatch(new RegExp(`^\\$ agentd ${command}\\b`, 'm'));
        expect(result.stdout, command).toMatch(/^Examples$/m);
        expect(result.stdout, command).toMatch(new RegExp(`^  \\$ agentd ${command}\\b`, 'm'));
      }
    });

    it('validate accepts a good config and lists its agents', async () => {
      const result = await runCli(['validate', '--config', d.files.configPath]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(lines(result.stdout).slice(0, 4)).toEqual([
        `${d.files.configPath}: valid, 8 agent(s)`,
        `  socket ${d.socketPath}`,
        `  state dir ${d.files.stateDir}`,
        '  max sessions 4',
      ]);
      expect(result.stdout).toContain(
        '- nocred: localhost/agentd-base:bookworm ["true"]\n' +
          `    repo ${git.url()}, network host, no timeout\n` +
          '    credentials API_KEY <- env:AGENTD_E2E_NOT_SET\n',
      );
      expect(result.stdout).toContain('    repo (none: give one per trigger), network host, no timeout\n');
    });

    it('validate rejects a bad config, naming every problem with its line', async () => {
      const file = join(makeTempDir('agentd-e2e-config-'), 'bad.yaml');
      writeFileSync(
        file,
        [
          'daemon:',
          '  max_sessions: 0',
          '  stop_grace: banana',
          'agents:',
          '  - name: demo',
          '    imag: localhost/agentd-base:bookworm',
          '    command: ["true"]',
          '',
        ].join('\n'),
      );
      const result = await runCli(['validate', '--config', file]);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      const problems = lines(result.stderr);
      expect(problems[0]).toBe(`${file}: 4 problems in the configuration`);
      expect(problems.slice(1).map((p) => p.trim().split(' ')[0])).toEqual([
        'daemon.max_sessions',
        'daemon.stop_grace',
        'agents[0].image',
        'agents[0].imag',
      ]);
      expect(result.stderr).toContain('daemon.stop_grace (line 3, col 15): "banana" is not a duration');
      expect(result.stderr).toContain('did you mean "image"?');
    });

    it('start refuses a bad option and a missing config file', async () => {
      const format = await runCli(['start', '--log-format', 'xml']);
      expect(format).toMatchObject({ code: 2, stdout: '' });
      expect(format.stderr).toMatch(
        /^Usage Error: Invalid value for --log-format: must be one of json, pretty, not "xml"\n\n\$ agentd start /,
      );
      const missing = join(makeTempDir('agentd-e2e-config-'), 'none.yaml');
      const result = await runCli(['start', '--config', missing]);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(
        `no configuration file found; looked at:\n  ${missing} (from --config)\n`,
      );
    });

    it('start runs the daemon: it answers hello with its instance id', async () => {
      // `d` was started with `agentd start --config FILE` by the harness.
      expect(d.instanceId).toBe(d.files.instanceId);
      expect(await d.request({ type: 'hello' })).toMatchObject({
        type: 'hello',
        version: VERSION,
        pid: d.pid,
        state: 'ready',
      });
      const ready = d.logs().find((l) => l.event === 'daemon.ready');
      expect(ready).toMatchObject({ socket: d.socketPath, instanceId: d.instanceId, pid: d.pid });
    });

    it('trigger follows a session live: id, phases, output as it comes, then the outcome line', async () => {
      const trigger = d.spawnCli(['trigger', 'gated']);
      // The command's first line arrives while it still waits at the gate.
      await trigger.waitForStdout(/^waiting$/m);
      await gate.waitFor(1);
      expect(trigger.stdout()).not.toContain('released');
      gate.open();
      const result = await trigger.result;
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const id = sessionIdOf(result.stdout);
      expect(lines(result.stdout)).toEqual([
        `session ${id} accepted`,
        '==> resolving',
        '==> creating',
        '==> cloning',
        '==> running',
        'waiting',
        'released',
        '==> tearing_down',
        expect.stringMatching(new RegExp(`^session ${id} succeeded, exit code 0, in ${DURATION}$`)),
      ]);
    });

    it('trigger --quiet prints only the outcome line', async () => {
      const result = await d.cli(['trigger', 'ok', '--quiet']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^session ${ID} succeeded, exit code 0, in ${DURATION}\\n$`));
    });

    it('trigger --json prints one JSON object with the outcome', async () => {
      const result = await d.cli(['trigger', 'ok', '--json']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(lines(result.stdout)).toHaveLength(1);
      const out = JSON.parse(result.stdout) as Record<string, unknown>;
      expect(out).toMatchObject({ agent: 'ok', outcome: 'succeeded', exitCode: 0, code: 0 });
      expect(out.sessionId).toMatch(new RegExp(`^${ID}$`));
      expect(out.durationMs).toEqual(expect.any(Number));
      expect(d.record(out.sessionId as string)?.outcome).toBe('succeeded');
    });

    it('trigger --detach prints the id at once; logs --follow streams the rest, logs replays it', async () => {
      const detached = await d.cli(['trigger', 'gated', '--detach']);
      expect(detached.stderr).toBe('');
      expect(detached.code).toBe(0);
      expect(detached.stdout).toMatch(new RegExp(`^${ID}\\n$`));
      const id = detached.stdout.trim();
      // It returned while the session still waits at the gate.
      await gate.waitFor(1);
      expect(d.record(id)?.outcome).toBeUndefined();

      const follow = d.spawnCli(['logs', id, '--follow']);
      await follow.waitForStdout(/^waiting$/m);
      gate.open();
      const followed = await follow.result;
      const outcome = new RegExp(`^session ${id} succeeded, exit code 0, in ${DURATION}\\n$`);
      expect(followed.code).toBe(0);
      expect(followed.stdout).toBe('waiting\nreleased\n');
      expect(followed.stderr).toMatch(outcome);

      const replay = await d.cli(['logs', id]);
      expect(replay.code).toBe(0);
      expect(replay.stdout).toBe('waiting\nreleased\n');
      expect(replay.stderr).toMatch(outcome);
    });

    it('logs refuses a malformed id and reports an unknown session', async () => {
      const malformed = await d.cli(['logs', 'xyz']);
      expect(malformed).toMatchObject({ code: 2, stdout: '' });
      expect(malformed.stderr).toMatch(
        /^Usage Error: Invalid value for session-id: "xyz" is not a session id \(16 hex characters, as printed by agentd trigger\)\n/,
      );
      expect(await d.cli(['logs', '0123456789abcdef'])).toEqual({
        code: 6,
        stdout: '',
        stderr: 'agentd: no session 0123456789abcdef; see `agentd history` for known sessions\n',
      });
    });

    it('status shows running sessions and recent outcomes, as text and as JSON', async () => {
      const id = (await d.cli(['trigger', 'gated', '--detach'])).stdout.trim();
      await gate.waitFor(1);
      await d.waitForPhase(id, 'running');

      const text = await d.cli(['status']);
      expect(text.code).toBe(0);
      expect(text.stderr).toBe('');
      const [head, counts] = lines(text.stdout);
      expect(head).toMatch(
        new RegExp(`^agentd ${VERSION}: ready, pid ${d.pid}, up ${DURATION}, socket ${d.socketPath}$`),
      );
      expect(counts).toBe('running 1/4, queued 0');
      expect(text.stdout).toMatch(
        new RegExp(`\\nRUNNING\\n  ${id}  gated  running  ${DURATION}  local  ${git.url()}\\n`),
      );

      const json = await d.cli(['status', '--json']);
      expect(json.code).toBe(0);
      expect(lines(json.stdout)).toHaveLength(1);
      expect(JSON.parse(json.stdout)).toMatchObject({
        state: 'ready',
        pid: d.pid,
        version: VERSION,
        socket: d.socketPath,
        maxSessions: 4,
        running: [{ id, agent: 'gated', phase: 'running', repo: git.url() }],
        queued: [],
      });

      gate.open();
      await d.waitForOutcome(id);
      const after = await d.cli(['status']);
      expect(after.stdout).toContain('running 0/4, queued 0\n');
      expect(after.stdout).toMatch(
        new RegExp(`\\nRECENT\\n  ${id}  gated  succeeded \\(exit 0\\)  ${DURATION}  `),
      );
      const afterJson = JSON.parse((await d.cli(['status', '--json'])).stdout) as {
        running: unknown[];
        recent: { id: string; outcome: string }[];
      };
      expect(afterJson.running).toEqual([]);
      expect(afterJson.recent[0]).toMatchObject({ id, outcome: 'succeeded' });
    });

    it('cancel stops a running session from another process; the trigger ends with 5', async () => {
      const trigger = d.spawnCli(['trigger', 'sleeper']);
      await trigger.waitForStdout(/^==> running$/m);
      const id = sessionIdOf(trigger.stdout());
      expect(await d.cli(['cancel', id])).toEqual({
        code: 0,
        stdout: `session ${id} is being cancelled\n`,
        stderr: '',
      });
      const result = await trigger.result;
      expect(result.stderr).toBe('');
      expect(result.code).toBe(5);
      expect(lastLine(result.stdout)).toMatch(
        new RegExp(`^session ${id} cancelled, .*in ${DURATION}: session cancelled while running$`),
      );
      expect(await d.leftovers()).toEqual({ containers: [], secrets: [] });

      expect(await d.cli(['cancel', id])).toEqual({
        code: 6,
        stdout: '',
        stderr: `agentd: no queued or running session ${id}; see \`agentd status\`\n`,
      });
      expect((await d.cli(['cancel', 'not-an-id'])).code).toBe(2);
    });

    it('send takes events from an argument, a file and stdin, and prints each reply', async () => {
      const fromArg = await d.cli(['send', '{"type":"trigger","agent":"ok"}']);
      expect(fromArg.stderr).toBe('');
      expect(fromArg.code).toBe(0);
      const reply = JSON.parse(fromArg.stdout) as { event: { sessionId: string } };
      expect(reply).toMatchObject({
        line: 1,
        type: 'event.result',
        event: { type: 'trigger', agent: 'ok' },
        answers: [{ type: 'trigger.accepted', queued: false }],
      });

      const file = join(makeTempDir('agentd-e2e-events-'), 'events.ndjson');
      writeFileSync(
        file,
        [
          '# two sessions',
          '{"type":"trigger","agent":"ok","workUnit":"W-1"}',
          '',
          '{"type":"trigger","agent":"ok","workUnit":"W-2"}',
          '',
        ].join('\n'),
      );
      const fromFile = await d.cli(['send', '--file', file]);
      expect(fromFile.stderr).toBe('');
      expect(fromFile.code).toBe(0);
      const fileReplies = lines(fromFile.stdout).map(
        (line) => JSON.parse(line) as { line: number; event: { sessionId: string } },
      );
      expect(fileReplies).toMatchObject([
        { line: 2, answers: [{ type: 'trigger.accepted' }] },
        { line: 4, answers: [{ type: 'trigger.accepted' }] },
      ]);

      const fromStdin = await d.cli(['send'], { input: '{"type":"trigger","agent":"nope"}\n' });
      expect(fromStdin.code).toBe(1);
      expect(JSON.parse(fromStdin.stdout)).toMatchObject({
        line: 1,
        type: 'event.result',
        answers: [
          { type: 'trigger.rejected', code: 'unknown_agent', reason: expect.stringContaining(KNOWN) },
        ],
      });

      const ids = [reply, ...fileReplies].map((r) => r.event.sessionId);
      const outcomes = await Promise.all(ids.map((id) => d.waitForOutcome(id)));
      expect(outcomes.map((o) => o.outcome)).toEqual(['succeeded', 'succeeded', 'succeeded']);
      expect(ids.map((id) => d.record(id)?.workUnit)).toEqual([undefined, 'W-1', 'W-2']);
    });

    it('send rejects an invalid event with the reason and changes nothing', async () => {
      const before = { status: await d.request({ type: 'status' }), records: d.records().length };
      const since = new Date();
      const input = [
        '{"type":"trigger","agent":"ok","image":"evil"}',
        '{"type":"explode"}',
        'not json',
        '{"type":"cancel","sessionId":"0123456789abcdef"}',
        '',
      ].join('\n');
      const result = await d.cli(['send'], { input });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe('');
      const replies = lines(result.stdout).map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(replies).toMatchObject([
        { line: 1, type: 'error', code: 'bad_request', message: expect.stringMatching(/image/) },
        { line: 2, type: 'error', code: 'bad_request', message: expect.stringMatching(/type/) },
        { line: 3, type: 'error', message: 'stdin:3: not valid JSON' },
        { line: 4, type: 'event.result', answers: [{ type: 'cancel.rejected' }] },
      ]);
      const after = await d.request({ type: 'status' });
      expect(after).toMatchObject({
        running: [],
        queued: [],
        recent: (before.status as { recent: unknown[] }).recent,
      });
      expect(d.records()).toHaveLength(before.records);
      // No container was made (late events of earlier sessions' containers may still arrive).
      const created = (await containerEventsSince(since, d.prefix)).filter((e) => e.startsWith('create '));
      expect(created).toEqual([]);
    });
  });

  describe('exit codes of agentd trigger', () => {
    it('0: the session succeeded', async () => {
      const result = await d.cli(['trigger', 'ok']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('\nhello from ok\nhello\n');
      expect(lastLine(result.stdout)).toMatch(
        new RegExp(`^session ${ID} succeeded, exit code 0, in ${DURATION}$`),
      );
    });

    it('1: the command failed; the outcome line shows its exit code', async () => {
      const result = await d.cli(['trigger', 'fail']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(1);
      expect(result.stdout).toContain('\nabout to fail\n');
      const id = sessionIdOf(result.stdout);
      expect(lastLine(result.stdout)).toMatch(
        new RegExp(`^session ${id} failed, exit code 7, in ${DURATION}: command exited with code 7$`),
      );
    });

    it('2: a usage error reaches no daemon', async () => {
      const records = d.records().length;
      const banana = await d.cli(['trigger', 'ok', '--timeout', 'banana']);
      expect(banana).toMatchObject({ code: 2, stdout: '' });
      expect(banana.stderr).toMatch(
        /^Usage Error: Invalid value for --timeout: "banana" is not a duration; write a number with a unit like 90s, 10m or 2h\n/,
      );
      const unknown = await d.cli(['trigger', 'ok', '--bogus']);
      expect(unknown.code).toBe(2);
      expect(unknown.stdout).toBe('');
      expect(unknown.stderr).toContain('Unsupported option name ("--bogus")');
      const missing = await d.cli(['trigger']);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('Not enough positional arguments');
      const mode = await d.cli(['trigger', 'ok', '--exit-code', 'sometimes']);
      expect(mode).toMatchObject({ code: 2, stdout: '' });
      expect(mode.stderr).toMatch(
        /^Usage Error: Invalid value for --exit-code: must be one of outcome, command, not "sometimes"\n/,
      );
      expect(d.records()).toHaveLength(records);
    });

    it('3: the daemon rejected the trigger (unknown agent, no repository)', async () => {
      expect(await d.cli(['trigger', 'nope'])).toEqual({
        code: 3,
        stdout: '',
        stderr: `agentd: trigger rejected: unknown agent "nope"; known agents: ${KNOWN}\n`,
      });
      const noRepo = await d.cli(['trigger', 'norepo']);
      expect(noRepo).toEqual({
        code: 3,
        stdout: '',
        stderr:
          'agentd: trigger rejected: agent "norepo" has no default repo; pass a repository URL or set agents[].repo in the config\n',
      });
      const json = await d.cli(['trigger', 'nope', '--json']);
      expect(json.code).toBe(3);
      expect(JSON.parse(json.stdout)).toEqual({
        outcome: 'rejected',
        code: 3,
        rejection: 'unknown_agent',
        retryable: false,
        reason: `unknown agent "nope"; known agents: ${KNOWN}`,
      });
    });

    it('4: an infrastructure error (missing credential, missing image)', async () => {
      const noCred = await d.cli(['trigger', 'nocred']);
      expect(noCred.stderr).toBe('');
      expect(noCred.code).toBe(4);
      const credId = sessionIdOf(noCred.stdout);
      expect(lastLine(noCred.stdout)).toMatch(
        new RegExp(
          `^session ${credId} error, in ${DURATION}: credential API_KEY: environment variable AGENTD_E2E_NOT_SET ` +
            '\\(source env:AGENTD_E2E_NOT_SET\\) is not set',
        ),
      );

      const noImage = await d.cli(['trigger', 'noimage']);
      expect(noImage.stderr).toBe('');
      expect(noImage.code).toBe(4);
      const imageId = sessionIdOf(noImage.stdout);
      expect(lastLine(noImage.stdout)).toMatch(
        new RegExp(`^session ${imageId} error, in ${DURATION}: .*image ${MISSING_IMAGE} is not available`),
      );
    });

    it('5: cancelled with Ctrl-C (SIGINT): it cancels, waits for the teardown and exits 5', async () => {
      const trigger = d.spawnCli(['trigger', 'sleeper']);
      await trigger.waitForStdout(/^==> running$/m);
      const id = sessionIdOf(trigger.stdout());
      trigger.signal('SIGINT');
      const result = await trigger.result;
      expect(result.stderr).toBe(
        `agentd: cancelling session ${id}; press Ctrl-C again to leave without waiting\n`,
      );
      expect(result.code).toBe(5);
      expect(lastLine(result.stdout)).toMatch(
        new RegExp(`^session ${id} cancelled, .*: session cancelled while running$`),
      );
      // It waited for the teardown: nothing of the session is left once it exits.
      expect(await d.leftovers()).toEqual({ containers: [], secrets: [] });
      expect(d.record(id)?.outcome).toBe('cancelled');
    });

    it('5: Ctrl-C before the daemon accepted still cancels the session once it is accepted', async () => {
      // A scripted daemon, so "before accepted" is a fact rather than a race.
      let arrived: () => void = () => {};
      const daemon = await scriptedDaemon(() => arrived());
      const { path, requests } = daemon;
      const nextRequest = (n: number) =>
        new Promise<void>((resolve) => {
          arrived = () => {
            if (requests.length >= n) resolve();
          };
          arrived();
        });
      try {
        const trigger = spawnCli(['trigger', 'ok', '--socket', path]);
        // The CLI listens for SIGINT before it sends the trigger.
        await nextRequest(1);
        expect(requests[0]).toMatchObject({ v: 2, type: 'trigger', agent: 'ok', follow: true });
        trigger.signal('SIGINT');
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(trigger.child.exitCode, 'still waiting for the daemon').toBeNull();
        const id = '0123456789abcdef';
        const send = (message: object) =>
          daemon.connections.at(-1)?.write(`${JSON.stringify({ v: 1, ...message })}\n`);
        send({ type: 'accepted', sessionId: id, queued: false, position: 0 });
        await nextRequest(2);
        expect(requests[1]).toMatchObject({ v: 2, type: 'cancel', sessionId: id });
        send({ type: 'cancelling', sessionId: id, wasQueued: false });
        send({
          type: 'outcome',
          sessionId: id,
          record: {
            version: 1,
            id,
            agent: 'ok',
            repo: 'git://127.0.0.1/x.git',
            acceptedAt: '2026-01-01T00:00:00.000Z',
            phase: 'finished',
            phases: [{ phase: 'finished', at: '2026-01-01T00:00:00.040Z' }],
            outcome: 'cancelled',
            durationMs: 40,
            message: 'session cancelled while creating',
          },
        });
        const result = await trigger.result;
        expect(result).toEqual({
          code: 5,
          stdout: `session ${id} accepted\nsession ${id} cancelled, in 40ms: session cancelled while creating\n`,
          stderr:
            'agentd: the session is cancelled as soon as the daemon accepts the trigger; press Ctrl-C again to leave without waiting\n' +
            `agentd: cancelling session ${id}; press Ctrl-C again to leave without waiting\n`,
        });
      } finally {
        await daemon.close();
      }
    });

    it('130: a second Ctrl-C leaves without waiting; the daemon still cancels the session', async () => {
      const trigger = d.spawnCli(['trigger', 'stubborn']);
      await trigger.waitForStdout(/^==> running$/m);
      const id = sessionIdOf(trigger.stdout());
      trigger.signal('SIGINT');
      await trigger.waitForStderr(/cancelling session/);
      // The command ignores SIGTERM, so its stop takes the 2s grace: the second Ctrl-C comes first.
      trigger.signal('SIGINT');
      const result = await trigger.result;
      expect(result.code).toBe(130);
      expect(result.stderr).toBe(
        `agentd: cancelling session ${id}; press Ctrl-C again to leave without waiting\n`,
      );
      expect(lastLine(result.stdout)).toBe('==> running');
      expect(await d.waitForOutcome(id)).toMatchObject({ outcome: 'cancelled' });
    });

    it('69: no daemon answers on the socket; the message names the path and how to start one', async () => {
      const dir = makeTempDir('agentd-e2e-nodaemon-');
      const missing = join(dir, 'none.sock');
      expect(await runCli(['trigger', 'ok'], { env: { AGENTD_SOCKET: missing } })).toEqual({
        code: 69,
        stdout: '',
        stderr: `agentd: no agentd daemon answers on ${missing} (ENOENT).\n${UNREACHABLE_HINT}\n`,
      });
      // A socket file left by a daemon that died: nothing listens on it.
      const stale = join(dir, 'stale.sock');
      const child = spawn(
        process.execPath,
        [
          '-e',
          `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
        ],
        { stdio: 'ignore' },
      );
      await new Promise((resolve) => child.once('exit', resolve));
      expect(existsSync(stale), 'the dead listener left its socket file').toBe(true);
      const result = await runCli(['trigger', 'ok', '--socket', stale]);
      expect(result).toEqual({
        code: 69,
        stdout: '',
        stderr: `agentd: no agentd daemon answers on ${stale} (ECONNREFUSED).\n${UNREACHABLE_HINT}\n`,
      });
    });

    it('124: the session timed out', async () => {
      // The deadline runs from the session's start: long enough for creating and cloning to be done
      // first on a loaded machine, so that it ends the command (sleeper's `sleep 30`).
      const timeoutS = 8;
      const started = Date.now();
      const result = await d.cli(['trigger', 'sleeper', '--timeout', `${timeoutS}s`]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(124);
      const id = sessionIdOf(result.stdout);
      expect(lastLine(result.stdout)).toMatch(
        new RegExp(
          `^session ${id} timed_out, .*: session exceeded its timeout of ${timeoutS}s while running$`,
        ),
      );
      expect(Date.now() - started).toBeGreaterThanOrEqual(timeoutS * 1000);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(d.record(id)).toMatchObject({ outcome: 'timed_out', timeoutMs: timeoutS * 1000 });
    });
  });
});
