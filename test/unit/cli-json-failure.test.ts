/**
 * README: "A command that fails with `--json` still prints one object on stdout". Every client command
 * with `--json`, run against a socket where no daemon answers: one JSON object on stdout naming the
 * failure and the exit code, the message on stderr, no stack trace.
 */

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { ANSWER_TIMEOUT_MS, DaemonClient } from '../../src/cli/client.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { runCliInProcess as run } from '../helpers/cli-in-process.js';
import { fakeDaemon } from '../helpers/fake-daemon.js';
import { makeTempDir } from '../helpers/resources.js';

const ID = '0123456789abcdef';
const COMMANDS: string[][] = [
  ['status'],
  ['hosts'],
  ['history'],
  ['agents'],
  ['show', ID],
  ['wait', ID],
  ['logs', ID],
  ['cancel', ID],
  ['reload'],
  ['stop'],
  ['trigger', 'demo'],
];

describe('--json when no daemon answers', () => {
  const socket = join(makeTempDir('agentd-unit-json-'), 'agentd.sock');
  it.each(COMMANDS)('%s prints one JSON object with the failure and the exit code', async (...argv) => {
    const result = await run([...argv, '--json', '--socket', socket]);
    expect(result.code).toBe(EXIT.unreachable);
    const lines = result.stdout.trim().split('\n');
    expect(lines, result.stdout).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ error: 'unreachable', code: EXIT.unreachable });
    expect(result.stderr).toMatch(/^agentd: /);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});

/** Runs a command against real sockets with fake timers, stepping time on until the CLI has given up. */
async function runPastAnswerTimeout(argv: string[]): Promise<Awaited<ReturnType<typeof run>>> {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  try {
    const pending = run(argv);
    let done = false;
    void pending.finally(() => {
      done = true;
    });
    for (let waited = 0; !done && waited < 2 * ANSWER_TIMEOUT_MS; waited += 10_000) {
      await new Promise((resolve) => setImmediate(resolve));
      await vi.advanceTimersByTimeAsync(10_000);
    }
    return await pending;
  } finally {
    vi.useRealTimers();
  }
}

