/**
 * A socket that this user may not connect to (another user's daemon: EACCES, EPERM) is not "no daemon":
 * the CLI says the socket is there and whose it is to use, and exits 77, not 69 with "start one".
 * connect(2) is stubbed: the tests run as root, whom file modes do not stop.
 */
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { runCliInProcess as run } from '../helpers/cli-in-process.js';
import { makeTempDir } from '../helpers/resources.js';

/** What connect() fails with, by socket path; other paths connect as usual. */
const failures = new Map<string, string>();

vi.mock('node:net', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:net')>();
  return {
    ...actual,
    connect: (...args: Parameters<typeof actual.connect>) => {
      const code = typeof args[0] === 'string' ? failures.get(args[0]) : undefined;
      if (code === undefined) return actual.connect(...args);
      const socket = Object.assign(new EventEmitter(), { destroy: () => {} });
      setImmediate(() =>
        socket.emit('error', Object.assign(new Error(`connect ${code} ${args[0]}`), { code })),
      );
      return socket;
    },
  };
});

describe('a daemon socket this user may not use', () => {
  const dir = makeTempDir('agentd-unit-denied-');

  it.each(['EACCES', 'EPERM'])(
    '%s: exit 77, permission_denied, run as the daemon’s user; no advice to start a daemon',
    async (errno) => {
      const socket = join(dir, `${errno}.sock`);
      failures.set(socket, errno);
      // The quick path (status) and clipanion's (agents).
      for (const argv of [['status'], ['agents']]) {
        const json = await run([...argv, '--json', '--socket', socket]);
        expect(json.code, json.stderr).toBe(EXIT.permissionDenied);
        expect(EXIT.permissionDenied).toBe(77);
        expect(JSON.parse(json.stdout.trim())).toMatchObject({
          error: 'permission_denied',
          code: EXIT.permissionDenied,
        });
        expect(json.stderr).toContain(`agentd: permission denied on ${socket} (${errno})`);
        expect(json.stderr).toContain('as the user the daemon runs as (or root)');
        expect(json.stderr).not.toContain('agentd start');
        expect(json.stderr).not.toContain('no agentd daemon answers');

        const text = await run([...argv, '--socket', socket]);
        expect(text.code).toBe(EXIT.permissionDenied);
        expect(text.stdout).toBe('');
      }
    },
  );

  it('a socket that is not there is still "no daemon" (exit 69, start one)', async () => {
    const result = await run(['status', '--json', '--socket', join(dir, 'absent.sock')]);
    expect(result.code).toBe(EXIT.unreachable);
    expect(JSON.parse(result.stdout.trim())).toMatchObject({ error: 'unreachable', code: 69 });
    expect(result.stderr).toContain('no agentd daemon answers on');
    expect(result.stderr).toContain('agentd start');
  });
});
