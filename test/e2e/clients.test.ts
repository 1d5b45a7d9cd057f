/**
 * Scripts and other clients: `wait`, `show`, `history`, `agents`, `--json` on every command that
 * reports something, exit codes per outcome, idempotency keys. Through the real CLI against a real
 * daemon, as a script would use them.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { gitAndGate, settleSharedDaemon, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll } from '../helpers/resources.js';

const ID = /^[0-9a-f]{16}$/;
const SECRET = 'sk-clients-7e3c1f0a9b8d2e4f';

const { git, gate, agent } = gitAndGate();
let d: TestDaemon;

beforeAll(async () => {
  d = await startDaemon(
    {
      agents: [
        agent('ok', ['sh', '-c', 'echo hello from $AGENTD_AGENT; echo second line']),
        agent('fail', ['sh', '-c', 'echo about to fail; exit 7']),
        agent('gated', gate.command),
        agent('sleeper', ['sleep', '30']),
        agent('secretive', ['true'], { credentials: [{ name: 'API_KEY', source: 'env:AGENTD_E2E_SECRET' }] }),
        agent('nocred', ['true'], { credentials: [{ name: 'API_KEY', source: 'env:AGENTD_E2E_NOT_SET' }] }),
      ],
    },
    { env: { AGENTD_E2E_SECRET: SECRET, AGENTD_E2E_NOT_SET: undefined } },
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

/** `trigger --detach --json`: the session id. */
async function detached(agent: string, ...args: string[]): Promise<string> {
  const result = await d.cli(['trigger', agent, '--detach', '--json', ...args]);
  expect(result.code, result.stderr).toBe(0);
  const out = JSON.parse(result.stdout) as { sessionId: string; existing: boolean };
  expect(out.sessionId).toMatch(ID);
  return out.sessionId;
}