describe('a daemon that answers wrong, or not at all', () => {
  it('a request without an answer ends with no_answer, not a wait for ever', async () => {
    const path = await fakeDaemon(() => undefined);
    const client = await DaemonClient.connect(path);
    const reply = await client.request({ type: 'status' }, 200);
    client.close();
    expect(reply).toMatchObject({ type: 'error', code: 'no_answer' });
  });

  it.each(['null', '42', '{}', '"status"'])(
    'a reply %s is a bad reply: exit 4, one JSON object, no stack',
    async (line) => {
      const path = await fakeDaemon(() => line);
      for (const argv of [['show', ID], ['agents'], ['status'], ['reload'], ['stop']]) {
        const result = await run([...argv, '--json', '--socket', path]);
        expect(result.code, `${argv[0]}: ${result.stderr}`).toBe(EXIT.infrastructure);
        expect(JSON.parse(result.stdout.trim())).toMatchObject({
          error: 'bad_reply',
          code: EXIT.infrastructure,
        });
        expect(result.stderr + result.stdout).not.toMatch(/\n\s+at /);
      }
    },
  );

  it('hosts drain and undrain: a reply that is none is exit 4 (the daemon refused nothing), not 1', async () => {
    const path = await fakeDaemon(() => '{}');
    for (const type of ['drain', 'undrain']) {
      const result = await run(['hosts', type, 'build2', '--socket', path]);
      expect(result.code, `${type}: ${result.stderr}`).toBe(EXIT.infrastructure);
      expect(result.stderr).toMatch(/^agentd: the daemon sent a line that is not a message/);
    }
  });

  it('send stops at a reply that is none: exit 4, and the events after it are not sent', async () => {
    const seen: string[] = [];
    const path = await fakeDaemon((_type, id) => {
      seen.push(id ?? '');
      return 'null';
    });
    const file = join(makeTempDir('agentd-unit-send-'), 'events.jsonl');
    writeFileSync(file, '{"type":"x"}\n{"type":"y"}\n');
    const result = await run(['send', '--file', file, '--socket', path]);
    expect(result.code, result.stderr).toBe(EXIT.infrastructure);
    expect(seen).toEqual(['1']);
    expect(JSON.parse(result.stdout.trim())).toMatchObject({ line: 1, code: 'bad_reply' });
    expect(result.stderr).toMatch(/events\.jsonl:1: the daemon sent a line that is not a message/);
  });

  it('trigger to a daemon that takes it and never accepts or rejects it ends with no_answer (exit 4)', async () => {
    // Something that answers every line with a message of no kind the trigger waits for.
    const path = await fakeDaemon(
      () =>
        '{"type":"hello","protocol":2,"protocols":[1,2],"version":"0.1.0","pid":1,"instanceId":"x","state":"ready"}',
    );
    const result = await runPastAnswerTimeout(['trigger', 'demo', '--json', '--socket', path]);
    expect(result.code, result.stderr).toBe(EXIT.infrastructure);
    expect(JSON.parse(result.stdout.trim())).toMatchObject({
      error: 'no_answer',
      code: EXIT.infrastructure,
    });
  });

  it('logs (without --follow) gives up on a daemon that stops sending the history: no_answer, exit 4', async () => {
    const path = await fakeDaemon(() => `{"type":"output","sessionId":"${ID}","line":"first"}`);
    const result = await runPastAnswerTimeout(['logs', ID, '--json', '--socket', path]);
    expect(result.code, result.stderr).toBe(EXIT.infrastructure);
    const lines = result.stdout.trim().split('\n');
    expect(JSON.parse(lines[0] as string)).toMatchObject({ text: 'first' });
    expect(JSON.parse(lines[1] as string)).toMatchObject({ error: 'no_answer', code: EXIT.infrastructure });
  });

  it('a request that got no answer in time closes the connection: a late reply is never taken for the next one', async () => {
    // Answers each request 300 ms late, with its id.
    const path = await fakeDaemon({ type: 'event.result' }, { delayMs: 300 });
    const client = await DaemonClient.connect(path);
    const first = await client.request({ type: 'event', id: '1', event: { type: 'shutdown' } }, 100);
    expect(first).toMatchObject({ type: 'error', code: 'no_answer' });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const second = await client.request({ type: 'event', id: '2', event: { type: 'shutdown' } }, 1000);
    expect(second).toBeUndefined();
    client.close();
  });

  it('--socket "" is refused as it is parsed, never taken for the default socket', async () => {
    // In process, clipanion reports a usage error with its own code (the entry maps it to 2: see below).
    for (const argv of [['status'], ['trigger', 'demo'], ['history'], ['agents'], ['logs', ID]]) {
      const result = await run([...argv, '--socket', '']);
      expect(result.code, argv[0]).not.toBe(EXIT.unreachable);
      expect(result.stdout + result.stderr, argv[0]).toMatch(/Invalid value for --socket: is empty/);
    }
  });

  it('a reply without its fields is a bad reply: exit 4, what is missing, no stack', async () => {
    const path = await fakeDaemon(() => '{"type":"hosts"}');
    const result = await run(['hosts', '--socket', path]);
    expect(result.code).toBe(EXIT.infrastructure);
    expect(result.stderr).toMatch(/^agentd: the daemon sent a malformed hosts reply \(hosts is missing\)/);
    expect(result.stderr + result.stdout).not.toMatch(/\n\s+at /);
  });

  it('an agents reply without its agents is a bad reply: exit 4, what is missing, no stack', async () => {
    const path = await fakeDaemon(() => '{"type":"agents"}');
    const result = await run(['agents', '--socket', path]);
    expect(result.code).toBe(EXIT.infrastructure);
    expect(result.stderr).toMatch(/^agentd: the daemon sent a malformed agents reply \(agents is missing\)/);
    expect(result.stderr + result.stdout).not.toMatch(/\n\s+at /);
  });

  it('export -o to a file that exists, or into a directory that does not, says so (exit 1, no stack), and leaves nothing', async () => {
    const dir = makeTempDir('agentd-unit-export-');
    const recordDir = join(dir, 'records', 'demo', ID);
    mkdirSync(recordDir, { recursive: true });
    writeFileSync(join(recordDir, 'session.json'), '{}');
    const record = {
      version: 1,
      id: ID,
      agent: 'demo',
      repo: 'x',
      acceptedAt: '2026-01-01T00:00:00.000Z',
      phase: 'finished',
      phases: [],
      outcome: 'succeeded',
      recordDir,
    };
    const path = await fakeDaemon(() => JSON.stringify({ type: 'session', sessionId: ID, record }));
    const existing = join(dir, 'existing.tgz');
    writeFileSync(existing, 'keep');
    for (const output of [existing, join(dir, 'missing', 'x.tgz')]) {
      const result = await run(['export', ID, '-o', output, '--socket', path]);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(/^agentd: cannot export session 0123456789abcdef: .*(EEXIST|ENOENT)/);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
    expect(existsSync(join(dir, 'missing'))).toBe(false);
    // A record directory that is gone: no empty file is left behind (a retry would meet EEXIST).
    const gone = { ...record, recordDir: join(dir, 'records', 'demo', 'gone') };
    const other = await fakeDaemon(() => JSON.stringify({ type: 'session', sessionId: ID, record: gone }));
    const result = await run(['export', ID, '-o', join(dir, 'none.tgz'), '--socket', other]);
    expect(result.code).toBe(1);
    expect(existsSync(join(dir, 'none.tgz'))).toBe(false);
    const fresh = join(dir, 'fresh.tgz');
    const ok = await run(['export', ID, '-o', fresh, '--socket', path]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(existsSync(fresh)).toBe(true);
  });
});

/** The built CLI as a process (parse errors are reported by its entry, before any command runs). */
const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'index.js');

describe('--json with a usage error', () => {
  it.skipIf(!existsSync(CLI))(
    'prints one JSON object naming the error, exit 2, whatever the bad option',
    async () => {
      for (const argv of [
        ['wait', ID, '--timeout', 'garbage', '--json'],
        ['history', '--bogus', '--json'],
        ['show', 'not-a-session', '--json'],
        // An empty --socket would quietly be the default socket (status and trigger take the quick path).
        ['status', '--socket', '', '--json'],
        ['trigger', 'demo', '--socket', '', '--json'],
        ['agents', '--socket', '', '--json'],
      ]) {
        const result = await promisify(execFile)(process.execPath, [CLI, ...argv]).catch(
          (error: { code: number; stdout: string; stderr: string }) => error,
        );
        expect('code' in result ? result.code : 0, argv.join(' ')).toBe(EXIT.usage);
        const lines = result.stdout.trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(JSON.parse(lines[0] as string)).toMatchObject({ error: 'usage', code: EXIT.usage });
      }
    },
  );
});
