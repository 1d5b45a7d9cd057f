/**
 * `agentd status` exits 0 only for a daemon that is `ready` and not degraded, so that a health check or a
 * systemd/cron script tells a sick daemon from a healthy one without reading the JSON: 10 degraded,
 * 11 not ready yet, 12 shutting down, 13 failed, 14 ready but no Podman host answers, 15 ready but a
 * schedule or a host is no longer supervised (README: Outcomes and exit codes). `--json` prints the
 * whole status whatever the code. Before, every answered status exited 0.
 */
import { spawnSync } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT, exitCodeForStatus } from '../../src/cli/exit-codes.js';
import { noHostAnswers } from '../../src/daemon/port.js';
import type { HostStatus } from '../../src/protocol/replies.js';
import { runCliInProcess as run } from '../helpers/cli-in-process.js';
import { fakeDaemon } from '../helpers/fake-daemon.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

describe('exitCodeForStatus', () => {
  it.each([
    [{ state: 'ready' }, EXIT.succeeded],
    [{ state: 'degraded', degraded: 'state dir full: cannot record session ...' }, EXIT.degraded],
    // A reason without the state, or the state without one: degraded either way.
    [{ state: 'degraded' }, EXIT.degraded],
    [{ state: 'ready', degraded: 'state dir full' }, EXIT.degraded],
    [{ state: 'ready', noHost: 'no Podman host answers (local: down): ...' }, EXIT.noHost],
    // The state dir is the first thing to fix: it is said even when no host answers either.
    [{ state: 'degraded', degraded: 'state dir full', noHost: 'no Podman host answers' }, EXIT.degraded],
    [
      { state: 'ready', schedules: [{}, { failed: 'the schedule failed and fires no more: ...' }] },
      EXIT.supervisionFailed,
    ],
    [{ state: 'ready', schedules: [{}, {}] }, EXIT.succeeded],
    [{ state: 'ready', failedHosts: [{ name: 'b', problem: '...' }] }, EXIT.supervisionFailed],
    [{ state: 'ready', failedHosts: [] }, EXIT.succeeded],
    // Nothing runs at all: said before what a reload would fix.
    [
      { state: 'ready', noHost: 'no Podman host answers', failedHosts: [{ name: 'b', problem: '' }] },
      EXIT.noHost,
    ],
    [{ state: 'degraded', schedules: [{ failed: '...' }] }, EXIT.degraded],
    [{ state: 'opening' }, EXIT.notReady],
    [{ state: 'reconciling' }, EXIT.notReady],
    [{ state: 'shutdown.draining' }, EXIT.shuttingDown],
    [{ state: 'shutdown.stopped' }, EXIT.shuttingDown],
    [{ state: 'failed', failed: 'the daemon failed: EIO; it is exiting, restart it' }, EXIT.daemonFailed],
    [{ state: 'failed' }, EXIT.daemonFailed],
    // A failure said beside any state wins: the daemon is exiting.
    [{ state: 'degraded', degraded: 'x', failed: 'the daemon failed: x' }, EXIT.daemonFailed],
    // A state a newer daemon may add is no reason for a script to think all is well.
    [{ state: 'hibernating' }, EXIT.notReady],
    [{ state: '' }, EXIT.notReady],
  ])('%j exits %i', (status, code) => {
    expect(exitCodeForStatus(status)).toBe(code);
  });

  it('gives each state its own code, none of them another client code', () => {
    const own = ['degraded', 'notReady', 'shuttingDown', 'daemonFailed', 'noHost', 'supervisionFailed'];
    const codes = own.map((name) => EXIT[name as keyof typeof EXIT]);
    expect(new Set(codes).size).toBe(codes.length);
    const others = Object.entries(EXIT)
      .filter(([name]) => !own.includes(name))
      .map(([, code]) => code);
    for (const code of codes) expect(others).not.toContain(code);
  });
});

function host(name: string, state: HostStatus['state'], drained = false): HostStatus {
  return { name, state, drained, running: 0, maxSessions: 4, labels: {} };
}

describe('noHostAnswers: the status of a daemon no Podman host answers', () => {
  it('says nothing while one host is up, drained or not (as /readyz)', () => {
    expect(noHostAnswers([host('local', 'up')])).toEqual({});
    expect(noHostAnswers([host('a', 'down'), host('b', 'up', true)])).toEqual({});
    expect(noHostAnswers([host('a', 'reconciling'), host('b', 'up')])).toEqual({});
  });

  it('names every host and its state, never its problem, when none is up', () => {
    expect(noHostAnswers([host('a', 'down'), host('b', 'reconciling')])).toEqual({
      noHost:
        'no Podman host answers (a: down; b: reconciling): sessions wait in the queue until one does; `agentd hosts` says why',
    });
  });
});

/** A status reply as the daemon sends it, in `state`. */
function statusReply(id: string | undefined, fields: Record<string, unknown>): string {
  return JSON.stringify({
    v: 2,
    id,
    type: 'status',
    pid: 4242,
    version: '1.2.3',
    instanceId: 'abcdef0123456789',
    socket: '/run/agentd/agentd.sock',
    uptimeMs: 1500,
    maxSessions: 4,
    running: [],
    queued: [],
    recent: [],
    ...fields,
  });
}

