/**
 * `file:` credential sources (src/adapters/credentials.ts): a regular file's bytes; anything else
 * refused at once, naming the source, instead of a read that never ends or never stops.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveSource } from '../../src/adapters/credentials.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

const source = (path: string) => ({ kind: 'file' as const, path, raw: `file:${path}` });

describe('file: credential sources', () => {
  it('read a regular file as bytes, without one final line ending', async () => {
    const file = join(makeTempDir('agentd-unit-cred-'), 'token');
    writeFileSync(file, 'v@lue\r\n', { mode: 0o600 });
    const value = await resolveSource('TOKEN', source(file), {});
    expect(Buffer.from(value.bytes()).toString()).toBe('v@lue');
  });

  it('refuse a FIFO at once: nobody writing to it would hold the session for ever', async () => {
    const fifo = join(makeTempDir('agentd-unit-cred-'), 'fifo');
    execFileSync('mkfifo', [fifo]);
    const started = Date.now();
    await expect(resolveSource('TOKEN', source(fifo), {})).rejects.toThrow(
      `credential TOKEN: file ${fifo} (source file:${fifo}) is a FIFO, not a regular file; point the source at a file`,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('refuse a device and a directory', async () => {
    await expect(resolveSource('TOKEN', source('/dev/zero'), {})).rejects.toThrow(
      /is a device, not a regular file/,
    );
    await expect(resolveSource('TOKEN', source(makeTempDir('agentd-unit-cred-')), {})).rejects.toThrow(
      /is a directory, not a regular file/,
    );
  });
});
