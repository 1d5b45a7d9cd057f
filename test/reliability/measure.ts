/**
 * Measuring a running daemon from outside, as an operator would: its resident memory, and how long a
 * `status` request takes over its socket.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';

/** The resident memory of a process, in kB (NaN once it is gone). */
export function daemonRssKb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(match?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

/** Samples a process's RSS every everyMs and keeps the highest. */
export class RssSampler {
  maxKb = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(
    private readonly pid: number,
    everyMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }
  sample(): void {
    const kb = daemonRssKb(this.pid);
    if (kb > this.maxKb) this.maxKb = kb;
  }
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.maxKb;
  }
}

/** One `status` request on a new connection; resolves with its round trip in ms. */
export function statusOnce(socketPath: string, timeoutMs = 60_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect(socketPath);
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`status took longer than ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      got += chunk.toString('utf8');
      if (!got.includes('\n')) return;
      clearTimeout(timer);
      socket.destroy();
      const reply = JSON.parse(got.slice(0, got.indexOf('\n'))) as { type?: string };
      if (reply.type !== 'status') reject(new Error(`status answered ${got.slice(0, 200)}`));
      else resolve(performance.now() - started);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(`${JSON.stringify({ v: 1, type: 'status' })}\n`);
  });
}

/** `status` round trips, one after another with a pause of everyMs, for durationMs. */
export async function statusLatencies(
  socketPath: string,
  durationMs: number,
  everyMs = 50,
): Promise<number[]> {
  const out: number[] = [];
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    out.push(await statusOnce(socketPath));
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return out;
}

/** The p-th percentile (0..100) of samples, nearest rank. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}
