/**
 * README: "A command that fails with `--json` still prints one object on stdout". Every client command
 * with `--json`, run against a socket where no daemon answers: one JSON object on stdout naming the
 * failure and the exit code, the message on stderr, no stack trace.
 */
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Cli } from 'clipanion';
import { describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { runQuick } from '../../src/cli/quick.js';
import { makeTempDir } from '../helpers/resources.js';

const ID = '0123456789abcdef';
const COMMANDS: string[][] = [
  ['status'],
  ['hosts'],
  ['history'],
  ['agents'],
  ['show', ID],
  ['wait', ID],
  ['logs', ID],
  ['cancel', ID],
  ['reload'],
  ['trigger', 'demo'],
];

function collector() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  return { stream, text: () => text };
}

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const [out, err] = [collector(), collector()];
  const context = { ...Cli.defaultContext, stdout: out.stream, stderr: err.stream };
  // As bin/agentd runs it: the quick path first (plain status, history, trigger), then clipanion.
  const quick = await runQuick(argv, { stdout: out.stream, stderr: err.stream });
  const code = quick ?? (await (await buildCli(argv[0])).run(argv, context));
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout: out.text(), stderr: err.text() };
}

describe('--json when no daemon answers', () => {
  const socket = join(makeTempDir('agentd-unit-json-'), 'agentd.sock');
  it.each(COMMANDS)('%s prints one JSON object with the failure and the exit code', async (...argv) => {
    const result = await run([...argv, '--json', '--socket', socket]);
    expect(result.code).toBe(EXIT.unreachable);
    const lines = result.stdout.trim().split('\n');
    expect(lines, result.stdout).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ error: 'unreachable', code: EXIT.unreachable });
    expect(result.stderr).toMatch(/^agentd: /);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
