/**
 * `agentd send` whose script shuts the daemon down: the daemon answers the shutdown, stops and closes the
 * connection, and the events after it are never answered. send said only "lost the connection to the
 * daemon": not where in the script, nor that the rest was not sent, and stdout had no line for it.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cli } from 'clipanion';
import { afterEach, describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

/** A daemon that answers the first event, then stops: it closes the connection on the second. */
async function stoppingDaemon(): Promise<{ path: string; close(): void }> {
  const path = join(makeTempDir('agentd-unit-send-lost-'), 'agentd.sock');
  const server = createServer((socket) => {
    socket.on('error', () => {});
    let buffered = '';
    let answered = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
        const request = JSON.parse(buffered.slice(0, nl)) as { id: string; event: { type: string } };
        buffered = buffered.slice(nl + 1);
        if (answered++ > 0) {
          socket.destroy();
          return;
        }
        const reply = { v: 2, id: request.id, type: 'event.result', event: request.event, answers: [] };
        socket.write(`${JSON.stringify({ ...reply, state: 'shutdown.draining' })}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, close: () => server.close() };
}

describe('agentd send when the daemon stops under its script', () => {
  it('names the line it was not answered for and how many were not sent, on stderr and stdout', async () => {
    const daemon = await stoppingDaemon();
    const file = join(makeTempDir('agentd-unit-send-lost-'), 'events.ndjson');
    const cancel = (n: number) => `{"type":"cancel","sessionId":"${n.toString(16).padStart(16, '0')}"}`;
    writeFileSync(
      file,
      ['# stop, then more', '{"type":"shutdown"}', cancel(1), cancel(2), cancel(3)].join('\n'),
    );
    let out = '';
    let errors = '';
    const stdout = new PassThrough().on('data', (c: Buffer) => {
      out += c.toString();
    });
    const stderr = new PassThrough().on('data', (c: Buffer) => {
      errors += c.toString();
    });
    try {
      const code = await (await buildCli('send')).run(['send', '--file', file, '--socket', daemon.path], {
        ...Cli.defaultContext,
        stdout,
        stderr,
      });
      expect(code, errors).toBe(EXIT.infrastructure);
    } finally {
      daemon.close();
    }
    expect(errors).toContain(`${file}:3: lost the connection to the daemon`);
    expect(errors).toContain('the 2 event(s) after it were not sent');
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; type: string; code?: string });
    expect(lines.map((l) => [l.line, l.type, l.code])).toEqual([
      [2, 'event.result', undefined],
      [3, 'error', 'connection_lost'],
    ]);
  });
});
