/**
 * `agentd export ID --output FILE` (src/cli/export.ts) when FILE cannot be made: the message names the
 * file or its directory and the fix, keeps the errno for a search, exits 1, and leaves nothing behind.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { Cli } from 'clipanion';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { fakeDaemon } from '../helpers/fake-daemon.js';
import { makeTempDir } from '../helpers/resources.js';

const ID = '0123456789abcdef';

// A file named full.tgz is made, then takes no write: a filesystem with no room (ENOSPC).
vi.mock('node:fs/promises', async (original) => {
  const real = await original<typeof import('node:fs/promises')>();
  const open = (async (...args: Parameters<typeof real.open>) => {
    const handle = await real.open(...args);
    if (String(args[0]).endsWith('full.tgz')) {
      const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      handle.createWriteStream = () =>
        new Writable({ write: (_chunk, _encoding, callback) => callback(full) }) as ReturnType<
          typeof handle.createWriteStream
        >;
    }
    return handle;
  }) as typeof real.open;
  return { ...real, default: { ...real, open }, open };
});

async function run(
  argv: string[],
  stdout: Writable = new PassThrough(),
): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const err = new PassThrough();
  err.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const context = { ...Cli.defaultContext, stdout, stderr: err };
  const code = await (await buildCli(argv[0])).run(argv, context);
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stderr };
}

describe('agentd export --output FILE that cannot be made', () => {
  const dir = makeTempDir('agentd-unit-export-output-');
  let path: string;

  beforeAll(async () => {
    const recordDir = join(dir, 'records', 'demo', ID);
    mkdirSync(recordDir, { recursive: true });
    writeFileSync(join(recordDir, 'session.json'), '{}');
    const record = {
      version: 1,
      id: ID,
      agent: 'demo',
      repo: 'x',
      acceptedAt: '2026-01-01T00:00:00.000Z',
      phase: 'finished',
      phases: [],
      outcome: 'succeeded',
      recordDir,
    };
    // A daemon that answers every `show` with the record above.
    path = await fakeDaemon({ type: 'session', sessionId: ID, record });
  });

  it('a file that exists: kept as it was, and the fix is another path', async () => {
    const existing = join(dir, 'existing.tgz');
    writeFileSync(existing, 'keep');
    const result = await run(['export', ID, '-o', existing, '--socket', path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `agentd: cannot export session ${ID}: ${existing} already exists (EEXIST), and export never overwrites a file; remove it or give --output a new path\n`,
    );
    expect(readFileSync(existing, 'utf8')).toBe('keep');
  });

  it('a directory that does not exist: named, not made', async () => {
    const missing = join(dir, 'missing');
    const result = await run(['export', ID, '-o', join(missing, 'x.tgz'), '--socket', path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `agentd: cannot export session ${ID}: the directory ${missing} does not exist (ENOENT); create it or give --output a path in an existing directory\n`,
    );
    expect(existsSync(missing)).toBe(false);
  });

  it('a filesystem with no room: the file named, removed, and the fix said (it said only "ENOSPC: no space left on device, write")', async () => {
    const full = join(dir, 'full.tgz');
    const result = await run(['export', ID, '-o', full, '--socket', path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `agentd: cannot export session ${ID}: ${full} could not be written whole (ENOSPC: its filesystem has no room, or a quota or file size limit was reached) and was removed; free space there or give --output a path on another filesystem\n`,
    );
    expect(existsSync(full)).toBe(false);
  });

  it('to stdout whose reader went away (`| head -c 512`): exit 0, nothing said (it said "write EPIPE", exit 1)', async () => {
    let taken = 0;
    const closed = new Writable({
      write(_chunk: Buffer, _encoding, callback) {
        // The first chunk is read; then the reader is gone, as a pipe's is.
        if (taken++ === 0) callback();
        else callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const result = await run(['export', ID, '--socket', path], closed);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });
});