function json(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('agentd wait', () => {
  it('exits with the code of each outcome, at once for a finished session', async () => {
    const ok = await detached('ok');
    const fail = await detached('fail');
    const nocred = await detached('nocred');
    // Long enough for its creating and cloning to be done first beside the other three on a loaded
    // machine: the deadline (from the session's start) is to stop the running command.
    const timed = await detached('sleeper', '--timeout', '8s');

    const succeeded = await d.cli(['wait', ok]);
    expect(succeeded.code, succeeded.stderr).toBe(0);
    expect(succeeded.stdout).toMatch(new RegExp(`^session ${ok} succeeded, exit code 0, in [0-9.]+m?s\\n$`));

    const failed = await d.cli(['wait', fail, '--json']);
    expect(failed.code).toBe(1);
    expect(json(failed.stdout)).toMatchObject({
      sessionId: fail,
      agent: 'fail',
      outcome: 'failed',
      exitCode: 7,
      code: 1,
      message: 'command exited with code 7',
    });
    // The agent's own code, as podman run gives it.
    const own = await d.cli(['wait', fail, '--exit-code', 'command']);
    expect(own.code).toBe(7);

    const error = await d.cli(['wait', nocred]);
    expect(error.code).toBe(4);
    expect(error.stdout).toContain(`session ${nocred} error`);

    const timedOut = await d.cli(['wait', timed, '--json']);
    expect(timedOut.code).toBe(124);
    // The stop's signal ended the command: named, not only 143.
    expect(json(timedOut.stdout)).toMatchObject({
      outcome: 'timed_out',
      code: 124,
      exitCode: 143,
      signal: 'SIGTERM',
    });

    // Finished: answered at once, again and again.
    const again = await d.cli(['wait', ok, '--json']);
    expect(again.code).toBe(0);
    expect(json(again.stdout)).toMatchObject({ sessionId: ok, outcome: 'succeeded', code: 0 });
  });

  it('5 for a cancelled session, 7 when --timeout runs out first, 6 for an unknown session', async () => {
    const id = await detached('gated');
    await gate.waitFor(1);
    const early = await d.cli(['wait', id, '--timeout', '1s', '--json']);
    expect(early.code).toBe(7);
    expect(json(early.stdout)).toMatchObject({ error: 'still_running', sessionId: id, code: 7 });
    expect(early.stderr).toBe(`agentd: session ${id} has not finished after 1s; it goes on\n`);

    const waiting = d.spawnCli(['wait', id]);
    const cancel = await d.cli(['cancel', id, '--json']);
    expect(cancel.code).toBe(0);
    expect(json(cancel.stdout)).toEqual({ sessionId: id, wasQueued: false });
    const cancelled = await waiting.result;
    expect(cancelled.code).toBe(5);
    expect(cancelled.stdout).toMatch(
      new RegExp(`^session ${id} cancelled, .*: session cancelled while running\\n$`),
    );
    expect(d.record(id)).toMatchObject({ outcome: 'cancelled', signal: 'SIGTERM' });

    const unknown = await d.cli(['wait', '0123456789abcdef', '--json']);
    expect(unknown.code).toBe(6);
    expect(json(unknown.stdout)).toMatchObject({ error: 'unknown_session', code: 6 });
    expect(unknown.stderr).toMatch(/^agentd: no session 0123456789abcdef; see `agentd history`/);
    const notCancelled = await d.cli(['cancel', '0123456789abcdef']);
    expect(notCancelled.code).toBe(6);
  });
});

describe('agentd trigger for scripts', () => {
  it('--detach --json prints the session id; --exit-code command passes the command code through', async () => {
    const result = await d.cli(['trigger', 'ok', '-d', '--json']);
    expect(result.code).toBe(0);
    expect(json(result.stdout)).toEqual({
      sessionId: expect.stringMatching(ID),
      queued: false,
      position: 0,
      existing: false,
    });
    await d.waitForOutcome(json(result.stdout).sessionId as string);

    const own = await d.cli(['trigger', 'fail', '--exit-code', 'command', '--json']);
    expect(own.code).toBe(7);
    expect(json(own.stdout)).toMatchObject({ outcome: 'failed', exitCode: 7, code: 7 });
    const usage = await d.cli(['trigger', 'fail', '--exit-code', 'sometimes']);
    expect(usage.code).toBe(2);
  });

  it('a rejection says whether it is worth retrying', async () => {
    const rejected = await d.cli(['trigger', 'nope', '--json']);
    expect(rejected.code).toBe(3);
    expect(json(rejected.stdout)).toEqual({
      outcome: 'rejected',
      code: 3,
      rejection: 'unknown_agent',
      retryable: false,
      reason: expect.stringContaining('unknown agent "nope"'),
    });
  });
});

describe('agentd show, history, agents, logs --json', () => {
  it('show prints one record, whole', async () => {
    const id = await detached('ok', '--work-unit', 'SHOW-1', '--key', 'show-key-1');
    await d.waitForOutcome(id);
    const shown = await d.cli(['show', id, '--json']);
    expect(shown.code).toBe(0);
    expect(json(shown.stdout)).toEqual(d.record(id));
    expect(json(shown.stdout)).toMatchObject({ workUnit: 'SHOW-1', key: 'show-key-1', outcome: 'succeeded' });
    const text = await d.cli(['show', id]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^session ${id}\\n  agent +ok\\n`));
    expect(text.stdout).toMatch(/\n {2}work unit +SHOW-1\n/);
    expect(text.stdout).toMatch(/\n {2}phases +queued \+0ms, resolving \+\d+m?s, creating/);
    const unknown = await d.cli(['show', '0123456789abcdef']);
    expect(unknown.code).toBe(6);
  });

  it('history filters by agent, outcome, work unit and time, and limits', async () => {
    const unit = `H-${Date.now()}`;
    const a = await detached('ok', '--work-unit', unit);
    const b = await detached('fail', '--work-unit', unit);
    const c = await detached('ok', '--work-unit', unit);
    await Promise.all([a, b, c].map((id) => d.waitForOutcome(id)));
    const history = async (...args: string[]) => {
      const result = await d.cli(['history', '--work-unit', unit, '--json', ...args]);
      expect(result.code, result.stderr).toBe(0);
      const page = json(result.stdout) as { sessions: { id: string }[]; more: number };
      return { ids: page.sessions.map((s) => s.id), more: page.more };
    };
    // Newest first.
    expect(await history()).toEqual({ ids: [c, b, a], more: 0 });
    expect(await history('--agent', 'ok')).toEqual({ ids: [c, a], more: 0 });
    expect(await history('--outcome', 'failed')).toEqual({ ids: [b], more: 0 });
    expect(await history('--limit', '1')).toEqual({ ids: [c], more: 2 });
    expect(await history('--since', '1h')).toEqual({ ids: [c, b, a], more: 0 });
    expect(await history('--since', '2999-01-01')).toEqual({ ids: [], more: 0 });
    const acceptedB = d.record(b)?.acceptedAt as string;
    expect(await history('--since', acceptedB)).toEqual({ ids: [c, b], more: 0 });

    const text = await d.cli(['history', '--work-unit', unit, '--limit', '2']);
    expect(text.stdout.split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^ {2}${c} {2}ok {2}succeeded \\(exit 0\\)`)),
      expect.stringMatching(new RegExp(`^ {2}${b} {2}fail {2}failed \\(exit 7\\)`)),
      '... and 1 more; raise --limit or narrow the filters',
      '',
    ]);
    for (const bad of [
      ['--since', 'yesterday'],
      ['--limit', '0'],
      ['--outcome', 'fine'],
    ]) {
      const refused = await d.cli(['history', ...bad]);
      expect(refused.code, bad.join(' ')).toBe(2);
    }
  });

  it('agents lists what the daemon runs, with no credential value', async () => {
    const result = await d.cli(['agents', '--json']);
    expect(result.code).toBe(0);
    const { agents } = json(result.stdout) as { agents: { name: string }[] };
    expect(agents.map((a) => a.name)).toEqual(['ok', 'fail', 'gated', 'sleeper', 'secretive', 'nocred']);
    expect(agents[4]).toMatchObject({
      name: 'secretive',
      image: TEST_IMAGE,
      command: ['true'],
      repo: git.url(),
      network: 'host',
      credentials: [{ name: 'API_KEY', source: 'env:AGENTD_E2E_SECRET' }],
    });
    const text = await d.cli(['agents']);
    expect(text.stdout).toContain('secretive: localhost/agentd-base:bookworm ["true"]\n');
    expect(text.stdout).toContain('credentials API_KEY <- env:AGENTD_E2E_SECRET\n');
    // Every limit `validate` shows, the output directory's and memory with swap included.
    expect(agents[4]).toMatchObject({
      resources: { memory: '2g', memorySwap: '2g', disk: '1g', output: '64m' },
    });
    expect(text.stdout).toContain(
      '    limits memory 2g (no swap), cpus unlimited, pids 4096, disk 1g, output 64m\n',
    );
    for (const out of [result.stdout, text.stdout]) expect(out).not.toContain(SECRET);
  });

  it('logs --json gives one object per line of output', async () => {
    const id = await detached('ok');
    await d.waitForOutcome(id);
    const result = await d.cli(['logs', id, '--json']);
    expect(result.code).toBe(0);
    const lines = result.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const texts = lines.map((l) => l.text);
    expect(texts).toContain('hello from ok');
    expect(texts.indexOf('second line')).toBe(texts.indexOf('hello from ok') + 1);
    lines.forEach((line, i) => {
      expect(Object.keys(line)).toEqual(['seq', 'stream', 'time', 'text']);
      expect(line.seq).toBe(i + 1);
    });
    expect(result.stderr).toMatch(new RegExp(`^session ${id} succeeded`));
    const unknown = await d.cli(['logs', '0123456789abcdef', '--json']);
    expect(unknown.code).toBe(6);
    expect(json(unknown.stdout)).toMatchObject({ error: 'unknown_session', code: 6 });
  });

  it('reload --json and validate --json report as JSON', async () => {
    const reload = await d.cli(['reload', '--json']);
    expect(reload.code, reload.stderr).toBe(0);
    expect(json(reload.stdout)).toMatchObject({ type: 'reloaded', added: [], removed: [], code: 0 });
    const valid = await d.cli(['validate', '--config', d.files.configPath, '--json']);
    expect(valid.code).toBe(0);
    expect(json(valid.stdout)).toMatchObject({ valid: true, file: d.files.configPath, maxSessions: 4 });
    expect(valid.stdout).not.toContain(SECRET);
  });
});

