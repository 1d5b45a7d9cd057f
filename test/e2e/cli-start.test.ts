/**
 * The start of `agentd` as bin/agentd runs it: dist/cli/agentd.cjs, dist/cli/index.js with the quick path
 * (plain `trigger`, `status`, `history`) in one CommonJS file (scripts/bundle-cli.mjs, part of `npm run
 * build`). Every call pays the start: as some thirty ES modules it was about 80 ms of CPU for a `trigger
 * --quiet` where `node -e 0` takes 30, as one file about 50 (bench/findings.md, "The CLI's start-up").
 * Checked here: the file is all the quick path needs, it loads no perf_hooks, and it answers every
 * command line exactly as dist/cli/index.js does. No Podman: a fake daemon on a Unix socket.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { scriptedDaemon } from '../helpers/fake-daemon.js';
import { makeTempDir } from '../helpers/resources.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'agentd');
const INDEX = join(ROOT, 'dist', 'cli', 'index.js');
const ID = '0123456789abcdef';
/** A session the fake daemon keeps no record of (unknown_session, exit 6). */
const UNKNOWN = 'fedcba9876543210';
/** A session that runs on: a `wait` is never answered. */
const RUNNING = '1111111111111111';
/** A `wait` answered with an outcome reply whose record has no outcome. */
const NO_OUTCOME = '2222222222222222';
const AT = '2026-01-01T00:00:00.000Z';
const RECORD = {
  version: 1,
  id: ID,
  agent: 'demo',
  repo: 'git://127.0.0.1/x.git',
  acceptedAt: AT,
  startedAt: AT,
  finishedAt: AT,
  phase: 'finished',
  phases: ['queued', 'creating', 'running', 'finished'].map((phase) => ({ phase, at: AT })),
  outcome: 'failed',
  kind: 'failure',
  exitCode: 3,
  durationMs: 450,
};

let socket = '';

