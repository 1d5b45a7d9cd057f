import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { Cli } from 'clipanion';
import { afterEach, describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { readEvent, readEventFile, sourceProblem } from '../../src/cli/send.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

/** send's bound (MAX_EVENTS_BYTES), written out: the test runs against code without it too. */
const BOUND = 64 * 1024 * 1024;

const failure = (code: string) => Object.assign(new Error(`${code}: failed`), { code });

describe('agentd send: events that cannot be read', () => {
  it('names --file and the fix for a missing file or a directory', () => {
    expect(sourceProblem('/nope.ndjson', failure('ENOENT'))).toBe(
      '--file /nope.ndjson does not exist; give the path of an NDJSON file of events',
    );
    expect(sourceProblem('/tmp', failure('EISDIR'))).toBe(
      '--file /tmp is a directory; give the path of an NDJSON file of events',
    );
    expect(sourceProblem('/root/x', failure('EACCES'))).toBe(
      '--file /root/x: cannot read it (EACCES); check its owner and mode',
    );
  });

  it('says stdin when there is no --file (it said "cannot read undefined")', () => {
    expect(sourceProblem(undefined, failure('EIO'))).toBe('cannot read the events from stdin (EIO)');
  });
});

/** `agentd send ARGV` with `stdin`, no daemon on its socket: what it says and its exit code. */
async function send(argv: string[], stdin: NodeJS.ReadableStream = new PassThrough()) {
  const socket = join(makeTempDir('agentd-unit-send-file-'), 'none.sock');
  const stderr = new PassThrough();
  let errors = '';
  stderr.on('data', (chunk: Buffer) => {
    errors += chunk.toString();
  });
  const code = await (await buildCli('send')).run(['send', ...argv, '--socket', socket], {
    ...Cli.defaultContext,
    stdin: stdin as typeof process.stdin,
    stdout: new PassThrough(),
    stderr,
  });
  return { code, errors };
}

describe('agentd send: a source larger than any script (it read all of it: /dev/zero grew it 10 GB a minute)', () => {
  it('refuses a --file over the bound before reading it, naming it and the fix', async () => {
    const file = join(makeTempDir('agentd-unit-send-file-'), 'huge.ndjson');
    // Sparse: no disk, and no memory unless read.
    writeFileSync(file, '');
    truncateSync(file, BOUND + 1);
    const result = await send(['--file', file]);
    expect(result.code).toBe(EXIT.usage);
    expect(result.errors).toBe(
      `agentd: --file ${file} holds more than 64 MiB of events, the most send reads at once; split the script into several sends\n`,
    );
  });

  it('stops reading a device or a FIFO at the bound', () => {
    expect(
      sourceProblem(
        '/dev/zero',
        captured(() => readEventFile('/dev/zero', 1024 * 1024)),
      ),
    ).toMatch(/^--file \/dev\/zero holds more than 64 MiB of events/);
  });

  it('stops reading stdin at the bound', async () => {
    let given = 0;
    // A MiB more than the bound (the old code read it all, then went on).
    const big = new Readable({
      read() {
        given += 1024 * 1024;
        this.push(given > BOUND + 1024 * 1024 ? null : Buffer.alloc(1024 * 1024, 0x20));
      },
    });
    const result = await send([], big);
    expect(result.code).toBe(EXIT.usage);
    expect(result.errors).toBe(
      'agentd: stdin holds more than 64 MiB of events, the most send reads at once; split the script into several sends\n',
    );
    expect(given).toBeLessThan(BOUND + 4 * 1024 * 1024);
  });
});

function captured(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('no error');
}

describe('agentd send: an event line that gives a key twice', () => {
  it("is refused in the daemon's error shape, naming the key, instead of sending the last value", () => {
    const read = readEvent(
      '{"type":"cancel","sessionId":"0123456789abcdef","sessionId":"fedcba9876543210"}',
      'f',
      3,
    );
    expect(read).toEqual({
      error: {
        v: 2,
        id: '3',
        type: 'error',
        code: 'bad_request',
        message: expect.stringMatching(/^f:3: invalid event: event\.sessionId: given more than once/),
        problems: [{ path: 'event.sessionId', message: expect.stringMatching(/^given more than once/) }],
        retryable: false,
      },
    });
    expect(readEvent('{"type":"cancel","sessionId":"0123456789abcdef"}', 'f', 1)).toEqual({
      event: { type: 'cancel', sessionId: '0123456789abcdef' },
    });
    expect(readEvent('{"type":', 'f', 2)).toMatchObject({
      error: { code: 'bad_json', message: 'f:2: not valid JSON' },
    });
  });
});
