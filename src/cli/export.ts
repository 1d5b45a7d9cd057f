import { statSync } from 'node:fs';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Command, Option, UsageError } from 'clipanion';
import { exportRecord } from '../adapters/sealed-records.js';
import { errorMessage } from '../errors.js';
import { ClientCommand } from './client-command.js';
import { failOnReply } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { isSessionId } from './validators.js';

export class ExportCommand extends ClientCommand {
  static override paths = [['export']];
  static override usage = Command.Usage({
    description: "Write a session's sealed record as a tar.gz",
    details: `
      The record directory that \`agentd show\` names (session.json, session.log and out/, the session's
      output) as one gzipped tar holding \`<session>/...\`, to --output or stdout. Works for every session
      whose record retention has kept, also those \`history\` no longer lists. The command reads the
      directory itself, so it runs as the daemon's user (as every client does: the socket is theirs).
      Exits 0, 6 when there is no such session, 1 when the file exists or cannot be written.
    `,
    examples: [
      ['Into a file', '$0 export 3f9c2a71b0d4e812 --output session.tar.gz'],
      ['To stdout, e.g. into tar', '$0 export 3f9c2a71b0d4e812 | tar -tzf -'],
    ],
  });

  sessionId = Option.String({ name: 'session-id', validator: isSessionId });
  output = Option.String('--output,-o', {
    description: 'Write the tar.gz to this file (it must not exist yet); default: stdout',
  });

  async execute(): Promise<number> {
    const { stdout, stderr } = this.context;
    if (this.output === undefined && (stdout as { isTTY?: boolean }).isTTY) {
      throw new UsageError('the export is binary: give --output FILE, or redirect stdout');
    }
    const client = await this.connect();
    if (typeof client === 'number') return client;
    let dir: string | undefined;
    let sealed = true;
    try {
      const reply = await client.request({ type: 'show', sessionId: this.sessionId });
      if (reply?.type !== 'session') return failOnReply(this.context, false, reply);
      dir = reply.record.recordDir;
      sealed = reply.record.outcome !== undefined;
    } finally {
      client.close();
    }
    if (dir === undefined) {
      return this.fail(
        `session ${this.sessionId} has no sealed record (it is older than sealed records)`,
        EXIT.failed,
      );
    }
    if (!sealed) stderr.write(`agentd: session ${this.sessionId} still runs: its record is not sealed yet\n`);
    const recordDir = dir;
    const failed = (error: unknown, problem = errorMessage(error)) =>
      this.fail(`cannot export session ${this.sessionId}: ${problem}`, EXIT.failed);
    try {
      // Before anything is written: a record directory that is gone leaves no empty file behind.
      if (!statSync(recordDir).isDirectory()) throw new Error(`${recordDir} is not a directory`);
    } catch (error) {
      return failed(error);
    }
    if (this.output === undefined) {
      try {
        await exportRecord(recordDir, stdout);
      } catch (error) {
        // A reader that went away (`agentd export ID | head -c 512`) took what it wanted: no failure, as
        // for every command (README, Outcomes and exit codes).
        if ((error as NodeJS.ErrnoException).code === 'EPIPE') return EXIT.succeeded;
        return failed(error);
      }
      return EXIT.succeeded;
    }
    const output = this.output;
    // Opened here, so that a file that exists or a directory that does not is this command's message.
    let file: FileHandle;
    try {
      file = await open(output, 'wx', 0o600);
    } catch (error) {
      return failed(error, outputProblem(output, error));
    }
    try {
      await exportRecord(recordDir, file.createWriteStream());
    } catch (error) {
      await unlink(output).catch(() => {});
      return failed(error, writeProblem(output, error));
    } finally {
      await file.close().catch(() => {});
    }
    stderr.write(`agentd: wrote ${output} from ${dir}\n`);
    return EXIT.succeeded;
  }
}

/**
 * Why --output FILE could not be written whole (it is removed): a filesystem with no room says only
 * "ENOSPC: no space left on device, write", naming neither the file nor what to do.
 */
function writeProblem(output: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG')
    return `${output} could not be written whole (${code}: its filesystem has no room, or a quota or file size limit was reached) and was removed; free space there or give --output a path on another filesystem`;
  return errorMessage(error);
}

/** Why --output FILE cannot be made, with the fix: the error of open(2) alone names no way out. */
function outputProblem(output: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EEXIST':
      return `${output} already exists (EEXIST), and export never overwrites a file; remove it or give --output a new path`;
    case 'ENOENT':
    case 'ENOTDIR':
      return `the directory ${dirname(output)} does not exist (${code}); create it or give --output a path in an existing directory`;
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return `${output} cannot be created (${code}); give --output a path in a directory you may write`;
    default:
      return errorMessage(error);
  }
}