beforeAll(async () => {
  // Answers a connection's request at once, as a daemon with a recorded session would, and closes it.
  const daemon = await scriptedDaemon((request, connection, index) => {
    if (index > 0) return;
    const base = { v: 2, ...(request.id === undefined ? {} : { id: request.id }) };
    if (request.type === 'wait' && request.sessionId === RUNNING) return;
    const unknown = {
      type: 'error',
      code: 'unknown_session',
      message: `no session ${request.sessionId}`,
      problems: [],
      retryable: false,
    };
    const known = request.sessionId === ID;
    const outcome = { type: 'outcome', sessionId: ID, agent: 'demo', outcome: 'failed', record: RECORD };
    const line = { type: 'output', sessionId: ID, stream: 'stdout', time: AT };
    const replies: object[] =
      request.type === 'wait' && request.sessionId === NO_OUTCOME
        ? [
            {
              type: 'outcome',
              sessionId: NO_OUTCOME,
              record: { ...RECORD, id: NO_OUTCOME, phase: 'running', outcome: undefined },
            },
          ]
        : ['wait', 'show', 'cancel', 'logs'].includes(request.type) && !known
          ? [unknown]
          : request.type === 'wait'
            ? [{ type: 'heartbeat' }, outcome]
            : request.type === 'show'
              ? [{ type: 'session', sessionId: ID, record: RECORD }]
              : request.type === 'cancel'
                ? [{ type: 'cancelling', sessionId: ID, wasQueued: false }]
                : request.type === 'logs'
                  ? [
                      { ...line, seq: 1, line: 'one' },
                      { ...line, seq: 2, line: 'two', stream: 'stderr' },
                      outcome,
                    ]
                  : request.type === 'trigger'
                    ? [
                        { type: 'accepted', sessionId: ID, queued: false, position: 0 },
                        { type: 'phase', sessionId: ID, agent: 'demo', phase: 'running' },
                        {
                          type: 'outcome',
                          sessionId: ID,
                          agent: 'demo',
                          outcome: 'failed',
                          record: RECORD,
                        },
                      ]
                    : request.type === 'status'
                      ? [
                          {
                            type: 'status',
                            state: 'ready',
                            pid: 1,
                            version: '0.0.0',
                            instanceId: 'i',
                            socket,
                            uptimeMs: 1000,
                            maxSessions: 4,
                            running: [],
                            queued: [],
                            recent: [RECORD],
                          },
                        ]
                      : request.type === 'history'
                        ? [{ type: 'history', sessions: [RECORD, RECORD], more: 0 }]
                        : [{ type: 'error', code: 'not_found', message: `no session ${ID}` }];
    connection.end(replies.map((reply) => `${JSON.stringify({ ...base, ...reply })}\n`).join(''));
  });
  socket = daemon.path;
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const command = file.endsWith('.js') ? process.execPath : file;
  const argv = file.endsWith('.js') ? [file, ...args] : args;
  return new Promise((resolve) => {
    execFile(
      command,
      argv,
      { env: { ...process.env, AGENTD_SOCKET: socket, ...env } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('bin/agentd: the quick path in one file', () => {
  it('plain trigger, status and history need nothing of dist/ but dist/cli/agentd.cjs', async () => {
    // A package with only the wrapper, package.json (the version) and that one file.
    const pkg = makeTempDir('agentd-e2e-start-pkg-');
    mkdirSync(join(pkg, 'bin'));
    mkdirSync(join(pkg, 'dist', 'cli'), { recursive: true });
    copyFileSync(BIN, join(pkg, 'bin', 'agentd'));
    copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
    copyFileSync(join(ROOT, 'dist', 'cli', 'agentd.cjs'), join(pkg, 'dist', 'cli', 'agentd.cjs'));
    const bin = join(pkg, 'bin', 'agentd');
    const trigger = await run(bin, ['trigger', 'demo', '--quiet']);
    expect(trigger, trigger.stderr).toMatchObject({ code: 1, stderr: '' });
    expect(trigger.stdout).toMatch(/^session 0123456789abcdef failed/);
    const status = await run(bin, ['status']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^agentd 0\.0\.0: ready/);
    const history = await run(bin, ['history', '--json']);
    expect(history.code, history.stderr).toBe(0);
    expect(JSON.parse(history.stdout)).toMatchObject({ sessions: [{ id: ID }, { id: ID }] });
    expect((await run(bin, ['--version'])).stdout).toMatch(/^agentd \d+\.\d+\.\d+/);
    // Anything else loads the rest of dist/, which this package lacks: the same file is the entry still.
    const help = await run(bin, ['help']);
    expect(help.code).not.toBe(0);
    expect(help.stderr).toMatch(/Cannot find module '.*dist\/cli\/cli\.js'/);
  });

  it('loads no ES module and no perf_hooks for a plain trigger, status, wait, show, cancel or logs', async () => {
    const dir = makeTempDir('agentd-e2e-start-loads-');
    const preload = join(dir, 'loads.cjs');
    writeFileSync(
      preload,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(join(dir, 'loads.json'))}, JSON.stringify({ builtins: process.moduleLoadList, files: Object.keys(require.cache) })));\n`,
    );
    for (const args of [
      ['trigger', 'demo', '--quiet'],
      ['status'],
      ['wait', ID],
      ['show', ID, '--json'],
      ['cancel', ID],
      ['logs', ID],
    ]) {
      const result = await run(BIN, args, { NODE_OPTIONS: `--require ${preload}` });
      // logs prints the session's stderr and its outcome line there.
      expect(result.stderr, args.join(' ')).toMatch(
        args[0] === 'logs' ? /^two\nsession 0123456789abcdef failed.*\n$/ : /^$/,
      );
      const loads = JSON.parse(readFileSync(join(dir, 'loads.json'), 'utf8')) as {
        builtins: string[];
        files: string[];
      };
      expect(loads.files.filter((file) => file !== preload)).toEqual([
        join(ROOT, 'dist', 'cli', 'agentd.cjs'),
      ]);
      // performance.now() loads perf_hooks and nine modules with it; the client's steady clock does not.
      expect(loads.builtins).not.toContain('NativeModule perf_hooks');
      // Node's ES module loader reads, links and runs each ES module; none is loaded.
      expect(loads.builtins).not.toContain('NativeModule internal/modules/esm/module_job');
    }
  });

  it('answers every command line as dist/cli/index.js does', async () => {
    const lines = [
      ['trigger', 'demo', '--quiet'],
      ['trigger', 'demo', 'git://127.0.0.1/x.git', '--exit-code', 'command'],
      ['trigger', 'demo', '--json'],
      ['trigger', 'demo', '--detach'],
      ['trigger', 'demo', '--bogus'],
      ['trigger'],
      ['status'],
      ['status', '--json'],
      ['status', '--json', '--bogus'],
      ['history'],
      ['history', '--limit', '0'],
      // Without the session id (clipanion words the error by the command line: not in the list below).
      ['wait'],
      ['cancel', '--json'],
      ['show', ID],
      ['show', ID, '--json'],
      ['--version'],
      ['help'],
    ];
    for (const args of lines) {
      const [bin, index] = await Promise.all([run(BIN, args), run(INDEX, args)]);
      // The one field that differs from run to run.
      const steady = (text: string) => text.replace(/"elapsedMs":\d+/g, '"elapsedMs":0');
      expect({ ...bin, stdout: steady(bin.stdout) }, args.join(' ')).toEqual({
        ...index,
        stdout: steady(index.stdout),
      });
    }
    // And without a daemon: the same message and exit code (69).
    const none = join(makeTempDir('agentd-e2e-start-none-'), 'none.sock');
    for (const args of [
      ['trigger', 'demo', '--quiet'],
      ['status', '--json'],
      ['history'],
      ['wait', ID, '--json'],
      ['show', ID],
      ['cancel', ID, '--json'],
      ['logs', ID],
    ]) {
      const [bin, index] = await Promise.all([
        run(BIN, args, { AGENTD_SOCKET: none }),
        run(INDEX, args, { AGENTD_SOCKET: none }),
      ]);
      expect(bin.code, args.join(' ')).toBe(69);
      expect(bin, args.join(' ')).toEqual(index);
    }
  });

  it('answers wait, show, cancel and logs as their clipanion commands do, errors included', async () => {
    // `--socket=PATH` is a form the quick path leaves to clipanion: dist/cli/index.js runs the clipanion
    // command, bin/agentd (given `--socket PATH`) the quick path wherever it takes the line.
    const lines = [
      ['wait', ID],
      ['wait', ID, '--json'],
      ['wait', ID, '--exit-code', 'command'],
      ['wait', ID, '--strict', '--timeout', '10m'],
      ['wait', UNKNOWN],
      ['wait', UNKNOWN, '--json'],
      ['wait', RUNNING, '--timeout', '1s'],
      ['wait', RUNNING, '--json', '--timeout', '1s'],
      ['wait', NO_OUTCOME],
      ['wait', NO_OUTCOME, '--json'],
      ['wait', ID, '--timeout', 'soon'],
      ['wait', ID, '--timeout', 'soon', '--json'],
      ['wait', ID, '--exit-code', 'banana'],
      ['wait', 'not-an-id'],
      ['wait', ID, '--bogus'],
      ['show', ID],
      ['show', ID, '--json'],
      ['show', UNKNOWN],
      ['show', UNKNOWN, '--json'],
      ['show', ID.toUpperCase(), '--json'],
      ['show', ID, ID],
      ['cancel', ID],
      ['cancel', ID, '--json'],
      ['cancel', UNKNOWN, '--json'],
      ['logs', ID],
      ['logs', ID, '--json'],
      ['logs', ID, '--raw', '--after', '1'],
      ['logs', ID, '-f'],
      ['logs', ID, '--after', '-1'],
      ['logs', UNKNOWN, '--json'],
    ];
    for (const args of lines) {
      {
        const started = Date.now();
        const [bin, index] = await Promise.all([
          run(BIN, [...args, '--socket', socket]),
          run(INDEX, [...args, `--socket=${socket}`]),
        ]);
        expect(bin, args.join(' ')).toEqual(index);
        if (args[1] === NO_OUTCOME) {
          // Refused at once as bad_reply (4): not taken for a lost daemon and looked for again for a minute.
          expect(bin.code).toBe(4);
          expect(bin.stderr).toMatch(/^agentd: the daemon sent an outcome reply whose record has no outcome/);
          expect(Date.now() - started).toBeLessThan(20_000);
        }
      }
    }
    const codes = async (args: string[]) => (await run(BIN, [...args, '--socket', socket])).code;
    expect(await codes(['wait', ID])).toBe(1);
    expect(await codes(['wait', UNKNOWN])).toBe(6);
    expect(await codes(['wait', RUNNING, '--timeout', '1s'])).toBe(7);
    expect(await codes(['wait', ID, '--timeout', 'soon'])).toBe(2);
    expect(await codes(['show', UNKNOWN])).toBe(6);
    expect(await codes(['cancel', ID])).toBe(0);
  }, 180_000);
});
