/**
 * The configuration file is read with bounds (validate, doctor, start and a reload all read it): only a
 * regular file, opened without waiting, of at most 4 MiB. A FIFO used to block for ever, and /dev/zero
 * to fill the memory until "Invalid string length".
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cli } from 'clipanion';
import { describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { MAX_CONFIG_BYTES } from '../../src/config/config-file.js';
import { loadConfig } from '../../src/config/load.js';
import { makeTempDir } from '../helpers/resources.js';

const AGENT = '  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n';

/** loadConfig's error message, or a failure of the test when it has not answered within 5 s (a hang). */
async function loadProblem(flag: string): Promise<string> {
  const home = makeTempDir('agentd-unit-config-file-');
  const hang = new Promise<string>((resolve) =>
    setTimeout(() => resolve('no answer within 5 s'), 5000).unref(),
  );
  const loaded = loadConfig({ flag, env: {}, home, uid: 1000 }).then(
    () => 'loaded',
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
  return Promise.race([loaded, hang]);
}

describe('reading the configuration file', () => {
  it('refuses a FIFO at once, naming the path and what it is', async () => {
    const fifo = join(makeTempDir('agentd-unit-config-file-'), 'agentd.yaml');
    execFileSync('mkfifo', ['-m', '0600', fifo]);
    expect(await loadProblem(fifo)).toBe(
      `the configuration path ${fifo} is a FIFO, not a regular file; point at the agentd.yaml file itself`,
    );
  });

  it('refuses a device such as /dev/zero without reading it', async () => {
    expect(await loadProblem('/dev/zero')).toBe(
      'the configuration path /dev/zero is a device, not a regular file; point at the agentd.yaml file itself',
    );
  });

  it('refuses a file over 4 MiB, naming it and its size; takes one of 4 MiB', async () => {
    const dir = makeTempDir('agentd-unit-config-file-');
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `agents:\n${AGENT}${'#'.repeat(MAX_CONFIG_BYTES)}\n`);
    expect(MAX_CONFIG_BYTES).toBe(4 * 1024 * 1024);
    expect(await loadProblem(big)).toMatch(
      new RegExp(`^the configuration file ${big} is \\d+ bytes; a configuration file is at most 4 MiB`),
    );
    const fits = join(dir, 'fits.yaml');
    const head = `daemon:\n  state_dir: ${join(dir, 'state')}\nagents:\n${AGENT}`;
    writeFileSync(fits, `${head}${'#'.repeat(MAX_CONFIG_BYTES - head.length - 1)}\n`);
    expect(await loadProblem(fits)).toBe('loaded');
  });

  it('says a directory is one; a missing --config is still "not found"', async () => {
    const dir = makeTempDir('agentd-unit-config-file-');
    mkdirSync(join(dir, 'conf'));
    expect(await loadProblem(join(dir, 'conf'))).toBe(
      `the configuration path ${join(dir, 'conf')} is a directory; point at the agentd.yaml file inside it`,
    );
    expect(await loadProblem(join(dir, 'absent.yaml'))).toMatch(/^no configuration file found; looked at:/);
  });

  it('refuses bytes that are not UTF-8 at their line and column; takes UTF-8, U+FFFD and a BOM', async () => {
    // A file saved as Latin-1 was read with U+FFFD in place of "é": the agent's env value changed silently.
    const dir = makeTempDir('agentd-unit-config-file-');
    const state = `daemon:\n  state_dir: ${join(dir, 'state')}\n`;
    const latin1 = join(dir, 'latin1.yaml');
    writeFileSync(
      latin1,
      Buffer.concat([
        Buffer.from(`${state}agents:\n${AGENT}    env:\n      # \ufffd\n      G: "caf`),
        Buffer.from([0xe9, 0x22, 0x0a]),
      ]),
    );
    expect(await loadProblem(latin1)).toBe(
      `the configuration file ${latin1} is not UTF-8 text: line 9, column 14 has a byte that is not; save it as UTF-8 (e.g. iconv -f latin1 -t utf-8), or write the character as an escape in double quotes ("\\u00e9")`,
    );
    const utf8 = join(dir, 'utf8.yaml');
    writeFileSync(utf8, `\ufeff${state}agents:\n${AGENT}    env:\n      G: "café \ufffd"\n`);
    expect(await loadProblem(utf8)).toBe('loaded');
  });

  it('says a loop of symbolic links is one, with the fix', async () => {
    // It was 'ELOOP: too many symbolic links encountered, open ...', with no fix.
    const dir = makeTempDir('agentd-unit-config-file-');
    const [a, b] = [join(dir, 'a.yaml'), join(dir, 'b.yaml')];
    symlinkSync(b, a);
    symlinkSync(a, b);
    expect(await loadProblem(a)).toBe(
      `cannot read the configuration file ${a}: its symbolic links lead round in a loop (or more than 40 deep); point at the agentd.yaml file itself, or fix the link (ls -l ${a})`,
    );
  });

  it('validate --json reports a FIFO as one object, exit 1', async () => {
    const fifo = join(makeTempDir('agentd-unit-config-file-'), 'agentd.yaml');
    execFileSync('mkfifo', ['-m', '0600', fifo]);
    const [out, err] = [new PassThrough(), new PassThrough()];
    let stdout = '';
    out.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const run = (await buildCli('validate')).run(['validate', '--config', fifo, '--json'], {
      ...Cli.defaultContext,
      stdout: out,
      stderr: err,
    });
    const code = await Promise.race([
      run,
      new Promise<string>((resolve) => setTimeout(() => resolve('hung'), 5000).unref()),
    ]);
    expect(code).toBe(1);
    expect(JSON.parse(stdout.trim())).toMatchObject({ valid: false });
    expect(stdout).toContain('is a FIFO, not a regular file');
  });
});
