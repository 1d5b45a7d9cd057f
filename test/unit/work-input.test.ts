/**
 * What `agentd trigger` reads as the request and the input files (src/cli/work-input.ts): a file that
 * cannot be read, or stdin that is a directory, is a usage error naming the option and the file, never
 * an unexpected error or an empty request.
 */
import { closeSync, openSync } from 'node:fs';
import { Readable } from 'node:stream';
import { UsageError } from 'clipanion';
import { describe, expect, it } from 'vitest';
import { readWork } from '../../src/cli/work-input.js';
import { makeTempDir } from '../helpers/resources.js';

const noStdin = Readable.from([]);

describe('work input', () => {
  it('names the option and the file when a file cannot be read (EIO), not "unexpected error"', async () => {
    // /proc/self/mem opens, and its first read fails with EIO.
    for (const options of [{ requestFile: '/proc/self/mem' }, { inputs: ['mem=/proc/self/mem'] }]) {
      const read = readWork(options, noStdin);
      await expect(read).rejects.toBeInstanceOf(UsageError);
      await expect(read).rejects.toThrow(
        /^(--request-file|--input mem): cannot read \/proc\/self\/mem \(EIO\)$/,
      );
    }
  });

  it('refuses stdin that is a directory instead of handing the session an empty request', async () => {
    const fd = openSync(makeTempDir('agentd-unit-work-'), 'r');
    try {
      const stdin = Object.assign(Readable.from([]), { fd });
      const read = readWork({ requestFile: '-' }, stdin);
      await expect(read).rejects.toBeInstanceOf(UsageError);
      await expect(read).rejects.toThrow('--request-file -: stdin is a directory');
    } finally {
      closeSync(fd);
    }
  });

  it('reads a request from stdin and input files as bytes', async () => {
    const stdin = Object.assign(Readable.from([Buffer.from('do it\n')]), { fd: undefined });
    const work = await readWork({ requestFile: '-', inputs: ['self=/proc/self/cmdline'] }, stdin);
    expect(work.request?.toString()).toBe('do it\n');
    expect(work.inputs.map((i) => i.name)).toEqual(['self']);
  });
});
