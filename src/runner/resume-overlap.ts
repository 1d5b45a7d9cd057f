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
 * go on, when as many lines as the log's recent ones came, or at `end` (a piece of a longer line, or the
 * stream's end). Found by fingerprint (a rolling hash of the lines' fingerprints), so each line costs the
 * same however long the run; which runs can still go on is followed while there are few of them (a log of
 * one line repeated has many: its lines are then held until it is decided by their number).
 */

/** Runs followed at most; beyond that only the line count decides. */
const MAX_RUNS = 64;
const P1 = 67_108_859;
const P2 = 67_108_837;
const B1 = 40_503;
const B2 = 52_711;

export class ResumeOverlap<T> {
  private readonly tail: readonly (string | undefined)[];
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
    const n = tail.length;
    this.suffix1 = new Float64Array(n + 1);
    this.suffix2 = new Float64Array(n + 1);
    let power1 = 1;
    let power2 = 1;
    for (let k = 1; k <= n; k++) {
      const line = tail[n - k];
      // A cut line: a fingerprint no stream line has (a stream line's is below 2^53, reduced).
      const [f1, f2] = line === undefined ? [P1 - 1, P2 - 1] : fingerprints(line);
      this.suffix1[k] = ((this.suffix1[k - 1] as number) + mulMod(f1, power1, P1)) % P1;
      this.suffix2[k] = ((this.suffix2[k - 1] as number) + mulMod(f2, power2, P2)) % P2;
      power1 = mulMod(power1, B1, P1);
      power2 = mulMod(power2, B2, P2);
    }
    this.decided = n === 0;
  }

  /** Whether lines are still held back (the overlap is not decided yet). */
  get holding(): boolean {
    return !this.decided;
  }

  /** How many of the log's lines were found at the stream's start (once decided). */
  get dropped(): number {
    return this.decided ? this.longest : 0;
  }

  /** A whole line of the stream, as the log would hold it; returns what to hand on now, in order. */
  line(text: string, item: T): T[] {
    if (this.decided) return [item];
    const n = this.held.length;
    this.held.push(item);
    const [f1, f2] = fingerprints(text);
    this.prefix1 = (mulMod(this.prefix1, B1, P1) + (f1 % P1)) % P1;
    this.prefix2 = (mulMod(this.prefix2, B2, P2) + (f2 % P2)) % P2;
    const count = n + 1;
    const size = this.tail.length;
    if (this.prefix1 === this.suffix1[count] && this.prefix2 === this.suffix2[count]) this.longest = count;
    if (n === 0) {
      const starts: number[] = [];
      for (let a = 0; a < size && starts.length <= MAX_RUNS; a++) if (this.tail[a] === text) starts.push(a);
      this.runs = starts.length > MAX_RUNS ? undefined : starts;
    } else if (this.runs !== undefined) {
      this.runs = this.runs.filter((a) => a + n < size && this.tail[a + n] === text);
    }
    // A run that reached the tail's end is complete (counted above); only the others can go on.
    const goingOn = this.runs?.some((a) => a + count < size) ?? true;
    if (count >= size || !goingOn) return this.end();
    return [];
  }

  /** Decides with what came so far: the held lines after the overlap, to hand on now. */
  end(): T[] {
    if (this.decided) return [];
    this.decided = true;
    this.runs = undefined;
    return this.held.splice(0).slice(this.longest);
  }
}

function fingerprints(text: string): [number, number] {
  const key = pieceKey(text, true);
  return [key % P1, key % P2];
}

/** a·b mod p for a, b < p < 2^26: the product stays below 2^52, exact in a double. */
function mulMod(a: number, b: number, p: number): number {
  return (a * b) % p;
}
