import { PassThrough } from 'node:stream';
import { Cli } from 'clipanion';
import { buildCli } from '../../src/cli/cli.js';
import { runQuick } from '../../src/cli/quick.js';

/** A stream that keeps what is written to it, as text. */
export function collector(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  return { stream, text: () => text };
}

/**
 * The CLI run in this process as bin/agentd runs it: the quick path first (plain status, history,
 * trigger), then clipanion; its exit code and what it wrote.
 */
export async function runCliInProcess(
  argv: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [out, err] = [collector(), collector()];
  const quick = await runQuick(argv, { stdout: out.stream, stderr: err.stream });
  const context = { ...Cli.defaultContext, stdout: out.stream, stderr: err.stream };
  const code = quick ?? (await (await buildCli(argv[0])).run(argv, context));
  // What a command wrote just before it returned reaches the collectors on the next turn.
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout: out.text(), stderr: err.text() };
}
