/**
 * Where a session's log left off in Podman's copy of the container's output, found by content, never by
 * time: the daemon dates its lines by its own clock and Podman by its host's, and the two need not
 * agree (a host 30 s behind, a daemon clock stepped back while it was away), so a replay cut at a time
 * loses lines or repeats them without a word. Podman's copy is bounded (CONTAINER_LOG_MAX_BYTES), so it
 * is read whole, line by line, one stream at a time, as the log would hold each line (masked), and
 * compared with the log's last lines of that stream (the anchor).
 *
 * At every line of the copy, how many of the log's last lines end there (the copy's lines just before
 * it are, in order, the log's last ones); the log left off where the most do. A stretch of repeated
 * lines (an agent printing the same line many times) gives several places where all of the anchor
 * ends: the earliest is taken, so nothing is lost (what follows may repeat some lines the log holds);
 * the log's lines before the stretch usually tell the places apart. Fewer than ANCHOR_MIN_LINES of
 * the log's last lines (unless it holds fewer) is no anchor: a single blank line or `}` is everywhere.
 *
 * Memory is bounded by the anchor, not the copy: a fingerprint per anchor line, and the rolling hash of
 * the copy's last lines as many as the anchor's. A line the copy holds in pieces (a long one) is
 * fingerprinted as it comes, piece by piece, whole.
 */

/** The log's last lines per stream compared with Podman's copy. */
export const ANCHOR_LINES = 1000;
/** Fewer lines found in order than this (unless the log holds fewer) do not say where the log left off. */
export const ANCHOR_MIN_LINES = 3;

const P1 = 67_108_859;
const P2 = 67_108_837;
const B1 = 40_503;
const B2 = 52_711;

/** Where the log left off in the stream read so far. */
export interface AnchorFound {
  /** Lines of the stream read. */
  lines: number;
  /**
   * How many of the stream's first lines the log holds (the rest are newer), when found; undefined when
   * the log's last lines are not in it (the copy was emptied past them, or the log holds none of them).
   */
  through: number | undefined;
}

export class ResumeAnchor {
  private readonly size: number;
  /** Fingerprint of the log's last k lines, per k (index k), for both moduli. */
  private readonly suffix1: Float64Array;
  private readonly suffix2: Float64Array;
  /** B^k per k. */
  private readonly power1: Float64Array;
  private readonly power2: Float64Array;
  /** Rolling hash of the stream's first i lines, for its last size + 1 values of i (ring). */
  private readonly prefix1: Float64Array;
  private readonly prefix2: Float64Array;
  private count = 0;
  /** The line being read in pieces: its fingerprint so far. */
  private open: LineHash | undefined;
  private longest = 0;
  private at = 0;

  /** `tail`: the log's last whole lines of one stream, oldest first, as the log holds them (masked). */
  constructor(tail: readonly string[]) {
    const n = Math.min(tail.length, ANCHOR_LINES);
    this.size = n;
    this.suffix1 = new Float64Array(n + 1);
    this.suffix2 = new Float64Array(n + 1);
    this.power1 = new Float64Array(n + 1);
    this.power2 = new Float64Array(n + 1);
    this.power1[0] = 1;
    this.power2[0] = 1;
    for (let k = 1; k <= n; k++) {
      const [f1, f2] = fingerprints(tail[tail.length - k] as string);
      const up1 = this.power1[k - 1] as number;
      const up2 = this.power2[k - 1] as number;
      this.suffix1[k] = (mulMod(f1, up1, P1) + (this.suffix1[k - 1] as number)) % P1;
      this.suffix2[k] = (mulMod(f2, up2, P2) + (this.suffix2[k - 1] as number)) % P2;
      this.power1[k] = mulMod(up1, B1, P1);
      this.power2[k] = mulMod(up2, B2, P2);
    }
    this.prefix1 = new Float64Array(n + 1);
    this.prefix2 = new Float64Array(n + 1);
  }

  /** A whole line of the copy, as the log would hold it. */
  line(text: string): void {
    const hash = this.open ?? new LineHash();
    this.open = undefined;
    hash.add(text);
    this.push(...hash.done());
  }

  /** A piece of a longer line of the copy, as the log would hold it; the line's last comes to `line`. */
  piece(text: string): void {
    this.open ??= new LineHash();
    this.open.add(text);
  }

  /** Where the log left off in what was read (a line read only in part does not count). */
  found(): AnchorFound {
    const enough = Math.min(this.size, ANCHOR_MIN_LINES);
    return { lines: this.count, through: this.size > 0 && this.longest >= enough ? this.at : undefined };
  }

  private push(f1: number, f2: number): void {
    const ring = this.size + 1;
    const before = this.count % ring;
    this.count++;
    const now = this.count % ring;
    this.prefix1[now] = (mulMod(this.prefix1[before] as number, B1, P1) + f1) % P1;
    this.prefix2[now] = (mulMod(this.prefix2[before] as number, B2, P2) + f2) % P2;
    if (this.size === 0 || f1 !== this.suffix1[1] || f2 !== this.suffix2[1]) return;
    // The copy's last k lines are the log's last k for every k up to some most: found by halving.
    let lo = 1;
    let hi = Math.min(this.size, this.count);
    while (lo < hi) {
      const k = Math.ceil((lo + hi) / 2);
      if (this.ends(k)) lo = k;
      else hi = k - 1;
    }
    // Ties keep the earliest: nothing after it is lost.
    if (lo > this.longest) {
      this.longest = lo;
      this.at = this.count;
    }
  }

  /** Whether the copy's last k lines are the log's last k. */
  private ends(k: number): boolean {
    const ring = this.size + 1;
    const now = this.count % ring;
    const from = (this.count - k) % ring;
    const h1 =
      (this.prefix1[now] as number) - mulMod(this.prefix1[from] as number, this.power1[k] as number, P1);
    const h2 =
      (this.prefix2[now] as number) - mulMod(this.prefix2[from] as number, this.power2[k] as number, P2);
    return (h1 + P1) % P1 === this.suffix1[k] && (h2 + P2) % P2 === this.suffix2[k];
  }
}

/** A line's fingerprint, taken piece by piece (the same however the line is cut). */
class LineHash {
  private a = 0x811c9dc5;
  private b = 0x2545f491;
  private length = 0;

  add(text: string): void {
    let { a, b } = this;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 15;
    }
    this.a = a;
    this.b = b;
    this.length += text.length;
  }

  /** The fingerprint, reduced by each modulus. */
  done(): [number, number] {
    const b = Math.imul(this.b ^ this.length, 0x5bd1e995);
    const key = (this.a >>> 0) * 0x200000 + ((b ^ (b >>> 13)) >>> 11);
    return [key % P1, key % P2];
  }
}

function fingerprints(text: string): [number, number] {
  const hash = new LineHash();
  hash.add(text);
  return hash.done();
}

/** a·b mod p for a, b < p < 2^26: the product stays below 2^52, exact in a double. */
function mulMod(a: number, b: number, p: number): number {
  return (a * b) % p;
}
