import { lstatSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { kindOf, NotRegularFileError, READ_NO_FOLLOW, readNoFollow, writeFileAtomic } from './state-files.js';

/** Bytes of an archive read at once while it is searched. */
const CHUNK_BYTES = 1024 * 1024;

/**
 * Whether the file holds any of `needles` (bytes, anywhere: a file's name or content in a tar archive).
 * Undefined when there is no file. Read in chunks that overlap by the longest needle, never through a
 * link; cut short by `signal`.
 */
export async function fileHoldsAny(
  path: string,
  needles: readonly Buffer[],
  signal?: AbortSignal,
): Promise<boolean | undefined> {
  try {
    lstatSync(path);
  } catch {
    return undefined;
  }
  const overlap = Math.max(0, ...needles.map((needle) => needle.length)) - 1;
  if (overlap < 0) return false;
  const file = await open(path, READ_NO_FOLLOW);
  try {
    const stat = await file.stat();
    if (!stat.isFile()) throw new NotRegularFileError(path, kindOf(stat));
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES + overlap);
    let kept = 0;
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await file.read(buffer, kept, CHUNK_BYTES, null);
      if (bytesRead === 0) return false;
      const filled = kept + bytesRead;
      const view = buffer.subarray(0, filled);
      if (needles.some((needle) => view.includes(needle))) return true;
      // What a needle cut by the chunk's end may start with: searched again with the next chunk.
      kept = Math.min(overlap, filled);
      buffer.copy(buffer, 0, filled - kept, filled);
    }
  } finally {
    await file.close();
  }
}

/**
 * Withholds an output archive: removed, and why written beside it (`note`, which the sealed record
 * reports instead of the output). The reason never holds a value.
 */
export function withholdArchive(archive: string, note: string, why: string): void {
  rmSync(archive, { force: true });
  writeFileAtomic(note, why, { durable: true, operation: 'note why the output archive was not kept' });
}

/** Why a session's output archive was withheld, if it was (see withholdArchive). */
export function withheldReason(note: string): string | undefined {
  try {
    return readNoFollow(note).toString('utf8').slice(0, 1000);
  } catch {
    return undefined;
  }
}
