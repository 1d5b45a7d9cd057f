#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { EXIT } from './exit-codes.js';
import { agentdVersion } from './version.js';

/** The CLI entry: the only place besides the daemon's main that decides the exit code. */
async function main(argv: string[]): Promise<number> {
  // Answered before anything else loads: scripts call this often.
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
    process.stdout.write(`agentd ${agentdVersion()}\n`);
    return 0;
  }
  // The daemon: loading its modules allocates fast, and V8 then doubles its young generation each time,
  // never to give it back while the daemon idles (about 12 MB of RSS). It stays at its initial size
  // until the daemon runs (main.ts lets it grow again for sessions' output).
  if (argv[0] === 'start') setFlagsFromString('--semi-space-growth-factor=1');
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
    process.stderr.write(cli.error(error));
    return EXIT.usage;
  }
  return cli.run(command, Cli.defaultContext);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `agentd: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 4;
  },
);
