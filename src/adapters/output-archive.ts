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
  private readonly kept: Buffer[];
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
    this.kept = kept;
  }

  /** The needles that pass `test`. */
  only(test: (needle: Buffer) => boolean): NeedleSet {
    return new NeedleSet(this.kept.filter(test));
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

/** What masking finds in a line of output (the runner's Masker, see createMasker). */
export interface LineMasking {
  /** Whether masking would hide something in the line (bytes[start, end)) that no needle finds. */
  readonly hidesBeyondForms: (bytes: Buffer, start: number, end: number) => boolean;
  /** The most characters of a line one hidden value may stretch over. */
  readonly reach: number;
}

/**
 * Whether the file holds any of the needles (anywhere: a file's name or content in a tar archive), and
 * which file was read (its identity, the same before and after the search, else it counts as held).
 * Undefined when there is no file. Read in chunks that overlap by the longest needle, never through a
 * link; cut short by `signal` (an AbortError). The needles that are base64 text are also looked for
 * in lines of base64 in a row, joined (base64 wrapped at any width). With `masking`, a line counts as
 * held too where masking would hide something in it that no needle finds (escape sequences, percent
 * escapes, `printf %q`, the ends of a value in wrapped base64): what the output is masked for in a
 * line is found in a file too. See LineScan for what is held.
 */
export async function fileHoldsAny(
  path: string,
  needles: NeedleSet,
  signal?: AbortSignal,
  masking?: LineMasking,
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
    const held = needles.longest > 0 && (await search(file, needles, signal, masking));
    // Changed while it was read: what was searched is not what is there.
    return { held: held || identityOf(await file.stat()) !== identity, identity };
  } finally {
    await file.close();
  }
}

async function search(
  file: FileHandle,
  needles: NeedleSet,
  signal?: AbortSignal,
  masking?: LineMasking,
): Promise<boolean> {
  const overlap = needles.longest - 1;
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES + overlap);
  const base64 = needles.only((needle) => BASE64_TEXT.test(needle.toString('latin1')));
  const lines = base64.longest > 0 || masking ? new LineScan(base64, masking) : undefined;
  let kept = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await file.read(buffer, kept, CHUNK_BYTES, null);
    if (bytesRead === 0) return lines?.end() ?? false;
    const filled = kept + bytesRead;
    if (needles.foundIn(buffer.subarray(0, filled))) return true;
    if (lines?.feed(buffer.subarray(kept, filled))) return true;
    // What a needle cut by the chunk's end may start with: searched again with the next chunk.
    kept = Math.min(overlap, filled);
    buffer.copy(buffer, 0, filled - kept, filled);
  }
}

/** Base64 text: what a needle must be to be looked for in base64 wrapped across lines. */
const BASE64_TEXT = /^[A-Za-z0-9+/]+=*$/;

/** Of each byte: whether it ends a line (BREAK), may be in a line of base64 (BASE64), or neither. */
const BASE64 = 0;
const OTHER = 1;
const BREAK = 2;
const BYTE_KIND = new Uint8Array(256).fill(OTHER);
for (const byte of [0x0a, 0x0d, 0x00]) BYTE_KIND[byte] = BREAK;
for (const char of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=') {
  BYTE_KIND[char.charCodeAt(0)] = BASE64;
}

/** Bytes of a long line read at once (as the output reader cuts one), besides their overlap. */
const LINE_PIECE_BYTES = 64 * 1024;

/**
 * The file's lines, for what no needle finds in its bytes. Lines end at `\n`, `\r` and NUL (in a tar
 * archive a file's first line follows its header's NULs).
 *
 * - Lines of base64 in a row are read as one text, for the needles that are base64 text (a value's
 *   base64, or the part of it that carries only the value's bits, a core): base64 of a longer text,
 *   wrapped (`env | base64`: GNU base64 at 76 columns, `openssl base64` at 64, MIME with CRLF), holds
 *   them split across lines wherever the value falls, where masking finds only the lines it starts or
 *   ends in. What is held of such a run is bounded by a chunk and the longest needle.
 * - With `masking`, each line is asked whether masking would hide something in it that no needle
 *   finds (LineMasking.hidesBeyondForms): a value in a reading of the line (without its escape
 *   sequences, with its percent escapes decoded, without `printf %q`'s backslashes), a line of wrapped
 *   base64 with the start or end of one. A line longer than LINE_PIECE_BYTES is asked in pieces that
 *   overlap by as far as one masked value may stretch (3 bytes for each of LineMasking.reach's
 *   characters): what is held of an unfinished line stays bounded by that and a chunk.
 */
