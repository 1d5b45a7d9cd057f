/**
 * `agentd send -f script | head -3`: the reader of stdout goes away while the script runs. Printing
 * stops; the events go on, each sent and answered, and the exit code says whether any was rejected
 * (README, "Scripted events"). Before, the EPIPE was an unhandled 'error': a stack trace, exit 1, and
 * the rest of the script never sent.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { Cli } from 'clipanion';
import { describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { fakeDaemon } from '../helpers/fake-daemon.js';
import { makeTempDir } from '../helpers/resources.js';

/** A daemon that answers each event: accepted, or rejected when its agent is `nope`; `seen` holds their ids. */
async function eventDaemon(): Promise<{ path: string; seen: string[] }> {
  const seen: string[] = [];
  const path = await fakeDaemon((_type, id = '', request) => {
    seen.push(id);
    const event = request.event as { type: string; agent?: string };
    const sessionId = id.padStart(16, '0');
    const answer =
      event.agent === 'nope'
        ? { type: 'trigger.rejected', sessionId, code: 'unknown_agent', reason: 'unknown agent "nope"' }
        : { type: 'trigger.accepted', sessionId, queued: false, position: 0 };
    return { v: 2, type: 'event.result', event, answers: [answer], state: 'ready' };
  });
  return { path, seen };
}

/**
 * A stdout whose reader leaves after the first line: every later write fails with EPIPE, as a pipe's does.
 * An 'error' nobody listens to (which ends the real CLI with a stack trace) is kept in `unhandled`.
 */
function stdoutReadOnce(): { stream: Writable; lines: string[]; unhandled: unknown[] } {
  const lines: string[] = [];
  const unhandled: unknown[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (lines.length >= 1) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
        return;
      }
      lines.push(chunk.toString());
      callback();
    },
  });
  const emit = stream.emit.bind(stream);
  stream.emit = (name: string | symbol, ...args: unknown[]): boolean => {
    if (name === 'error' && stream.listenerCount('error') === 0) {
      unhandled.push(args[0]);
      return false;
    }
    return emit(name, ...args);
  };
  return { stream, lines, unhandled };
}

async function send(events: string[]) {
  const daemon = await eventDaemon();
  const file = join(makeTempDir('agentd-unit-send-pipe-'), 'events.ndjson');
  writeFileSync(file, `${events.join('\n')}\n`);
  const stdout = stdoutReadOnce();
  const stderr = new PassThrough();
  let errors = '';
  stderr.on('data', (chunk: Buffer) => {
    errors += chunk.toString();
  });
  const cli = await buildCli('send');
  const code = await cli.run(['send', '--file', file, '--socket', daemon.path], {
    ...Cli.defaultContext,
    stdout: stdout.stream,
    stderr,
  });
  // Lets a late 'error' of stdout surface before the test ends.
  await new Promise((resolve) => setImmediate(resolve));
  return { code, seen: daemon.seen, lines: stdout.lines, unhandled: stdout.unhandled, errors };
}

const TRIGGER = '{"type":"trigger","agent":"demo"}';

describe('agentd send whose reader went away', () => {
  it('sends every event and exits by their answers, printing nothing more', async () => {
    const result = await send(Array.from({ length: 20 }, () => TRIGGER));
    expect(result.unhandled).toEqual([]);
    expect(result.seen).toHaveLength(20);
    expect(result.code, result.errors).toBe(EXIT.succeeded);
    expect(result.lines).toHaveLength(1);
    expect(JSON.parse(result.lines[0] as string)).toMatchObject({ line: 1, type: 'event.result' });
    expect(result.errors).toBe('');
  });

  it('still exits 1 when an event past the reader was rejected', async () => {
    const result = await send([TRIGGER, TRIGGER, '{"type":"trigger","agent":"nope"}', TRIGGER]);
    expect(result.unhandled).toEqual([]);
    expect(result.seen).toEqual(['1', '2', '3', '4']);
    expect(result.code, result.errors).toBe(EXIT.failed);
  });
});
