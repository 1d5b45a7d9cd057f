/**
 * Every client command of the real CLI against a daemon that drops the connection mid-request (it
 * closes with the request unread, as a daemon killed at that moment does: the client reads
 * ECONNRESET, or the end of the stream). No command crashes with a stack trace: each prints one
 * `agentd: ...` line and exits with the documented code (4, a lost connection), with `--json` also
 * one `{"error":"connection_lost",...}` object; `wait` and `trigger` wait for the daemon to come back
 * and exit with the session's outcome. No Podman: a fake daemon on a Unix socket.
 */
import type { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { type CliResult, runCli, spawnCli, stopCliProcesses } from '../helpers/daemon.js';
import { replyLine, scriptedDaemon } from '../helpers/fake-daemon.js';

const ID = '0123456789abcdef';
const RECORD = {
  version: 1,
  id: ID,
  agent: 'a',
  repo: 'git://127.0.0.1/x.git',
  acceptedAt: '2026-01-01T00:00:00.000Z',
  phase: 'finished',
  phases: [{ phase: 'finished', at: '2026-01-01T00:00:00.005Z' }],
  outcome: 'succeeded',
  exitCode: 0,
  durationMs: 5,
};

afterAll(() => stopCliProcesses());

/**
 * A fake daemon: each connection is handed to `handle` with its number (1, 2, ...) and arrives
 * unread (`pauseOnConnect`), so closing it drops the client's request unread.
 */
async function fakeDaemon(handle: (socket: Socket, n: number) => void): Promise<string> {
  return (await scriptedDaemon(() => {}, { pauseOnConnect: true, onConnection: handle })).path;
}

/** Drops a connection a little after it opened: the client's request is (almost always) unread. */
function drop(socket: Socket): void {
  setTimeout(() => socket.destroy(), 200);
}

/** Reads one request and writes the replies; `written` runs once the last of them is written. */
function answer(
  socket: Socket,
  replies: (request: { type: string }) => object[],
  written?: () => void,
): void {
  socket.resume();
  socket.once('data', (chunk: Buffer) => {
    const request = JSON.parse(chunk.toString().split('\n')[0] ?? '{}') as { type: string };
    const lines = replies(request).map(replyLine);
    for (const [i, line] of lines.entries()) socket.write(line, i === lines.length - 1 ? written : undefined);
  });
}

function expectNoCrash(args: string[], result: CliResult): void {
  const what = `agentd ${args.join(' ')}: ${result.stderr}`;
  expect(result.stderr, what).not.toMatch(/^\s+at /m);
  expect(result.stderr, what).not.toMatch(/unexpected error|ECONNRESET|EPIPE|Error:/);
  expect(result.stderr, what).toMatch(/^agentd: .*connection/m);
}

describe('a daemon that drops the connection mid-request', () => {
  it('every client command says so and exits 4, one JSON object with --json', async () => {
    const socket = await fakeDaemon(drop);
    const commands: { args: string[]; json?: boolean; input?: string; code?: number }[] = [
      { args: ['status'] },
      { args: ['status', '--json'], json: true },
      { args: ['show', ID] },
      { args: ['show', ID, '--json'], json: true },
      { args: ['cancel', ID] },
      { args: ['history', '--json'], json: true },
      { args: ['agents'] },
      { args: ['hosts', '--json'], json: true },
      { args: ['hosts', 'drain', 'local'] },
      { args: ['reload'] },
      { args: ['export', ID] },
      { args: ['logs', ID] },
      { args: ['logs', ID, '--json'], json: true },
      { args: ['send'], input: '{"type":"status"}\n' },
      { args: ['trigger', 'a'] },
      { args: ['trigger', 'a', '--json'], json: true },
      { args: ['trigger', 'a', '--detach'] },
    ];
    const results = await Promise.all(
      commands.map((c) =>
        runCli([...c.args, '--socket', socket], c.input === undefined ? {} : { input: c.input }),
      ),
    );
    commands.forEach((c, i) => {
      const result = results[i] as CliResult;
      expectNoCrash(c.args, result);
      expect(result.code, `agentd ${c.args.join(' ')}: ${result.stderr}`).toBe(c.code ?? 4);
      if (c.json) {
        expect(JSON.parse(result.stdout), c.args.join(' ')).toMatchObject({
          error: 'connection_lost',
          code: 4,
        });
      }
    });
  });

  it('wait waits for the daemon to answer again and exits with the outcome', async () => {
    const socket = await fakeDaemon((conn, n) => {
      if (n === 1) drop(conn);
      else answer(conn, () => [{ type: 'outcome', sessionId: ID, record: RECORD }]);
    });
    const result = await runCli(['wait', ID, '--socket', socket]);
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/lost the connection to the daemon; session 0123456789abcdef goes on/);
  });

  it('trigger follows its session again after the daemon dropped it and exits with the outcome', async () => {
    const socket = await fakeDaemon((conn, n) => {
      if (n === 1) {
        // Accepted, one line of output, then the daemon is gone.
        answer(
          conn,
          () => [
            { type: 'accepted', sessionId: ID, queued: false, position: 0 },
            { type: 'output', sessionId: ID, seq: 1, stream: 'stdout', line: 'first' },
          ],
          () => conn.destroy(),
        );
      } else {
        answer(conn, () => [
          { type: 'output', sessionId: ID, seq: 2, stream: 'stdout', line: 'second' },
          { type: 'outcome', sessionId: ID, record: RECORD },
        ]);
      }
    });
    const cli = spawnCli(['trigger', 'a', '--socket', socket]);
    const result = await cli.result;
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/first\nsecond\n/);
    expect(result.stdout).toContain(`session ${ID} succeeded`);
  });
});