describe('agentd send', () => {
  it("prints each reply as the daemon sent it, and its own parse errors in the daemon's shape", async () => {
    const result = await d.cli(['send'], {
      input: `${JSON.stringify({ type: 'cancel', sessionId: '0123456789abcdef' })}\nnot json\n`,
    });
    expect(result.code).toBe(1);
    const [first, second] = result.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(first).toEqual({
      line: 1,
      v: 2,
      id: '1',
      type: 'event.result',
      event: { type: 'cancel', sessionId: '0123456789abcdef' },
      answers: [
        {
          type: 'cancel.rejected',
          sessionId: '0123456789abcdef',
          reason: expect.stringContaining('no queued or running session'),
        },
      ],
      state: 'ready',
    });
    expect(second).toEqual({
      line: 2,
      v: 2,
      id: '2',
      type: 'error',
      code: 'bad_json',
      message: 'stdin:2: not valid JSON',
      problems: [],
      retryable: false,
    });
  });
});

describe('idempotency keys', () => {
  it('concurrent triggers with one key make one session; a later one gets it back, finished', async () => {
    const key = `webhook-${Date.now()}`;
    const tries = await Promise.all(
      Array.from({ length: 6 }, () => d.cli(['trigger', 'gated', '--key', key, '--detach', '--json'])),
    );
    const answers = tries.map((t) => json(t.stdout) as { sessionId: string; existing: boolean });
    const ids = new Set(answers.map((a) => a.sessionId));
    expect(ids.size).toBe(1);
    expect(answers.filter((a) => !a.existing)).toHaveLength(1);
    const [id] = [...ids] as [string];
    expect(
      d
        .records()
        .filter((r) => r.key === key)
        .map((r) => r.id),
    ).toEqual([id]);

    // A retry while it runs follows the first session to its outcome.
    await gate.waitFor(1);
    const follower = d.spawnCli(['trigger', 'gated', '--key', key]);
    await follower.waitForStdout(new RegExp(`^session ${id} already for key ${key} accepted\\n`));
    gate.open();
    const followed = await follower.result;
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toMatch(new RegExp(`\\nsession ${id} succeeded, exit code 0`));

    // Finished: the key still returns it, with its outcome at once.
    const late = await d.cli(['trigger', 'gated', '--key', key, '--json']);
    expect(late.code).toBe(0);
    expect(json(late.stdout)).toMatchObject({ sessionId: id, outcome: 'succeeded' });

    // The key belongs to an agent.
    const other = await d.cli(['trigger', 'ok', '--key', key, '--json']);
    expect(other.code).toBe(3);
    expect(json(other.stdout)).toMatchObject({ rejection: 'key_conflict', retryable: false });
    expect(d.records().filter((r) => r.key === key)).toHaveLength(1);
  });
});
