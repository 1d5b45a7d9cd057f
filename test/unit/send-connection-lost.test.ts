/**
 * `agentd send` whose script shuts the daemon down: the daemon answers the shutdown, stops and closes the
 * connection, and the events after it are never answered. send said only "lost the connection to the
 * daemon": not where in the script, nor that the rest was not sent, and stdout had no line for it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cli } from 'clipanion';
import { afterEach, describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { replyLine, type ScriptedDaemon, scriptedDaemon } from '../helpers/fake-daemon.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

/** A daemon that answers the first event, then stops: it closes the connection on the second. */
function stoppingDaemon(): Promise<ScriptedDaemon> {
  return scriptedDaemon((request, socket, index) => {
    if (index > 0) return void socket.destroy();
    const reply = { id: request.id, type: 'event.result', event: request.event, answers: [] };
    socket.write(replyLine({ ...reply, state: 'shutdown.draining' }));
  });
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
      await daemon.close();
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
