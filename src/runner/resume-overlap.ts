import { pieceKey } from './followed-pieces.js';

/**
 * A follow of a container's output that resumes by time (the session log cannot say how many lines it
 * holds) starts a margin before the log's last line: Podman dates a line when it takes it from the
 * container, the daemon when it reads it, later; lines Podman dated just before the log's last one but
 * the daemon had not read yet would be skipped from that time on. The stream then begins with lines the
 * log holds: the longest run of the log's last lines (of one stream) that the stream begins with is
 * dropped, the rest handed on.
 *
 * Lines are held until that is decided: when no run of the log's lines the stream has matched so far can
 * go on, when as many lines as the log's recent ones came, or at `end` (a piece of a longer line, the end
 * of what is replayed, or the caller's deadline), where lines that are a run of the log's lines, complete
 * or not, are dropped too: the log holds them. Found by fingerprint (a rolling hash of the lines'
 * fingerprints), so each line costs the same however long the run; which runs can still go on is followed
 * while there are few of them (a log of one line repeated has many: its lines are then held until it is
 * decided by their number, or at `end`).
 */

/** Runs followed at most; beyond that only the line count decides. */
const MAX_RUNS = 64;
const P1 = 67_108_859;
const P2 = 67_108_837;
const B1 = 40_503;
const B2 = 52_711;

export class ResumeOverlap<T> {
  private readonly tail: readonly (string | undefined)[];
  /** The tail's lines: a line not among them is in no run, whatever is followed. */
  private readonly known: Set<string>;
  /** Each tail line's fingerprints (-1 for a cut line: no stream line has it). */
  private readonly keys1: Float64Array;
  private readonly keys2: Float64Array;
  /** Fingerprint of the log's last k lines, per k (index k), for both moduli. */
  private readonly suffix1: Float64Array;
  private readonly suffix2: Float64Array;
  private prefix1 = 0;
  private prefix2 = 0;
  private readonly held: T[] = [];
  /** Where in the tail each run the stream matches so far begins; undefined when there are too many. */
  private runs: number[] | undefined;
  /** The longest run of the log's last lines the stream begins with, so far. */
  private longest = 0;
  private decided: boolean;

  /**
   * `tail`: the log's recent whole lines of one stream, oldest first, as the log holds them (masked);
   * undefined for one that never matches (a line the log holds cut in parts).
   */
  constructor(tail: readonly (string | undefined)[]) {
    this.tail = tail;
    this.known = new Set(tail.filter((line): line is string => line !== undefined));
    const n = tail.length;
    this.keys1 = new Float64Array(n);
    this.keys2 = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const line = tail[i];
      const [f1, f2] = line === undefined ? [-1, -1] : fingerprints(line);
      this.keys1[i] = f1;
      this.keys2[i] = f2;
    }
    this.suffix1 = new Float64Array(n + 1);
    this.suffix2 = new Float64Array(n + 1);
    let power1 = 1;
    let power2 = 1;
    for (let k = 1; k <= n; k++) {
      this.suffix1[k] = ((this.suffix1[k - 1] as number) + mulMod(this.key1(n - k), power1, P1)) % P1;
      this.suffix2[k] = ((this.suffix2[k - 1] as number) + mulMod(this.key2(n - k), power2, P2)) % P2;
      power1 = mulMod(power1, B1, P1);
      power2 = mulMod(power2, B2, P2);
    }
    this.decided = n === 0;
  }

  /** Whether lines are still held back (the overlap is not decided yet). */
  get holding(): boolean {
    return !this.decided;
  }

  /** How many of the stream's first lines were found in the log and dropped (once decided). */
  get dropped(): number {
    return this.decided ? this.longest : 0;
  }

  /** A whole line of the stream, as the log would hold it; returns what to hand on now, in order. */
  line(text: string, item: T): T[] {
    if (this.decided) return [item];
    const n = this.held.length;
    this.held.push(item);
    const [f1, f2] = fingerprints(text);
    this.prefix1 = (mulMod(this.prefix1, B1, P1) + f1) % P1;
    this.prefix2 = (mulMod(this.prefix2, B2, P2) + f2) % P2;
    const count = n + 1;
    const size = this.tail.length;
    if (n === 0) {
      const starts: number[] = [];
      for (let a = 0; a < size && starts.length <= MAX_RUNS; a++) if (this.tail[a] === text) starts.push(a);
      this.runs = starts.length > MAX_RUNS ? undefined : starts;
    } else if (this.runs !== undefined) {
      this.runs = this.runs.filter((a) => a + n < size && this.tail[a + n] === text);
    }
    // Followed runs say exactly whether one reached the tail's end; without them, the fingerprints do.
    const complete =
      this.runs !== undefined
        ? this.runs.some((a) => a + count === size)
        : this.prefix1 === this.suffix1[count] && this.prefix2 === this.suffix2[count];
    if (complete) this.longest = count;
    const goingOn = this.known.has(text) && (this.runs?.some((a) => a + count < size) ?? true);
    if (count >= size || !goingOn) return this.end();
    return [];
  }

  /**
   * Decides with what came so far: the held lines after the overlap, to hand on now. Held lines that
   * are all a run of the log's lines (one the stream was cut inside) are the log's too.
   */
  end(): T[] {
    if (this.decided) return [];
    this.decided = true;
    if (this.held.length > this.longest && this.heldInTail()) this.longest = this.held.length;
    this.runs = undefined;
    return this.held.splice(0).slice(this.longest);
  }

  /** Whether the held lines are, in order, lines of the tail one after another. */
  private heldInTail(): boolean {
    const n = this.held.length;
    if (this.runs !== undefined) return this.runs.length > 0;
    // Every window of n lines, its fingerprints rolled along the tail.
    const size = this.tail.length;
    if (n > size) return false;
    let power1 = 1;
    let power2 = 1;
    for (let i = 1; i < n; i++) {
      power1 = mulMod(power1, B1, P1);
      power2 = mulMod(power2, B2, P2);
    }
    let w1 = 0;
    let w2 = 0;
    for (let i = 0; i < size; i++) {
      if (i >= n) {
        w1 = (w1 - mulMod(this.key1(i - n), power1, P1) + P1) % P1;
        w2 = (w2 - mulMod(this.key2(i - n), power2, P2) + P2) % P2;
      }
      w1 = (mulMod(w1, B1, P1) + this.key1(i)) % P1;
      w2 = (mulMod(w2, B2, P2) + this.key2(i)) % P2;
      if (i >= n - 1 && w1 === this.prefix1 && w2 === this.prefix2) return true;
    }
    return false;
  }

  /**
   * A tail line's fingerprint in the rolling hashes; a cut line counts as P - 1, which a stream line's
   * can be too (1 in 2^52 for both: runs followed line by line do not rely on it).
   */
  private key1(i: number): number {
    const key = this.keys1[i] as number;
    return key < 0 ? P1 - 1 : key;
  }

  private key2(i: number): number {
    const key = this.keys2[i] as number;
    return key < 0 ? P2 - 1 : key;
  }
}

/** A line's fingerprints, reduced by each modulus. */
function fingerprints(text: string): [number, number] {
  const key = pieceKey(text, true);
  return [key % P1, key % P2];
}

/** a·b mod p for a, b < p < 2^26: the product stays below 2^52, exact in a double. */
function mulMod(a: number, b: number, p: number): number {
  return (a * b) % p;
}
