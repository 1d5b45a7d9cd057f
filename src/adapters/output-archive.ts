import { lstatSync, renameSync, rmSync, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { kindOf } from '../file-kind.js';
import { NotRegularFileError, READ_NO_FOLLOW, readNoFollow, writeFileAtomic } from './state-files.js';

/** Bytes of an archive read (and searched) at once: the event loop is free between two. */
export const CHUNK_BYTES = 256 * 1024;

/** Bytes of needles read between two steps of NeedleSet.inSteps. */
const STEP_BYTES = 16 * 1024 * 1024;

/** What NeedleSet.inSteps tells its constructor: the needles are distinct already. */
const DISTINCT = Symbol('distinct');

function atOnce<T>(steps: Generator<void, T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** Most needles compared with each other to drop those that hold a shorter one. */
const MAX_NEEDLES_COMPARED = 512;

/**
 * Byte strings searched for together in one pass: each position's first two bytes are looked up in a
 * table of the needles' first two bytes, and only there are needles compared, byte by byte until the
 * first difference. One pass whatever the number of needles (a multi-line credential has hundreds of
 * forms), where one `includes` each would read the text once per needle; and no native call per
 * candidate position, which a file of a needle's first bytes repeated would make at every position.
 * Duplicates, and needles that hold a shorter one (which finds them too), are dropped.
 */
export class NeedleSet {
  /** Of each two bytes (the first as the high byte): whether a needle starts with them. */
  readonly starts = new Uint8Array(65536);
  private readonly byStart = new Map<number, Buffer[]>();
  private readonly kept: Buffer[];
  private pairTable: Uint8Array | undefined;
  /** Bytes of the longest needle, and of the shortest (0 when there are none). */
  readonly longest: number;
  readonly shortest: number;

  /** `distinct`: the needles are those uniqueNeedles kept (NeedleSet.inSteps), not read again. */
  constructor(needles: readonly Buffer[], distinct?: typeof DISTINCT) {
    const unique = distinct === DISTINCT ? [...needles] : atOnce(uniqueNeedles(needles));
    unique.sort((a, b) => a.length - b.length);
    // Dropping those that hold a shorter one compares each pair: past a few hundred (a long value's
    // wrapped base64) that took seconds (12,000 needles: 5 s), where keeping them costs nearly nothing.
    const kept: Buffer[] =
      unique.length > MAX_NEEDLES_COMPARED
        ? unique
        : unique.reduce<Buffer[]>((kept, needle) => {
            if (!kept.some((shorter) => needle.includes(shorter))) kept.push(needle);
            return kept;
          }, []);
    let longest = 0;
    for (const needle of kept) {
      const start = ((needle[0] as number) << 8) | (needle[1] as number);
      this.starts[start] = 1;
      const list = this.byStart.get(start);
      if (list) list.push(needle);
      else this.byStart.set(start, [needle]);
      if (needle.length > longest) longest = needle.length;
    }
    this.longest = longest;
    this.shortest = kept[0]?.length ?? 0;
    this.kept = kept;
  }

  /**
   * Of each two bytes (the first as the high byte): whether a needle has them. Made when first asked
   * (it reads every byte of every needle: 30 MB for ten values of 128 KB, which the output's search of
   * blocks never asks for).
   */
  get pairs(): Uint8Array {
    if (this.pairTable === undefined) {
      const pairs = new Uint8Array(65536);
      for (const needle of this.kept) {
        let pair = needle[0] as number;
        for (let at = 1; at < needle.length; at++) {
          pair = ((pair << 8) | (needle[at] as number)) & 0xffff;
          pairs[pair] = 1;
        }
      }
      this.pairTable = pairs;
    }
    return this.pairTable;
  }

  /**
   * A NeedleSet of needles, with the event loop free after each STEP_BYTES of them read to find the
   * equal ones: the output archive's search of ten values of 128 KB of random bytes has 250 MB of
   * needles, most of a second of the daemon's one thread at once.
   */
  static async inSteps(needles: readonly Buffer[]): Promise<NeedleSet> {
    const steps = uniqueNeedles(needles);
    for (;;) {
      const step = steps.next();
      if (step.done) return new NeedleSet(step.value, DISTINCT);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** The needles that pass `test`. */
  only(test: (needle: Buffer) => boolean): NeedleSet {
    return new NeedleSet(this.kept.filter(test));
  }

  /** Whether a needle is at bytes[at] and ends by `end` (one starts with bytes[at, at + 2): `starts`). */
  at(bytes: Buffer, at: number, end: number): boolean {
    for (const needle of this.byStart.get(((bytes[at] as number) << 8) | (bytes[at + 1] as number)) ?? []) {
      const size = needle.length;
      if (at + size > end) continue;
      let i = 2;
      while (i < size && bytes[at + i] === needle[i]) i++;
      if (i === size) return true;
    }
    return false;
  }

  /** Whether any needle is in `bytes` (in bytes[from, to)). */
  foundIn(bytes: Buffer, from = 0, to = bytes.length): boolean {
    const { starts } = this;
    for (let at = from; at + 1 < to; at++) {
      // Most positions start no needle: one table look-up, before the map.
      if (starts[((bytes[at] as number) << 8) | (bytes[at + 1] as number)] !== 0 && this.at(bytes, at, to))
        return true;
    }
    return false;
  }
}

/**
 * The needles of at least 2 bytes, each once (the first of equal ones, in their order). Equal needles
 * are found by their length and a hash of their bytes, then compared: keyed by their text (hex, as
 * before), 30 MB of needles made 60 MB of strings to hash and collect.
 */
function* uniqueNeedles(needles: readonly Buffer[]): Generator<void, Buffer[]> {
  const unique: Buffer[] = [];
  const seen = new Map<number, Buffer[]>();
  let read = 0;
  for (const needle of needles) {
    if (read >= STEP_BYTES) {
      read = 0;
      yield;
    }
    read += needle.length;
    if (needle.length < 2) continue;
    const key = hashNeedle(needle);
    const same = seen.get(key);
    if (same === undefined) seen.set(key, [needle]);
    else if (same.some((other) => other.length === needle.length && other.equals(needle))) continue;
    else same.push(needle);
    unique.push(needle);
  }
  return unique;
}

/** A hash of a needle's length and bytes (FNV-1a, four bytes at a time where it can). */
function hashNeedle(needle: Buffer): number {
  let h = Math.imul(0x811c9dc5 ^ needle.length, 0x01000193);
  const length = needle.length;
  const words = length & ~3;
  let at = 0;
  for (; at < words; at += 4) {
    const word =
      (needle[at] as number) |
      ((needle[at + 1] as number) << 8) |
      ((needle[at + 2] as number) << 16) |
      ((needle[at + 3] as number) << 24);
    h = Math.imul(h ^ word, 0x01000193);
  }
  for (; at < length; at++) h = Math.imul(h ^ (needle[at] as number), 0x01000193);
  return h;
}

/**
 * The readings of a line that masking finds a value in besides the line as it is (the runner's Masker:
 * see createMasker, LineReadings): the line without escape sequences, with its percent escapes
 * decoded, without `printf %q`'s backslashes.
 */
export interface LineMasking {
  readonly readings: {
    /**
     * Of each two bytes (the first as the high byte): which readings (bits 1, 2, 4, 8) they may make
     * differ from the line there, or 0.
     */
    readonly triggers: Uint8Array;
    /**
     * Whether a needle is in a reading of bytes[start, end) of one of `kinds` (its bytes' triggers)
     * where it may not be in the line as it is (about a change: `search` says where needles have
     * which two bytes in a row, how far they reach, and finds them).
     */
    some(
      bytes: Buffer,
      start: number,
      end: number,
      kinds: number,
      search: {
        readonly pairs: Uint8Array;
        readonly margin: number;
        found(reading: Buffer, start: number, end: number): boolean;
      },
    ): boolean;
  };
  /** The most characters of a line one hidden value may stretch over. */
  readonly reach: number;
}

/**
 * Whether the file holds any of the needles (anywhere: a file's name or content in a tar archive), and
 * which file was read (its identity, the same before and after the search, else it counts as held).
 * Undefined when there is no file. Read in chunks that overlap by the longest needle, never through a
 * link; cut short by `signal` (an AbortError). The needles that are base64 text are also looked for
 * in lines of base64 in a row, joined (base64 wrapped at any width): the needles are to stand for a
 * value whole, not be a line's share of its wrapped base64 (values of a kind share the first). With
 * `masking`, the needles are looked for in the readings of a line masking finds a value in too
 * (escape sequences, percent escapes, `printf %q`). See Scan for what is held.
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
  const scan = new Scan(needles, masking);
  for (;;) {
    // A chunk at a time, read while the event loop is free, and searched at once.
    signal?.throwIfAborted();
    const { bytesRead } = await file.read(scan.buffer, scan.carried, CHUNK_BYTES, null);
    if (bytesRead === 0) return scan.end();
    if (scan.feed(bytesRead)) return true;
  }
}

/** Base64 text: what a needle must be to be looked for in base64 wrapped across lines. */
const BASE64_TEXT = /^[A-Za-z0-9+/]+=*$/;

/**
 * Kinds of a byte, or-ed over a line: NOT_BASE64 (not in a line of base64), and the readings it may
 * make differ from the line (LineMasking's triggers of it and the byte after it, shifted by READINGS);
 * BREAK ends a line. MAY_READ marks (in Scan.kinds) a byte that starts a trigger: only there is the
 * table of two bytes looked at.
 */
const NOT_BASE64 = 1;
const BREAK = 2;
const MAY_READ = 4;
const READINGS = 3;
const BYTE_KINDS = new Uint8Array(256).fill(NOT_BASE64);
for (const byte of [0x0a, 0x0d, 0x00]) BYTE_KINDS[byte] = BREAK;
for (const char of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=') {
  BYTE_KINDS[char.charCodeAt(0)] = 0;
}

/** Bytes of a long line read at once (as the output reader cuts one), besides their overlap. */
const LINE_PIECE_BYTES = 64 * 1024;

/**
 * A file's bytes, searched for the needles, and its lines for what no needle finds in its bytes, in one
 * loop over the bytes: at each, a look-up of the two bytes there in NeedleSet.starts (a needle is
 * compared only where one starts with them), and one of its kind (BYTE_KINDS), or-ed over a line, which
 * says at the line's end whether it is base64 and which readings it may have: a line is read again only
 * for those. Lines end at `\n`, `\r` and NUL (in a tar archive a file's first line follows its
 * header's NULs).
 *
 * - Lines of base64 in a row are read as one text, for the needles that are base64 text (a value's
 *   base64, or the part of it that carries only the value's bits, a core): base64 of a longer text,
 *   wrapped (`env | base64`: GNU base64 at 76 columns, `openssl base64` at 64, MIME with CRLF), holds
 *   them split across lines wherever the value falls. What is held of such a run is bounded by a chunk
 *   and the longest needle.
 * - With `masking`, each line that may read otherwise (an ESC, a `%`, a backslash) and is no shorter
 *   than the shortest needle (no reading is longer than its line) is read so, and the needles looked
 *   for in each reading, about where it differs from the line. A line longer than LINE_PIECE_BYTES is
 *   read in pieces that overlap by as far as one masked value may stretch (3 bytes for each of
 *   LineMasking.reach's characters): what is held of an unfinished line stays bounded by that and a
 *   chunk.
 */
class Scan {
  /**
   * What is kept of the bytes searched (the unfinished line, and where a needle cut by the chunk's end
   * may start), then the next chunk read; and a byte more, the one after the last read looked at.
   */
  readonly buffer: Buffer;
  /** Bytes kept in `buffer`. */
  carried = 0;
  /** Where in `buffer` the needles are looked for next (before `carried`: a needle cut by the chunk's end). */
  private needleAt = 0;
  /** Where the unfinished line starts in `buffer`, and the kinds of its bytes, or-ed. */
  private start = 0;
  private seen = 0;
  private readonly overlap: number;
  /** Of each byte, its kinds (BYTE_KINDS, with MAY_READ), and LineMasking's triggers. */
  private readonly kinds: Uint8Array;
  private readonly triggers: Uint8Array;
  /** Of each byte, the readings it may make differ whatever follows (shifted by READINGS). */
  private readonly mayRead = new Uint8Array(256);
  private readonly base64: NeedleSet;
  /** What a reading of a line is searched for (LineMasking's `some`). */
  private readonly search: {
    readonly pairs: Uint8Array;
    readonly margin: number;
    found(reading: Buffer, start: number, end: number): boolean;
  };
  /** The lines of base64 in a row so far (the last of them being cut short where they were searched). */
  private readonly run: Buffer;
  private runBytes = 0;
  private runLines = 0;

  constructor(
    private readonly needles: NeedleSet,
    private readonly masking: LineMasking | undefined,
  ) {
    this.base64 = needles.only((needle) => BASE64_TEXT.test(needle.toString('latin1')));
    this.overlap = 3 * (masking?.reach ?? 0);
    this.buffer = Buffer.alloc(Math.max(LINE_PIECE_BYTES + this.overlap, needles.longest) + CHUNK_BYTES + 1);
    this.run = Buffer.allocUnsafe(this.base64.longest > 0 ? CHUNK_BYTES + this.base64.longest : 0);
    this.kinds = BYTE_KINDS.slice();
    this.triggers = masking?.readings.triggers ?? new Uint8Array(65536);
    for (let pair = 0; pair < 65536; pair++) {
      const readings = this.triggers[pair] as number;
      if (readings === 0) continue;
      this.kinds[pair >> 8] = (this.kinds[pair >> 8] as number) | MAY_READ;
      this.mayRead[pair >> 8] = (this.mayRead[pair >> 8] as number) | (readings << READINGS);
    }
    this.search = {
      pairs: needles.pairs,
      margin: needles.longest - 1,
      found: (reading, start, end) => needles.foundIn(reading, start, end),
    };
  }

  /** Takes the `read` bytes read into `buffer` after what it kept; whether the file holds something there. */
  feed(read: number): boolean {
    const { buffer, kinds, needles, triggers } = this;
    const { starts } = needles;
    const filled = this.carried + read;
    // Where a needle cut by the previous chunk's end may start: looked for again.
    for (let at = this.needleAt; at < this.carried; at++) {
      if (
        starts[((buffer[at] as number) << 8) | (buffer[at + 1] as number)] !== 0 &&
        needles.at(buffer, at, filled)
      )
        return true;
    }
    let start = this.start;
    let seen = this.seen;
    // Two table look-ups a byte, a needle compared only where one starts, one branch for most bytes.
    let byte = buffer[this.carried] as number;
    for (let at = this.carried; at < filled; at++) {
      const next = buffer[at + 1] as number;
      const pair = (byte << 8) | next;
      const kind = kinds[byte] as number;
      byte = next;
      if (starts[pair] !== 0 && needles.at(buffer, at, filled)) return true;
      if (kind < BREAK) {
        seen |= kind;
        continue;
      }
      if (kind !== BREAK) {
        seen |= (kind & NOT_BASE64) | ((triggers[pair] as number) << READINGS);
        continue;
      }
      // Nothing to do for a line that is not base64, has nothing to read otherwise and ends no run.
      if (at > start && (seen !== NOT_BASE64 || this.runLines > 0) && this.inLine(buffer, start, at, seen))
        return true;
      start = at + 1;
      seen = 0;
    }
    // The last byte read was looked at with the byte after it unread: any reading it may start.
    if (start < filled) seen |= this.mayRead[buffer[filled - 1] as number] as number;
    if (filled - start > LINE_PIECE_BYTES + this.overlap) {
      // A piece of a long line: never part of a run of base64 lines (those are short).
      if (this.inLine(buffer, start, filled, seen | NOT_BASE64)) return true;
      start = filled - this.overlap;
    }
    // Kept: the unfinished line, and what a needle the chunk's end cuts may start with.
    const needleAt = Math.max(0, filled - needles.longest + 1);
    const keep = Math.min(start, needleAt);
    buffer.copy(buffer, 0, keep, filled);
    this.carried = filled - keep;
    this.needleAt = needleAt - keep;
    this.start = start - keep;
    this.seen = seen;
    return false;
  }

  /** Whether the file's last line (one without a line break), or the run of base64 it ends, holds something. */
  end(): boolean {
    if (this.carried > this.start && this.inLine(this.buffer, this.start, this.carried, this.seen))
      return true;
    return this.endRun();
  }

  private inLine(data: Buffer, start: number, end: number, seen: number): boolean {
    if (this.base64.longest > 0) {
      if ((seen & NOT_BASE64) === 0) {
        if (this.addToRun(data, start, end)) return true;
      } else if (this.runLines > 0 && this.endRun()) return true;
    }
    const readings = seen >> READINGS;
    if (readings === 0 || end - start < this.needles.shortest) return false;
    return this.masking?.readings.some(data, start, end, readings, this.search) ?? false;
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
    const found = this.runLines > 1 && this.base64.foundIn(this.run, 0, this.runBytes);
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

/** The file the setup step writes the archive into before it renames it to the archive. */
export function partOf(archive: string): string {
  return `${archive}.part`;
}

/** The note that the archive is the part a stop cut short (see adoptCutArchive). */
export function cutNoteOf(archive: string): string {
  return `${archive}.cut`;
}

/**
 * Takes as the archive the part the setup step was still writing when the session's stop killed it
 * (Podman's SIGKILL comes OUTPUT_COPY_SECONDS after the grace period: a large /agentd/out is not
 * archived by then): a tar archive cut there, which keeps what came before, where nothing was kept.
 * Noted first (cutNoteOf), so that the record says why it ends early. Whether it took one; nothing
 * when there is an archive, or no part that holds anything.
 */
export function adoptCutArchive(archive: string): boolean {
  try {
    lstatSync(archive);
    return false;
  } catch {
    // No archive: the part, if any, is what there is.
  }
  const part = partOf(archive);
  let stat: Stats;
  try {
    stat = lstatSync(part);
  } catch {
    return false;
  }
  if (!stat.isFile() || stat.size === 0) return false;
  writeFileAtomic(cutNoteOf(archive), 'stopped while it was archived', {
    operation: 'note that the output archive was cut short',
  });
  renameSync(part, archive);
  return true;
}

/**
 * Why a session's output archive was withheld, if it was (see withholdArchive). An empty note is none: the
 * setup step's, on a full filesystem, can be created and left empty by the write that failed.
 */
export function withheldReason(note: string): string | undefined {
  try {
    const why = readNoFollow(note).toString('utf8').slice(0, 1000).trim();
    return why === '' ? undefined : why;
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
 * when there is no archive; the part of one a stop cut short is taken as it (adoptCutArchive).
 */
export function markNothingToSearch(archive: string, marker: string): void {
  try {
    adoptCutArchive(archive);
  } catch {
    // Not taken: the record says the output is missing.
  }
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
