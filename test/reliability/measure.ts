/**
 * Measuring a running daemon from outside, as an operator would: its resident memory, and how long a
 * `status` request takes over its socket.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  return (await latenciesOf([socketPath], durationMs, everyMs))[0] as number[];
}

/**
 * `status` round trips to each socket in turn (the daemon's, a baseline's), a round after a pause of
 * everyMs, for durationMs: one list of latencies per socket, sampled in the same rounds.
 */
export async function latenciesOf(
  socketPaths: string[],
  durationMs: number,
  everyMs = 50,
): Promise<number[][]> {
  const out = socketPaths.map((): number[] => []);
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    for (const [i, path] of socketPaths.entries()) out[i]?.push(await statusOnce(path));
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

/**
 * Another Node process on the same machine that answers every line at once, as `status` is answered:
 * how fast "fast" can be under the machine's load of the moment. The daemon's `status` latency under
 * hostile output is judged against it, sampled in the same rounds, so that a machine that is slow for
 * everyone (a loaded CI host) is not taken for a starved daemon.
 */
export class ResponsivenessBaseline {
  private constructor(
    readonly socketPath: string,
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {}

  static async start(): Promise<ResponsivenessBaseline> {
    const dir = mkdtempSync(join(tmpdir(), 'agentd-baseline-'));
    const socketPath = join(dir, 'echo.sock');
    const child = spawn(
      process.execPath,
      [
        '-e',
        `require('node:net').createServer((s) => { s.on('data', () => s.end('{"type":"status"}\\n')); s.on('error', () => {}); }).listen(process.argv[1], () => process.stdout.write('ready\\n'));`,
        socketPath,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`baseline process exited (${code})`)));
      child.stdout?.once('data', () => resolve());
    });
    return new ResponsivenessBaseline(socketPath, child, dir);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The bound for the daemon's `status` p99 under load: 200 ms, or 4 times the baseline's p99 of the same
 * rounds when the machine is so loaded that a process doing nothing else answers that slowly.
 */
export function statusP99Bound(baselineP99: number): number {
  return Math.max(200, 4 * baselineP99);
}
