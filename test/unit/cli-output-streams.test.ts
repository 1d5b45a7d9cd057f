/**
 * The CLI's stdout failing under it: a reader that went away (`agentd status | head -1`: EPIPE) leaves the
 * command's exit code as it was, with no stack trace; any other failure (a full disk: ENOSPC) is said in
 * one line and is no success. Before, every command but trigger, logs and send threw the error from the
 * event loop with Node's stack, exit 1.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => {
  vi.restoreAllMocks();
  return cleanupAll();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Node would have thrown the write's error from the event loop (no listener): a stack, exit 1. */
  crashed: boolean;
}

/**
 * Runs the entry as `agentd ARGV` in this process. Every write to stdout fails with `code`, as a real
 * stream's does: the write returns, and the error comes as an 'error' event a tick later, to the listeners
 * the entry added (none: Node throws it). Then the 'exit' listeners the entry added run, as at its exit.
 */
async function runEntry(argv: string[], code: string): Promise<Run> {
  let stdout = '';
  let stderr = '';
  let crashed = false;
  const before = process.stdout.listeners('error');
  const exitBefore = process.listeners('exit');
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    const error = Object.assign(new Error(`write ${code}`), { code, syscall: 'write' });
    process.nextTick(() => {
      const added = process.stdout.listeners('error').filter((l) => !before.includes(l));
      if (added.length === 0) crashed = true;
      for (const listener of added) (listener as (e: Error) => void)(error);
    });
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  });
  const savedArgv = process.argv;
  process.argv = [process.execPath, 'agentd', ...argv];
  process.exitCode = undefined;
  try {
    vi.resetModules();
    await import('../../src/cli/index.js');
    await vi.waitFor(() => expect(process.exitCode).toBeDefined(), { timeout: 10_000 });
    // The error events of the last writes, then the process's exit, as Node ends it.
    await new Promise((resolve) => setImmediate(resolve));
    const code = Number(process.exitCode);
    for (const listener of process.listeners('exit').filter((l) => !exitBefore.includes(l))) {
      process.off('exit', listener);
      listener(code);
    }
    return { code: Number(process.exitCode), stdout, stderr, crashed };
  } finally {
    process.argv = savedArgv;
    process.exitCode = undefined;
    vi.restoreAllMocks();
  }
}

function validConfig(): string {
  const dir = makeTempDir('agentd-unit-output-');
  const config = join(dir, 'agentd.yaml');
  writeFileSync(
    config,
    `daemon:\n  state_dir: ${join(dir, 'state')}\nagents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n`,
  );
  return config;
}

describe('stdout whose reader went away (EPIPE)', () => {
  it('--version, validate and help keep their exit code 0, no stack trace', async () => {
    for (const argv of [['--version'], ['validate', '--config', validConfig()], ['help']]) {
      const result = await runEntry(argv, 'EPIPE');
      expect(result.crashed, argv.join(' ')).toBe(false);
      expect(result.code, argv.join(' ')).toBe(EXIT.succeeded);
      expect(result.stderr, argv.join(' ')).toBe('');
    }
  });

  it("a failing command keeps its own code (status --json with no daemon: 69, the quick path's)", async () => {
    const socket = join(makeTempDir('agentd-unit-output-'), 'none.sock');
    const result = await runEntry(['status', '--socket', socket, '--json'], 'EPIPE');
    expect(result.crashed).toBe(false);
    expect(result.code).toBe(EXIT.unreachable);
    expect(result.stderr).toContain('no agentd daemon answers');
  });
});

describe('stdout that fails otherwise (ENOSPC)', () => {
  it('says so in one line and exits 4, not 0', async () => {
    const result = await runEntry(['validate', '--config', validConfig()], 'ENOSPC');
    expect(result.crashed).toBe(false);
    expect(result.code).toBe(EXIT.infrastructure);
    expect(result.stderr).toBe('agentd: could not write to stdout (ENOSPC): the output is incomplete\n');
  });

  it('leaves a failing command its own code', async () => {
    const socket = join(makeTempDir('agentd-unit-output-'), 'none.sock');
    const result = await runEntry(['status', '--socket', socket, '--json'], 'ENOSPC');
    expect(result.crashed).toBe(false);
    expect(result.code).toBe(EXIT.unreachable);
    expect(result.stderr).toContain('could not write to stdout (ENOSPC)');
  });
});