class LineScan {
  /** What is held of an unfinished line, then the bytes fed. */
  private readonly buffer: Buffer;
  private carried = 0;
  /** Whether the bytes of the unfinished line held are all base64 (BASE64) or not (OTHER). */
  private seen = BASE64;
  private readonly overlap: number;
  /** The lines of base64 in a row so far (the last of them being cut short where they were searched). */
  private readonly run: Buffer;
  private runBytes = 0;
  private runLines = 0;

  constructor(
    private readonly base64: NeedleSet,
    private readonly masking: LineMasking | undefined,
  ) {
    this.overlap = 3 * (masking?.reach ?? 0);
    this.buffer = Buffer.allocUnsafe(LINE_PIECE_BYTES + this.overlap + CHUNK_BYTES);
    this.run = Buffer.allocUnsafe(base64.longest > 0 ? CHUNK_BYTES + base64.longest : 0);
  }

  /** Takes the next bytes of the file (at most CHUNK_BYTES); whether a line they end holds something. */
  feed(bytes: Buffer): boolean {
    const { buffer } = this;
    const filled = this.carried + bytes.copy(buffer, this.carried);
    let start = 0;
    let seen = this.seen;
    // One table look-up a byte, and a branch taken only at a line's end.
    for (let at = this.carried; at < filled; at++) {
      const kind = BYTE_KIND[buffer[at] as number] as number;
      if (kind !== BREAK) {
        seen |= kind;
        continue;
      }
      if (at > start && this.inLine(buffer, start, at, seen === BASE64)) return true;
      start = at + 1;
      seen = BASE64;
    }
    if (filled - start > LINE_PIECE_BYTES + this.overlap) {
      // A piece of a long line: never part of a run of base64 lines (those are short).
      if (this.inLine(buffer, start, filled, false)) return true;
      start = filled - this.overlap;
    }
    buffer.copy(buffer, 0, start, filled);
    this.carried = filled - start;
    this.seen = seen;
    return false;
  }

  /** Whether the file's last line (one without a line break), or the run of base64 it ends, holds something. */
  end(): boolean {
    if (this.carried > 0 && this.inLine(this.buffer, 0, this.carried, this.seen === BASE64)) return true;
    return this.endRun();
  }

  private inLine(data: Buffer, start: number, end: number, base64: boolean): boolean {
    if (this.base64.longest > 0) {
      if (base64) {
        if (this.addToRun(data, start, end)) return true;
      } else if (this.endRun()) return true;
    }
    return this.masking?.hidesBeyondForms(data, start, end) ?? false;
  }

  private addToRun(data: Buffer, start: number, end: number): boolean {
    const { run } = this;
    const keep = this.base64.longest - 1;
    for (let at = start; at < end; ) {
      const size = Math.min(end - at, run.length - this.runBytes);
      data.copy(run, this.runBytes, at, at + size);
      this.runBytes += size;
      at += size;
      if (this.runBytes === run.length) {
        if (this.base64.foundIn(run)) return true;
        run.copy(run, 0, this.runBytes - keep, this.runBytes);
        this.runBytes = keep;
      }
    }
    this.runLines++;
    return false;
  }

  /** A line that is not base64 ends a run: searched, if it joined lines (one line was searched whole). */
  private endRun(): boolean {
    const found = this.runLines > 1 && this.base64.foundIn(this.run.subarray(0, this.runBytes));
    this.runBytes = 0;
    this.runLines = 0;
    return found;
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
