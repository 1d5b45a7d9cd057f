/**
 * Two daemons started at once on one socket path (different state dirs, so their pid files do not keep
 * one out) that a killed daemon left: exactly one of them listens there (src/adapters/socket-server.ts).
 * Both used to find the dead daemon's socket, and the one that removed it last removed the other's new
 * socket with it: that daemon ran where no client could reach it (measured with three processes listening
 * at the same instant on a stale socket: more than one listened in 3 of 20 rounds).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, utimesSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TAKEOVER_LOCK_MAX_MS } from '../../src/adapters/pid-file.js';
import { type Connection, SocketServer } from '../../src/adapters/socket-server.js';
import { busyReply } from '../../src/protocol/dispatch.js';
import { makeTempDir } from '../helpers/resources.js';

const servers: SocketServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

/** A server answering each line with its name. */
function server(path: string, name: string): SocketServer {
  const made = new SocketServer({
    path,
    maxLineBytes: 1024,
    maxConnections: 8,
    partialLineTimeoutMs: 5000,
    idleTimeoutMs: 60_000,
    maxPendingWriteBytes: 1024 * 1024,
    lagBytes: 64 * 1024,
    stallTimeoutMs: 30_000,
    lingerMs: 1000,
    onLine: (_line: string, connection: Connection) => connection.send({ name }),
    onLineTooLong: () => {},
    busyLine: busyReply,
  });
  servers.push(made);
  return made;
}

/** The socket a killed daemon left: a socket file nobody listens on. */
function staleSocket(dir: string): string {
  const path = join(dir, 'agentd.sock');
  spawnSync(process.execPath, [
    '-e',
    `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  expect(lstatSync(path).isSocket()).toBe(true);
  return path;
}

/** The name of the server that answers on path. */
function answerer(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = connect(path, () => client.write('{}\n'));
    client.once('data', (data) => {
      resolve((JSON.parse(data.toString()) as { name: string }).name);
      client.destroy();
    });
    client.once('error', reject);
  });
}

describe('a stale socket taken over by two daemons at once', () => {
  it('is listened on by one of them only; the other is refused and removes nothing', async () => {
    const dir = makeTempDir('agentd-unit-sockrace-');
    const path = staleSocket(dir);
    // Both judge the stale socket at once (each waits for its probe's answer before removing it).
    const results = await Promise.allSettled([server(path, 'a').listen(), server(path, 'b').listen()]);
    const listening = results.filter((r) => r.status === 'fulfilled');
    expect(listening).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: 'DAEMON_RUNNING' });
    expect(String(refused.reason.message)).toContain(`${path}.lock`);
    expect(await answerer(path)).toBe(results[0].status === 'fulfilled' ? 'a' : 'b');
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it("takes over a lock that a killed start left, and is refused by a live one's", async () => {
    const dir = makeTempDir('agentd-unit-sockrace-');
    const path = staleSocket(dir);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    writeFileSync(`${path}.lock`, `${dead.stdout.toString()}\n`);
    await server(path, 'a').listen();
    expect(await answerer(path)).toBe('a');
    expect(existsSync(`${path}.lock`)).toBe(false);

    const other = join(dir, 'other.sock');
    writeFileSync(`${other}.lock`, `${process.ppid}\n`);
    await expect(server(other, 'b').listen()).rejects.toMatchObject({ code: 'DAEMON_RUNNING' });
    // One a minute old is a killed start's whose pid another process has since.
    const old = (Date.now() - 2 * TAKEOVER_LOCK_MAX_MS) / 1000;
    utimesSync(`${other}.lock`, old, old);
    await server(other, 'b').listen();
    expect(await answerer(other)).toBe('b');
  });
});
