import { lstatSync, rmSync, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { kindOf, NotRegularFileError, READ_NO_FOLLOW, readNoFollow, writeFileAtomic } from './state-files.js';

/** Bytes of an archive read (and searched) at once: the event loop is free between two. */
export const CHUNK_BYTES = 256 * 1024;

/**
 * Byte strings searched for together in one pass: each position's first two bytes are looked up in a
 * table of the needles' first two bytes, and only there are needles compared, byte by byte until the
 * first difference. One pass whatever the number of needles (a multi-line credential has hundreds of
 * forms), where one `includes` each would read the text once per needle; and no native call per
 * candidate position, which a file of a needle's first bytes repeated would make at every position.
 * Duplicates, and needles that hold a shorter one (which finds them too), are dropped.
 */
export class NeedleSet {
  private readonly starts = new Uint8Array(65536);
  private readonly byStart = new Map<number, Buffer[]>();
  /** Bytes of the longest needle. */
  readonly longest: number;

  constructor(needles: readonly Buffer[]) {
    const unique = [
      ...new Map(needles.filter((n) => n.length >= 2).map((n) => [n.toString('hex'), n])).values(),
    ];
    unique.sort((a, b) => a.length - b.length);
    const kept: Buffer[] = [];
    for (const needle of unique) if (!kept.some((shorter) => needle.includes(shorter))) kept.push(needle);
    let longest = 0;
    for (const needle of kept) {
      const start = ((needle[0] as number) << 8) | (needle[1] as number);
      this.starts[start] = 1;
      const list = this.byStart.get(start) ?? [];
      list.push(needle);
      this.byStart.set(start, list);
      longest = Math.max(longest, needle.length);
    }
    this.longest = longest;
  }

  /** Whether any needle is in `bytes`. */
  foundIn(bytes: Buffer): boolean {
    const { starts, byStart } = this;
    const length = bytes.length;
    for (let at = 0; at + 1 < length; at++) {
      const start = ((bytes[at] as number) << 8) | (bytes[at + 1] as number);
      if (starts[start] === 0) continue;
      for (const needle of byStart.get(start) as Buffer[]) {
        const size = needle.length;
        if (at + size > length) continue;
        let i = 2;
        while (i < size && bytes[at + i] === needle[i]) i++;
        if (i === size) return true;
      }
    }
    return false;
  }
}

/**
 * Whether the file holds any of the needles (anywhere: a file's name or content in a tar archive), and
 * which file was read (its identity, the same before and after the search, else it counts as held).
 * Undefined when there is no file. Read in chunks that overlap by the longest needle, never through a
 * link; cut short by `signal` (an AbortError).
 */
export async function fileHoldsAny(
  path: string,
  needles: NeedleSet,
  signal?: AbortSignal,
): Promise<{ held: boolean; identity: string } | undefined> {
  let file: FileHandle;
  try {
    file = await open(path, READ_NO_FOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const before = await file.stat();
    if (!before.isFile()) throw new NotRegularFileError(path, kindOf(before));
    const identity = identityOf(before);
    const held = needles.longest > 0 && (await search(file, needles, signal));
    // Changed while it was read: what was searched is not what is there.
    return { held: held || identityOf(await file.stat()) !== identity, identity };
  } finally {
    await file.close();
  }
}

async function search(file: FileHandle, needles: NeedleSet, signal?: AbortSignal): Promise<boolean> {
  const overlap = needles.longest - 1;
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES + overlap);
  let kept = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await file.read(buffer, kept, CHUNK_BYTES, null);
    if (bytesRead === 0) return false;
    const filled = kept + bytesRead;
    if (needles.foundIn(buffer.subarray(0, filled))) return true;
    // What a needle cut by the chunk's end may start with: searched again with the next chunk.
    kept = Math.min(overlap, filled);
    buffer.copy(buffer, 0, filled - kept, filled);
  }
}

/**
 * Withholds an output archive: why, written beside it first (`note`: a seal that finds it keeps no
 * output, whatever happens next), then the archive removed. The reason never holds a value.
 */
export function withholdArchive(archive: string, note: string, why: string): void {
  writeFileAtomic(note, why, { durable: true, operation: 'note why the output archive is not kept' });
  rmSync(archive, { force: true });
}

/** Why a session's output archive was withheld, if it was (see withholdArchive). */
export function withheldReason(note: string): string | undefined {
  try {
    return readNoFollow(note).toString('utf8').slice(0, 1000);
  } catch {
    return undefined;
  }
}

/** What identifies an archive as the one searched: its size, times and inode. */
function identityOf(stat: Stats): string {
  return `${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}:${stat.ino}`;
}

/**
 * Notes that the archive (the file `identity` names, see fileHoldsAny) was searched and held no value.
 * Not synced to disk: a mark a crash loses withholds the output (fail closed), and an fsync would cost
 * every session's teardown.
 */
export function markSearched(marker: string, identity: string): void {
  writeFileAtomic(marker, identity, { operation: 'note that the output archive was searched' });
}

/**
 * Notes that the archive needs no search: its session was given no value (nothing to look for). Nothing
 * when there is no archive.
 */
export function markNothingToSearch(archive: string, marker: string): void {
  let stat: Stats;
  try {
    stat = lstatSync(archive);
  } catch {
    return;
  }
  if (stat.isFile()) markSearched(marker, identityOf(stat));
}

/**
 * Whether the archive is the one found clean (markSearched): an archive no daemon searched (one stopped
 * between the container's end and the search), or one changed since, is not, and is not kept.
 */
export function wasSearched(archive: string, marker: string): boolean {
  let identity: string;
  try {
    const stat = lstatSync(archive);
    if (!stat.isFile()) return false;
    identity = identityOf(stat);
  } catch {
    return false;
  }
  try {
    return readNoFollow(marker).toString('utf8') === identity;
  } catch {
    return false;
  }
}
