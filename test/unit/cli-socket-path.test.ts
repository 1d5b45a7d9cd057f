/**
 * A socket path over 107 bytes (--socket, $AGENTD_SOCKET): connect() cuts it to its first 108 bytes, so
 * the request went to the socket there, past the ownership check, which looked at the whole path. Measured
 * with the built CLI: a socket of uid 65534 at the cut path got `{"type":"status"}` and its answer was
 * printed, where naming that socket itself is refused ("owned by uid 65534 ... not your daemon's"). Now
 * the CLI refuses such a path before connecting: exit 69, naming the path and the fix.
 */
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { runCliInProcess as run } from '../helpers/cli-in-process.js';
import { replyLine, type ScriptedDaemon, scriptedDaemon } from '../helpers/fake-daemon.js';
import { makeTempDir } from '../helpers/resources.js';

/**
 * A socket listening at `path` (Node's listen cuts it as connect does: the socket is at its first 108
 * bytes), answering every request with an error and closing the connection.
 */
function planted(path: string): Promise<ScriptedDaemon> {
  const refusal = { type: 'error', code: 'internal', message: 'planted', problems: [], retryable: false };
  return scriptedDaemon((_request, socket) => socket.end(replyLine(refusal)), { path });
}

describe('a socket path longer than a Unix socket can have', () => {
  it('is refused before connecting: nothing reaches the socket its first 108 bytes name', async () => {
    const dir = makeTempDir('agentd-unit-socket-path-');
    const long = join(dir, `${'z'.repeat(140 - dir.length)}.sock`);
    expect(Buffer.byteLength(long)).toBeGreaterThan(107);
    const socket = await planted(long);
    // The quick path (status) and clipanion's (agents), as text and as JSON.
    for (const argv of [['status'], ['agents'], ['status', '--json'], ['agents', '--json']]) {
      const result = await run([...argv, '--socket', long]);
      expect(result.code, result.stderr).toBe(EXIT.unreachable);
      expect(result.stderr).toContain(
        `agentd: not connecting to ${long}: its path is ${Buffer.byteLength(long)} bytes, and a Unix socket's path holds at most 107`,
      );
      expect(result.stderr).toContain('--socket PATH or $AGENTD_SOCKET');
      if (argv.includes('--json'))
        expect(JSON.parse(result.stdout.trim())).toMatchObject({ error: 'unreachable', code: 69 });
    }
    expect(socket.requests).toEqual([]);
    expect(socket.connections).toEqual([]);
  });

  it('a path of 107 bytes still connects', async () => {
    const dir = makeTempDir('agentd-unit-socket-path-');
    const path = join(dir, `${'y'.repeat(104 - dir.length)}.s`);
    expect(Buffer.byteLength(path)).toBe(107);
    const socket = await planted(path);
    const result = await run(['agents', '--socket', path]);
    expect(socket.requests).toHaveLength(1);
    expect(result.stderr).toContain('planted');
  });
});

describe('a --socket that is no socket says what is there and the fix', () => {
  it('a symbolic link (even to a socket of ours): named as one, with its target; nothing connects', async () => {
    const dir = makeTempDir('agentd-unit-socket-path-');
    const real = join(dir, 'agentd.sock');
    const socket = await planted(real);
    const link = join(dir, 'link.sock');
    symlinkSync(real, link);
    const result = await run(['agents', '--socket', link]);
    expect(result.code).toBe(EXIT.unreachable);
    expect(result.stderr).toContain(
      `agentd: not connecting to ${link}: ${link} is a symbolic link (to ${real}), and a client connects only to the socket itself, whose owner it can check: give the socket's own path`,
    );
    expect(socket.requests).toEqual([]);
    expect(socket.connections).toEqual([]);
  });

  it('a directory (the socket directory given for the socket): give the socket in it', async () => {
    const dir = join(makeTempDir('agentd-unit-socket-path-'), 'run');
    mkdirSync(dir, { mode: 0o700 });
    const result = await run(['status', '--socket', dir]);
    expect(result.code).toBe(EXIT.unreachable);
    expect(result.stderr).toContain(`${dir} is a directory, not a socket: give the path of the socket in it`);
    expect(result.stderr).toContain("Point at your daemon's socket with --socket PATH or $AGENTD_SOCKET");
  });
});
