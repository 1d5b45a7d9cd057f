#!/usr/bin/env node
import { EXIT } from './exit-codes.js';
import { watchOutput } from './output-streams.js';
import { agentdVersion } from './version.js';

/** The CLI entry: the only place besides the daemon's main that decides the exit code. */
async function main(argv: string[]): Promise<number> {
  // Answered before anything else loads: scripts call this often.
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
    process.stdout.write(`agentd ${agentdVersion()}\n`);
    return 0;
  }
  // The daemon: its young generation stays small while its modules load (see young-generation.ts).
  // Imported here, not at the top: it loads node:v8 and node:vm, which no client command needs.
  if (argv[0] === 'start') (await import('../daemon/young-generation.js')).holdYoungGeneration();
  // Plain `status`, `history` and `trigger` skip clipanion (see quick.ts).
  const { runQuick } = await import('./quick.js');
  const quick = await runQuick(argv, process);
  if (quick !== undefined) return quick;
  const { buildCli } = await import('./cli.js');
  const { Cli } = await import('clipanion');
  const cli = await buildCli(argv[0]);
  let command: Awaited<ReturnType<typeof cli.process>>;
  try {
    // Parsing runs the options' validators: every usage error is found here (or by AgentdCommand).
    command = cli.process(argv, Cli.defaultContext);
  } catch (error) {
    // With --json a usage error is one object on stdout too (README: every failing command prints one).
    if (argv.includes('--json')) {
      const { printJson } = await import('./client-io.js');
      const { nameValues } = await import('./value-names.js');
      // Named as stderr shows it (`--socket PATH`, not clipanion's `--socket #0`).
      const message = nameValues(error instanceof Error ? error.message : String(error));
      printJson(process, { error: 'usage', message, code: EXIT.usage });
    }
    process.stderr.write(cli.error(error));
    return EXIT.usage;
  }
  return cli.run(command, Cli.defaultContext);
}

// Before anything prints: a reader that goes away must not turn into a stack trace (see output-streams.ts).
watchOutput(process);

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // The stack only when asked for: an operator gets the message.
    const detail =
      error instanceof Error ? (process.env.AGENTD_DEBUG ? error.stack : error.message) : String(error);
    process.stderr.write(`agentd: unexpected error: ${detail}\n`);
    process.exitCode = 4;
  },
);
