import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { UsageError } from 'clipanion';
import { MAX_INPUT_BYTES, MAX_REQUEST_BYTES } from '../constants.js';
import { inputNameProblem, payloadProblem, type WorkPayload } from '../sessions/work.js';

/** What `agentd trigger` hands the agent: `--request TEXT`, `--request-file PATH|-`, `--input NAME=PATH`. */
export interface WorkOptions {
  request?: string | undefined;
  requestFile?: string | undefined;
  inputs?: string[] | undefined;
}

/**
 * Reads the request and the input files as bytes (the daemon gets their content, not their paths).
 * A file larger than the limit is refused before it is read. Problems are usage errors naming the option.
 */
export async function readWork(options: WorkOptions, stdin: NodeJS.ReadableStream): Promise<WorkPayload> {
  const payload: WorkPayload = { inputs: [] };
  if (options.request !== undefined && options.requestFile !== undefined) {
    throw new UsageError('--request and --request-file cannot be combined; give the request one way');
  }
  if (options.request !== undefined) payload.request = Buffer.from(options.request, 'utf8');
  if (options.requestFile === '-') {
    payload.request = await readStdin(stdin, MAX_REQUEST_BYTES, '--request-file -');
  } else if (options.requestFile !== undefined) {
    payload.request = readLimited(options.requestFile, MAX_REQUEST_BYTES, '--request-file');
  }
  let total = 0;
  for (const spec of options.inputs ?? []) {
    const at = spec.indexOf('=');
    if (at <= 0 || at === spec.length - 1) {
      throw new UsageError(
        `--input ${JSON.stringify(spec)}: write NAME=PATH, e.g. --input diff=./change.patch`,
      );
    }
    const name = spec.slice(0, at);
    const path = spec.slice(at + 1);
    const problem = inputNameProblem(name);
    if (problem !== undefined) throw new UsageError(`--input ${JSON.stringify(spec)}: ${problem}`);
    const bytes = readLimited(path, MAX_INPUT_BYTES - total, `--input ${name}`);
    total += bytes.byteLength;
    payload.inputs.push({ name, bytes });
  }
  const problem = payloadProblem(payload);
  if (problem !== undefined) throw new UsageError(problem);
  return payload;
}

function readLimited(path: string, limit: number, option: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`${option}: ${path} does not exist`);
    throw cannotRead(option, path, error);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new UsageError(`${option}: ${path} is a directory; give a file`);
    if (stat.isFile() && stat.size > limit) throw tooLarge(option, path, limit);
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (error) {
        // An I/O error (EIO, a file of /proc that cannot be read) was "unexpected error: EIO" alone.
        throw cannotRead(option, path, error);
      }
      if (n === 0) break;
      size += n;
      if (size > limit) throw tooLarge(option, path, limit);
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks);
  } finally {
    closeSync(fd);
  }
}

async function readStdin(stdin: NodeJS.ReadableStream, limit: number, option: string): Promise<Buffer> {
  // Node reads a directory on stdin (`< dir`) as empty: the session was handed an empty request.
  const fd = (stdin as { fd?: unknown }).fd;
  if (typeof fd === 'number' && isDirectory(fd)) {
    throw new UsageError(
      `${option}: stdin is a directory; redirect a file into it, or give --request-file PATH`,
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stdin) {
      const bytes = Buffer.from(chunk as Buffer);
      size += bytes.byteLength;
      if (size > limit) throw tooLarge(option, 'stdin', limit);
      chunks.push(bytes);
    }
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw cannotRead(option, 'stdin', error);
  }
  return Buffer.concat(chunks);
}

function isDirectory(fd: number): boolean {
  try {
    return fstatSync(fd).isDirectory();
  } catch {
    return false;
  }
}

/** A file (or stdin) that cannot be opened or read: the option, the file and the system's code. */
function cannotRead(option: string, what: string, error: unknown): UsageError {
  const code = (error as NodeJS.ErrnoException).code;
  return new UsageError(`${option}: cannot read ${what} (${code ?? String(error)})`);
}

function tooLarge(option: string, what: string, limit: number): UsageError {
  return new UsageError(
    `${option}: ${what} is larger than ${limit} bytes, what is left of the limit (request 1 MiB, inputs 8 MiB in all); mount large material with the agent's mounts: instead`,
  );
}
