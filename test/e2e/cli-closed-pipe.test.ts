/**
 * The built CLI with a stdout that fails, as a real process: a reader that went away (`agentd status |
 * head -1`: EPIPE) leaves the exit code as it was with nothing on stderr; a full disk (/dev/full: ENOSPC)
 * is said in one line and exits 4. Before cf7f538 each threw the error with Node's stack, exit 1. No
 * daemon or Podman needed: the commands here read a file or find no daemon.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/daemon.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

/** Runs the CLI with stdout closed before it writes (or to `stdoutFd`); its exit code and stderr. */
function run(args: string[], stdoutFd?: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--', CLI, ...args], {
      stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe'],
      env: { ...process.env, AGENTD_DEBUG: '' },
    });
    // The reader goes away at once: every write of the CLI's fails with EPIPE.
    child.stdout?.destroy();
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

function config(): string {
  const dir = makeTempDir('agentd-e2e-closed-pipe-');
  const file = join(dir, 'agentd.yaml');
  writeFileSync(
    file,
    `daemon:\n  state_dir: ${join(dir, 'state')}\nagents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n`,
  );
  return file;
}

describe('the CLI whose stdout fails', () => {
  it('a reader that went away: the command’s own exit code, nothing on stderr', async () => {
    const file = config();
    const socket = join(makeTempDir('agentd-e2e-closed-pipe-'), 'none.sock');
    for (const [args, code] of [
      [['--version'], 0],
      [['help'], 0],
      [['validate', '--config', file], 0],
      [['validate', '--config', file, '--json'], 0],
      [['history', '--socket', socket, '--json'], 69],
      [['agents', '--socket', socket, '--json'], 69],
    ] as const) {
      const result = await run([...args]);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(code);
      expect(result.stderr, args.join(' ')).not.toMatch(/EPIPE|Error:|\n\s+at /);
    }
  });

  it('a full disk: one line, exit 4 instead of 0', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      const result = await run(['validate', '--config', config()], full);
      expect(result.code).toBe(4);
      expect(result.stderr).toBe('agentd: could not write to stdout (ENOSPC): the output is incomplete\n');
    } finally {
      closeSync(full);
    }
  });
});
