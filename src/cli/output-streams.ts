import { EXIT } from './exit-codes.js';

/** The part of `process` the watch needs. */
interface OutputProcess {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  exitCode?: number | string | null | undefined;
  on(event: 'exit', listener: (code: number) => void): unknown;
}

/**
 * Failures to write the CLI's own stdout and stderr. Without a listener Node throws them from the event
 * loop, stack and all, and the process exits 1: `agentd status | head -1`, `agentd history | grep -q ID`
 * (a reader that went away: EPIPE) and `agentd show ID > file` on a full disk (ENOSPC) each did.
 *
 * A reader that went away is no failure of the command: nothing more is printed, and its exit code stands
 * (as `trigger` and `logs` have it). Any other failure of stdout lost output the operator asked for: at
 * exit (its error event may come after the command returned) it is said in one line, and a command that
 * would exit 0 exits 4.
 */
export function watchOutput(proc: OutputProcess): void {
  let failure: string | undefined;
  proc.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') failure ??= error.code ?? error.message;
  });
  // Nowhere left to say anything.
  proc.stderr.on('error', () => {});
  proc.on('exit', (code) => {
    if (failure === undefined) return;
    proc.stderr.write(`agentd: could not write to stdout (${failure}): the output is incomplete\n`);
    if (code === EXIT.succeeded) proc.exitCode = EXIT.infrastructure;
  });
}