describe('agentd status against a daemon in each state', () => {
  it.each([
    [{ state: 'ready' }, EXIT.succeeded, /^agentd 1\.2\.3: ready, pid 4242/],
    [
      { state: 'degraded', degraded: 'state dir full: cannot record session 0123456789abcdef (ENOSPC)' },
      EXIT.degraded,
      /^agentd 1\.2\.3: degraded, .*\ndegraded: state dir full: cannot record session/,
    ],
    [
      {
        state: 'ready',
        noHost: 'no Podman host answers (gone: down): sessions wait in the queue until one does',
      },
      EXIT.noHost,
      /^agentd 1\.2\.3: ready, .*\nno Podman host answers \(gone: down\): sessions wait/,
    ],
    [
      {
        state: 'ready',
        schedules: [
          {
            agent: 'tick',
            cron: '*/5 * * * * *',
            overlap: 'skip',
            catchUp: 'none',
            failed:
              'the schedule failed and fires no more: EIO; `agentd reload` or a restart starts it again',
          },
        ],
      },
      EXIT.supervisionFailed,
      /\nSCHEDULES\n {2}tick {2}"\*\/5 \* \* \* \* \*" {2}FAILED/,
    ],
    [
      { state: 'ready', failedHosts: [{ name: 'b', problem: 'the supervision of this host failed: EIO' }] },
      EXIT.supervisionFailed,
      /^agentd 1\.2\.3: ready, .*\nhost b failed: the supervision of this host failed: EIO\n/,
    ],
    [{ state: 'opening' }, EXIT.notReady, /^agentd 1\.2\.3: opening, /],
    [{ state: 'shutdown.draining' }, EXIT.shuttingDown, /^agentd 1\.2\.3: shutdown\.draining, /],
    [
      { state: 'failed', failed: 'the daemon failed: EIO; it is exiting, restart it' },
      EXIT.daemonFailed,
      /^agentd 1\.2\.3: failed, .*\nthe daemon failed: EIO; it is exiting, restart it\n/,
    ],
  ])('%j: exit %i, the same status printed, the whole object with --json', async (fields, code, text) => {
    // Every request is answered with a status reply of `fields`.
    const path = await fakeDaemon((_type, id) => statusReply(id, fields));
    for (const argv of [
      ['status', '--socket', path],
      ['status', '--socket', path, '--json'],
    ]) {
      const result = await run(argv);
      expect(result.code, argv.join(' ')).toBe(code);
      expect(result.stderr, argv.join(' ')).toBe('');
      if (argv.includes('--json')) {
        const printed = JSON.parse(result.stdout) as Record<string, unknown>;
        expect(printed).toEqual(
          JSON.parse(statusReply(undefined, fields), (key, value) =>
            key === 'v' || key === 'type' ? undefined : value,
          ),
        );
      } else {
        expect(result.stdout).toMatch(text);
      }
    }
  });
});

describe('agentd status while a daemon starts (no socket yet: it reconciles Podman first)', () => {
  it('exits 11 and says which daemon is starting, where before it said no daemon answers (69)', async () => {
    const socket = join(makeTempDir('agentd-unit-status-'), 'agentd.sock');
    writeFileSync(`${socket}.starting`, `${process.pid}\n`, { mode: 0o600 });
    const text = await run(['status', '--socket', socket]);
    expect(text.code).toBe(EXIT.notReady);
    expect(text.stdout).toBe('');
    expect(text.stderr).toBe(
      `agentd: agentd (pid ${process.pid}) is starting and has not opened its socket ${socket} yet: it reconciles Podman first (minutes after a crash that left many containers and secrets); try again in a moment\n`,
    );
    const json = await run(['status', '--socket', socket, '--json']);
    expect(json.code).toBe(EXIT.notReady);
    expect(JSON.parse(json.stdout)).toMatchObject({
      error: 'starting',
      pid: process.pid,
      code: EXIT.notReady,
    });
    // Other commands keep their code: no daemon answers them yet.
    expect((await run(['history', '--socket', socket])).code).toBe(EXIT.unreachable);
  });

  it('ignores a marker whose process is gone, that is not a pid, or that is a symbolic link', async () => {
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    const dir = makeTempDir('agentd-unit-status-');
    const target = join(dir, 'elsewhere');
    writeFileSync(target, `${process.pid}\n`);
    for (const [name, plant] of [
      ['gone', (path: string) => writeFileSync(path, `${gone.stdout}\n`)],
      ['junk', (path: string) => writeFileSync(path, 'not a pid\n')],
      ['link', (path: string) => symlinkSync(target, path)],
    ] as const) {
      const socket = join(dir, `${name}.sock`);
      plant(`${socket}.starting`);
      const result = await run(['status', '--socket', socket]);
      expect(result.code, name).toBe(EXIT.unreachable);
      expect(result.stderr, name).toMatch(/^agentd: no agentd daemon answers on /);
    }
  });
});
