import { type ChildProcess, spawn } from 'node:child_process';

/**
 * One short podman command run to its end, with what it printed held up to a bound. Not execa: for
 * the three short calls of every session (`secret create`, `secret rm`, `rm --force`) execa cost about
 * 3.5 ms more of the daemon's CPU a call than this (copying the environment, its stream plumbing; 4.9
 * against 1.6 ms a call of `/bin/true` from a process of 113 MB, bench/findings.md), on the same spawn.
 */
export interface ProcessOptions {
  cwd?: string;
  /** Written to stdin, then closed; no stdin at all (/dev/null) when absent. */
  input?: string | Uint8Array;
  /** Added to the daemon's environment. */
  env?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
  maxStdoutBytes: number;
  maxStderrBytes: number;
  /** After the SIGTERM of a deadline, a cancel or a bound, SIGKILL this much later. */
  forceKillAfterMs: number;
}

export interface ProcessEnd {
  /** Decoded as UTF-8, one final newline removed. */
  stdout: string;
  stderr: string;
  /** Undefined when a signal ended it or it never started. */
  exitCode?: number;
  signal?: NodeJS.Signals;
  /** Why it could not be started (ENOENT...). */
  code?: string;
  failed: boolean;
  timedOut: boolean;
  isCanceled: boolean;
  /** It printed more than a bound: killed, and what it printed cut at the bound. */
  isMaxBuffer: boolean;
}

/** What a failed process was, for an error's cause: no output (it may be large), no input. */
export function processEndCause(end: ProcessEnd): Error {
  const how =
    end.code !== undefined
      ? `could not be started (${end.code})`
      : end.signal !== undefined
        ? `ended by ${end.signal}`
        : `exited with code ${end.exitCode}`;
  const why = end.timedOut ? ', past its deadline' : end.isMaxBuffer ? ', printing more than its bound' : '';
  return new Error(`the process ${how}${why}`);
}

function stripFinalNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  return text.endsWith('\n') ? text.slice(0, -1) : text;
}

/**
 * Runs `file` in a process group of its own (detached). A deadline, a cancel or a bound sends it
 * SIGTERM, SIGKILL `forceKillAfterMs` later, and once it has exited its whole group SIGKILL: what it
 * started (the bridging shell's cat and podman, a helper of podman's) would otherwise live on holding
 * its output pipes. Never rejects.
 */
export function runProcess(
  file: string,
  args: readonly string[],
  options: ProcessOptions,
): Promise<ProcessEnd> {
  return new Promise((resolve) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let timedOut = false;
    let isCanceled = false;
    let isMaxBuffer = false;
    let killed = false;
    let spawnError: string | undefined;
    let forceKill: NodeJS.Timeout | undefined;
    const { signal } = options;
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
        ...(options.env === undefined ? {} : { env: { ...process.env, ...options.env } }),
        detached: true,
        stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'ESPAWN';
      resolve({
        stdout: '',
        stderr: '',
        code,
        failed: true,
        timedOut: false,
        isCanceled: false,
        isMaxBuffer: false,
      });
      return;
    }
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is already gone.
      }
    };
    const kill = () => {
      if (killed) return;
      killed = true;
      // Exited, but something it started still holds its output open: that group goes now.
      if (child.exitCode !== null || child.signalCode !== null) return killGroup();
      child.kill('SIGTERM');
      forceKill = setTimeout(() => child.kill('SIGKILL'), options.forceKillAfterMs);
      forceKill.unref();
    };
    const take = (into: Buffer[], chunk: Buffer, held: number, max: number): number => {
      if (isMaxBuffer) return held;
      if (held + chunk.length > max) {
        into.push(chunk.subarray(0, max - held));
        isMaxBuffer = true;
        kill();
        return max;
      }
      into.push(chunk);
      return held + chunk.length;
    };
    child.stdout?.on('data', (chunk: Buffer) => {
      outBytes = take(stdout, chunk, outBytes, options.maxStdoutBytes);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      errBytes = take(stderr, chunk, errBytes, options.maxStderrBytes);
    });
    const deadline = setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs);
    const cancel = () => {
      isCanceled = true;
      kill();
    };
    if (signal?.aborted) cancel();
    else signal?.addEventListener('abort', cancel, { once: true });
    child.once('error', (error: NodeJS.ErrnoException) => {
      // Only a spawn that failed has no pid; a later error (a kill that found it gone) changes nothing.
      if (child.pid === undefined) spawnError = error.code ?? 'ESPAWN';
    });
    child.once('exit', () => {
      if (killed) killGroup();
    });
    child.once('close', (code: number | null, endSignal: NodeJS.Signals | null) => {
      clearTimeout(deadline);
      clearTimeout(forceKill);
      signal?.removeEventListener('abort', cancel);
      const end: ProcessEnd = {
        stdout: stripFinalNewline(Buffer.concat(stdout).toString('utf8')),
        stderr: stripFinalNewline(Buffer.concat(stderr).toString('utf8')),
        ...(code === null || spawnError !== undefined ? {} : { exitCode: code }),
        ...(endSignal === null ? {} : { signal: endSignal }),
        ...(spawnError === undefined ? {} : { code: spawnError }),
        failed: spawnError !== undefined || code !== 0 || timedOut || isCanceled || isMaxBuffer,
        timedOut,
        isCanceled,
        isMaxBuffer,
      };
      resolve(end);
    });
    if (options.input !== undefined && child.stdin !== null) {
      // A podman that exits before reading it all (a refused name) closes the pipe: not this call's error.
      child.stdin.on('error', () => {});
      child.stdin.end(options.input);
    }
  });
}
