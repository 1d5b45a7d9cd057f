/**
 * README: "A command that fails with `--json` still prints one object on stdout", also where the CLI's
 * entry (src/cli/index.ts) reports the failure itself: a usage error found while parsing, and an
 * unexpected error on the quick path; and doctor's unreadable --env-file.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cli } from 'clipanion';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { runEntryInProcess as runEntry } from '../helpers/cli-in-process.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => {
  vi.doUnmock('../../src/cli/trigger-run.js');
  vi.restoreAllMocks();
  return cleanupAll();
});

describe('the entry with --json', () => {
  it('names the values of a usage error in the JSON as on stderr (--socket PATH, not #0)', async () => {
    const result = await runEntry(['agents', '--bogus', '--json']);
    expect(result.code).toBe(EXIT.usage);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const failure = JSON.parse(lines[0] as string) as { error: string; message: string; code: number };
    expect(failure).toMatchObject({ error: 'usage', code: EXIT.usage });
    expect(failure.message).toContain('--socket PATH');
    expect(failure.message).not.toContain('#0');
    expect(result.stderr).toContain('--socket PATH');
  });

  it('prints one object for an unexpected error on the quick path (plain trigger), as clipanion’s path does', async () => {
    vi.doMock('../../src/cli/trigger-run.js', () => ({
      runTrigger: async () => {
        throw new Error('something broke');
      },
    }));
    const result = await runEntry(['trigger', 'demo', '--json']);
    expect(result.code).toBe(EXIT.infrastructure);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toEqual({
      error: 'unexpected',
      message: 'unexpected error: something broke',
      code: EXIT.infrastructure,
    });
    expect(result.stderr).toBe('agentd: unexpected error: something broke\n');
  });

  it('with AGENTD_DEBUG the quick path’s unexpected error also shows its stack on stderr, as without --json', async () => {
    vi.doMock('../../src/cli/trigger-run.js', () => ({
      runTrigger: async () => {
        throw new Error('something broke');
      },
    }));
    vi.stubEnv('AGENTD_DEBUG', '1');
    try {
      const result = await runEntry(['trigger', 'demo', '--json']);
      expect(result.code).toBe(EXIT.infrastructure);
      expect(JSON.parse(result.stdout.trim())).toMatchObject({ error: 'unexpected' });
      expect(result.stderr).toMatch(/^Error: something broke\n\s+at /);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('without --json an unexpected error on the quick path is one line on stderr, nothing on stdout', async () => {
    vi.doMock('../../src/cli/trigger-run.js', () => ({
      runTrigger: async () => {
        throw new Error('something broke');
      },
    }));
    const result = await runEntry(['trigger', 'demo']);
    expect(result.code).toBe(EXIT.infrastructure);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('agentd: unexpected error: something broke\n');
  });
});

describe('doctor --env-file that cannot be read', () => {
  async function doctor(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const [out, err] = [new PassThrough(), new PassThrough()];
    let [stdout, stderr] = ['', ''];
    out.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    err.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await (await buildCli('doctor')).run(argv, {
      ...Cli.defaultContext,
      stdout: out,
      stderr: err,
    });
    await new Promise((resolve) => setImmediate(resolve));
    return { code, stdout, stderr };
  }

  it('with --json prints one object naming the file, exit 2; without, the message on stderr only', async () => {
    const dir = makeTempDir('agentd-unit-doctor-');
    const config = join(dir, 'agentd.yaml');
    writeFileSync(
      config,
      `daemon:\n  state_dir: ${join(dir, 'state')}\nagents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n`,
    );
    const json = await doctor(['doctor', '--json', '--config', config, '--env-file', dir]);
    expect(json.code, json.stderr).toBe(EXIT.usage);
    const lines = json.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const failure = JSON.parse(lines[0] as string) as { error: string; message: string; code: number };
    expect(failure).toMatchObject({ error: 'usage', code: EXIT.usage });
    expect(failure.message).toContain(`cannot read --env-file ${dir}`);
    expect(json.stderr).toMatch(/^agentd: cannot read --env-file /);

    const text = await doctor(['doctor', '--config', config, '--env-file', dir]);
    expect(text.code).toBe(EXIT.usage);
    expect(text.stdout).toBe('');
    expect(text.stderr).toMatch(
      /^agentd: cannot read --env-file .*is a directory; point at the environment file inside it/,
    );
  });

  it('refuses a FIFO and a device at once instead of hanging or filling the memory', async () => {
    const dir = makeTempDir('agentd-unit-doctor-');
    const config = join(dir, 'agentd.yaml');
    writeFileSync(
      config,
      `daemon:\n  state_dir: ${join(dir, 'state')}\nagents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n`,
    );
    const fifo = join(dir, 'env.fifo');
    execFileSync('mkfifo', [fifo]);
    const hung = await doctor(['doctor', '--config', config, '--env-file', fifo]);
    expect(hung.code).toBe(EXIT.usage);
    expect(hung.stderr).toMatch(/is a FIFO, not a regular file; point at the environment file itself/);
    const zero = await doctor(['doctor', '--config', config, '--env-file', '/dev/zero']);
    expect(zero.code).toBe(EXIT.usage);
    expect(zero.stderr).toMatch(/\/dev\/zero is a device, not a regular file/);
  });
});
