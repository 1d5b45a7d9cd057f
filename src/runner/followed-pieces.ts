import { randomBytes } from 'node:crypto';
import { CONTAINER_LOG_MAX_BYTES } from '../constants.js';

/**
 * What a `podman logs --follow` handed on of one stream, kept to find it again in what Podman still
 * holds once the follow has ended (see catchUp in actors.ts).
 *
 * Podman 4 ends a follow at the container's exit even when it is behind, and while it stops it drops
 * the lines its reader cannot take at once: near its end, the follow is a subsequence of the output,
 * not a prefix, and its last piece may be a line cut short. So the catch-up cannot skip by count nor
 * look for the follow's last few pieces in a row; it marks, piece by piece, which of Podman's copy the
 * follow handed on. A fingerprint per piece is kept (not its text): for as many pieces as Podman's
 * bounded copy can hold, whatever the lines' length, at most about 1.5 MB.
 */
export class FollowedPieces {
  /** A ring, grown as pieces come up to maxPieces (most follows hand on few). */
  private keys: Float64Array;
  private sizes: Uint32Array;
  /** 1 where the piece was written (not skipped as one the log held already). */
  private wrote: Uint8Array;
  /** Index of the oldest kept piece, and how many are kept. */
  private head = 0;
  private length = 0;
  private bytes = 0;

  constructor(
    /** Pieces' text kept for at least as much as Podman's copy can hold. */
    private readonly maxBytes = CONTAINER_LOG_MAX_BYTES + 64 * 1024,
    /** A k8s-file line takes at least 46 bytes, its text included: no copy holds more pieces than this. */
    private readonly maxPieces = 131_072,
  ) {
    this.keys = new Float64Array(Math.min(256, maxPieces));
    this.sizes = new Uint32Array(this.keys.length);
    this.wrote = new Uint8Array(this.keys.length);
  }

  /** The last piece handed on did not end its line. */
  open = false;

  add(text: string, end: boolean, written = true): void {
    this.open = !end;
    if (this.length === this.keys.length) {
      if (this.keys.length < this.maxPieces) this.grow();
      else this.dropOldest();
    }
    const at = (this.head + this.length) % this.keys.length;
    this.keys[at] = pieceKey(text, end);
    this.sizes[at] = text.length;
    this.wrote[at] = written ? 1 : 0;
    this.length++;
    this.bytes += text.length;
    while (this.bytes > this.maxBytes && this.length > 1) this.dropOldest();
  }

  /** The kept pieces' fingerprints, oldest first. */
  kept(): Float64Array {
    const out = new Float64Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.keys[(this.head + i) % this.keys.length] ?? 0;
    return out;
  }

  /** Whether each kept piece was written, oldest first. */
  keptWritten(): Uint8Array {
    const out = new Uint8Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.wrote[(this.head + i) % this.keys.length] ?? 0;
    return out;
  }

  private grow(): void {
    const capacity = Math.min(this.maxPieces, this.keys.length * 2);
    const keys = new Float64Array(capacity);
    const sizes = new Uint32Array(capacity);
    const wrote = new Uint8Array(capacity);
    for (let i = 0; i < this.length; i++) {
      const from = (this.head + i) % this.keys.length;
      keys[i] = this.keys[from] ?? 0;
      sizes[i] = this.sizes[from] ?? 0;
      wrote[i] = this.wrote[from] ?? 0;
    }
    this.keys = keys;
    this.sizes = sizes;
    this.wrote = wrote;
    this.head = 0;
  }

  private dropOldest(): void {
    this.bytes -= this.sizes[this.head] ?? 0;
    this.head = (this.head + 1) % this.keys.length;
    this.length--;
  }
}

/** Seeds of this process: an agent cannot make, ahead of time, a line that shares another's fingerprint. */
const SEEDS = randomBytes(8);
const SEED_A = SEEDS.readUInt32LE(0);
const SEED_B = SEEDS.readUInt32LE(4);

/**
 * A 53-bit fingerprint of a piece (its text and whether a line break ended it): two seeded 32-bit
 * multiplicative hashes, so that two different pieces of one container's output practically never
 * share one (a shared one would cost a line, not expose one).
 */
export function pieceKey(text: string, end: boolean): number {
  let a = SEED_A ^ (end ? 1 : 2);
  let b = SEED_B ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0) * 0x200000 + (b >>> 11);
}

/**
 * How many of the follow's pieces in a row may be missing from Podman's copy before the rest are
 * taken as older than all it holds (a line cut short is in the copy whole, not as the part).
 */
const MAX_MISSES = 64;

export interface FollowedMatch {
  /** Per piece of the follow (as given, oldest first): where it is in the copy, or -1. */
  placed: Int32Array;
  /** How many of the copy's pieces the follow handed on. */
  matched: number;
}

/**
 * Finds which pieces of Podman's copy of one stream the follow handed on; the copy was read from the
 * follow's own starting point, so it holds nothing from before it (it may begin later: Podman emptied
 * it since).
 *
 * First, which of the follow's pieces the copy holds: the newest ones, found from the copy's end
 * backwards, each before the one found after it (gaps allowed: lines the follow left out); a piece not
 * found is passed over (a line cut short), and MAX_MISSES of them in a row end the search (the rest
 * came before the copy's start). Then those are placed from the copy's start, each as early as it can
 * be after the one before: of repeated lines, the ones the follow handed on are the earlier ones. The
 * follow's newest piece is placed last, only after all the others: it may be a line cut short, which
 * is not marked (it comes again whole) and must not be taken for an earlier line it starts like.
 * Nothing found: the follow ended before all the copy holds.
 */
export function matchFollowed(copy: ArrayLike<number>, followed: Float64Array): FollowedMatch {
  const placed = new Int32Array(followed.length).fill(-1);
  const positions = new Map<number, number[]>();
  for (let i = 0; i < copy.length; i++) {
    const key = copy[i] ?? 0;
    const list = positions.get(key);
    if (list === undefined) positions.set(key, [i]);
    else list.push(i);
  }
  const where = (j: number) => positions.get(followed[j] ?? 0);
  /** The follow's pieces the copy holds, oldest first. */
  const found: number[] = [];
  let bound = copy.length;
  let misses = 0;
  // The newest piece last (below): it may be a line cut short, the start of an earlier whole one.
  const newest = followed.length - 1;
  for (let j = newest - 1; j >= 0 && misses < MAX_MISSES && bound > 0; j--) {
    const at = below(where(j), bound);
    if (at === -1) {
      misses++;
      continue;
    }
    misses = 0;
    found.push(j);
    bound = at;
  }
  found.reverse();
  let previous = -1;
  for (const j of found) {
    // One exists: the backward search placed each found piece after the one before it.
    previous = above(where(j), previous);
    placed[j] = previous;
  }
  // Found only after all the others: before them, it is an earlier line (this one cut short).
  const last = newest >= 0 ? above(where(newest), previous) : -1;
  if (last !== -1) placed[newest] = last;
  return { placed, matched: found.length + (last === -1 ? 0 : 1) };
}

/** The largest of ascending `list` below `bound`, or -1. */
function below(list: readonly number[] | undefined, bound: number): number {
  const at = list === undefined ? 0 : atMost(list, bound - 1);
  return at === 0 ? -1 : (list?.[at - 1] ?? -1);
}

/** The smallest of ascending `list` above `after`, or -1. */
function above(list: readonly number[] | undefined, after: number): number {
  return list === undefined ? -1 : (list[atMost(list, after)] ?? -1);
}

/** How many of ascending `list` are at most `value`. */
function atMost(list: readonly number[], value: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid] ?? 0) <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
