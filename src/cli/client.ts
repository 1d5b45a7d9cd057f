import { connect, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { untrustedSocketProblem } from '../adapters/ownership-checks.js';
import { PROTOCOL_VERSION } from '../constants.js';
import { durationSetting } from '../duration.js';
import { HEARTBEAT_MS, HEARTBEATS_MISSED, MAX_REPLY_LINE_BYTES } from '../protocol/limits.js';
import type { RequestBody } from '../protocol/messages.js';
import { type ClientSideError, checkReply, type Reply } from './reply-check.js';
import { type UnreachableKind, unreachableMessage } from './unreachable.js';

// Defined beside the reply check, which makes them (client.ts imports it: no cycle back).
export type { ClientSideError, Reply } from './reply-check.js';

/** An error the client made of what it got (a line that is no reply, or no answer), not the daemon's own. */
export function isClientSideError(reply: Reply): reply is ClientSideError {
  return reply.type === 'error' && (reply.code === 'bad_reply' || reply.code === 'no_answer');
}

/**
 * The steady clock in milliseconds, as performance.now() is: the first use of `performance` loads
 * perf_hooks and nine modules with it, about 2 ms of every `trigger` and `status` that never
 * needed them (bench/findings.md, "The CLI's start-up").
 */
export function steadyMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/**
 * How long a one-shot request waits for its answer: a daemon that took the connection and never answers
 * (hung, or something else on its socket) must not hold a script for ever; a reload's checks take seconds.
 */
export const ANSWER_TIMEOUT_MS = 120_000;

/** How long a stream that asked for heartbeats may hear nothing before the daemon is taken for hung. */
export const SILENCE_MS = HEARTBEAT_MS * HEARTBEATS_MISSED;

/** What a client says of a daemon that sent nothing for `ms`, not even a heartbeat; `then` says what now. */
export function silenceMessage(ms: number, then?: string): string {
  return (
    `the daemon sent nothing for ${Math.round(ms / 1000)} s, not even the heartbeat it sends every ${HEARTBEAT_MS / 1000} s: ` +
    `it seems hung (stopped, or stuck); look at its log (journalctl -u agentd)${then === undefined ? '' : `; ${then}`}`
  );
}

/**
 * A daemon older than heartbeats refuses the field (`bad_request`, problem path `heartbeat`): the request
 * changed nothing, and goes again without it.
 */
export function refusesHeartbeat(reply: Reply | undefined): boolean {
  return (
    reply?.type === 'error' &&
    reply.code === 'bad_request' &&
    'problems' in reply &&
    reply.problems.some((problem) => problem.path === 'heartbeat')
  );
}

/** Longest Unix socket path (sun_path is 108 bytes with its NUL), as daemon.socket has it. */
export const MAX_SOCKET_PATH_BYTES = 107;

export class DaemonUnreachable extends Error {
  constructor(
    readonly socketPath: string,
    readonly reason: string,
    readonly kind: UnreachableKind = 'absent',
  ) {
    super(unreachableMessage(socketPath, reason, kind));
    this.name = 'DaemonUnreachable';
  }
}

/**
 * Streams that failed or closed (the reader went away): reading is never held for them. Seen by their
 * events: process.stdout after EPIPE is not `destroyed` and still says it needs a drain, which never comes.
 */
const endedStreams = new WeakSet<Writable>();
const watchedStreams = new WeakSet<Writable>();

/** Notes when `stream` fails or closes; once per stream, however many connections write for it. */
function watchEnd(stream: Writable): void {
  if (watchedStreams.has(stream)) return;
  watchedStreams.add(stream);
  const ended = () => endedStreams.add(stream);
  stream.on('error', ended);
  stream.on('close', ended);
}

/** A connection to the daemon's Unix socket. */
export class DaemonClient {
  private readonly queue: Reply[] = [];
  private waiting: ((reply: Reply | undefined) => void) | undefined;
  private ended = false;
  /** Where the replies' contents are written: while one of them is full, the socket is not read. */
  private pacedBy: readonly Writable[] = [];
  /** Reading is paused until `heldBy` drains. */
  private heldBy: Writable | undefined;
  /** A daemon that sends nothing this long is taken for hung (see expectWithin). */
  private silence: { ms: number; message: () => string; timer?: NodeJS.Timeout | undefined } | undefined;

  private constructor(private readonly socket: Socket) {
    let partial: Buffer[] = [];
    let partialBytes = 0;
    socket.on('data', (chunk: Buffer) => {
      // Any byte says the daemon is alive.
      this.silence?.timer?.refresh();
      let at = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, at)) {
        const piece = chunk.subarray(at, nl);
        at = nl + 1;
        if (partialBytes + piece.length > MAX_REPLY_LINE_BYTES) {
          this.failLine();
          return;
        }
        const line =
          partial.length === 0 ? piece.toString('utf8') : Buffer.concat([...partial, piece]).toString('utf8');
        partial = [];
        partialBytes = 0;
        if (line.trim() !== '') this.push(parseReply(line));
      }
      if (at < chunk.length) {
        // Something that sends bytes without a newline must not grow the client without end.
        if (partialBytes + chunk.length - at > MAX_REPLY_LINE_BYTES) {
          this.failLine();
          return;
        }
        partial.push(chunk.subarray(at));
        partialBytes += chunk.length - at;
      }
      // Output written for the replies before these may have filled a stream: read no further for now.
      this.holdWhileFull();
    });
    // A last line without its newline is a message cut short by a lost connection: not a reply.
    socket.on('close', () => {
      this.ended = true;
      this.stopSilence();
      this.release();
      this.waiting?.(undefined);
      this.waiting = undefined;
    });
    socket.on('error', () => socket.destroy());
  }

  static async connect(socketPath: string, timeoutMs = 5000): Promise<DaemonClient> {
    // By the steady clock, as every client timer: a wall clock set back would stretch the wait.
    const deadline = steadyMs() + timeoutMs;
    for (;;) {
      try {
        return await DaemonClient.connectOnce(socketPath, Math.max(1, deadline - steadyMs()));
      } catch (error) {
        // A full listen queue (a burst of clients) is worth waiting out; anything else is an answer.
        if (!(error instanceof DaemonUnreachable) || error.reason !== 'EAGAIN' || steadyMs() >= deadline)
          throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  private static connectOnce(socketPath: string, timeoutMs: number): Promise<DaemonClient> {
    // A longer path is cut to its first 108 bytes by connect(): the request would go to the socket there
    // (someone else's, perhaps), not to the path whose owner is checked below.
    const bytes = Buffer.byteLength(socketPath);
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      return Promise.reject(new DaemonUnreachable(socketPath, `its path is ${bytes} bytes`, 'too_long'));
    }
    // Checked before connecting, so nothing (not even a hello) reaches a socket someone else planted.
    const untrusted = untrustedSocketProblem(socketPath);
    if (untrusted) {
      return Promise.reject(new DaemonUnreachable(socketPath, untrusted, 'untrusted'));
    }
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new DaemonUnreachable(socketPath, `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new DaemonClient(socket));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new DaemonUnreachable(socketPath, error.code ?? error.message));
      });
    });
  }

  send(message: RequestBody): void {
    this.socket.write(`${JSON.stringify({ v: PROTOCOL_VERSION, ...message })}\n`);
  }

  /** The next reply, or undefined when the daemon closed the connection. */
  next(): Promise<Reply | undefined> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended) return Promise.resolve(undefined);
    this.holdWhileFull();
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  /**
   * Paces the reading by where the replies' contents go: once one of `streams` is full (its write returned
   * false: a slow terminal, a pipe nobody reads), the socket is not read until it drains. The daemon then
   * sees this client lag, skips output for it and, after 30 s without reading, closes the connection;
   * without the pause the client read on and held every reply in its memory.
   */
  paceBy(streams: readonly Writable[]): void {
    for (const stream of streams) watchEnd(stream);
    this.pacedBy = streams;
  }

  /**
   * After `ms` without a byte from the daemon (while the client reads), the next reply is a `no_answer`
   * error with `message()`, and the connection is closed: for streams whose request asked for heartbeats,
   * where silence means a hung daemon, not a quiet session. Undefined turns it off.
   */
  expectWithin(ms: number | undefined, message: () => string = () => silenceMessage(ms ?? 0)): void {
    this.stopSilence();
    this.silence = ms === undefined ? undefined : { ms, message };
    if (this.heldBy === undefined) this.startSilence();
  }

  private startSilence(): void {
    const silence = this.silence;
    if (!silence || this.ended) return;
    this.stopSilence();
    silence.timer = setTimeout(() => {
      this.fail({ type: 'error', code: 'no_answer', message: silence.message() });
    }, silence.ms);
    // The socket keeps the process alive while it is open; the timer alone must not.
    silence.timer.unref();
  }

  private stopSilence(): void {
    if (this.silence === undefined) return;
    clearTimeout(this.silence.timer);
    // Not kept: refresh() would bring a cleared timer back.
    this.silence.timer = undefined;
  }

  /** Pauses reading while a stream the replies go to is full (see paceBy). */
  private holdWhileFull(): void {
    if (this.heldBy !== undefined || this.ended) return;
    const full = this.pacedBy.find(
      (stream) => stream.writableNeedDrain && !stream.destroyed && !endedStreams.has(stream),
    );
    if (full === undefined) return;
    this.heldBy = full;
    this.socket.pause();
    // Not reading is not the daemon's silence.
    this.stopSilence();
    full.on('drain', this.onReleased);
    full.on('close', this.onReleased);
    full.on('error', this.onReleased);
  }

  private readonly onReleased = () => {
    this.release();
    if (this.ended) return;
    this.holdWhileFull();
    if (this.heldBy !== undefined) return;
    this.socket.resume();
    this.startSilence();
  };

  private release(): void {
    const held = this.heldBy;
    if (held === undefined) return;
    this.heldBy = undefined;
    held.off('drain', this.onReleased);
    held.off('close', this.onReleased);
    held.off('error', this.onReleased);
  }

  /** What came is no reply of agentd's (or nothing came): the caller gets `reply`, then the end. */
  private fail(reply: ClientSideError): void {
    if (this.ended) return;
    this.push(reply);
    this.ended = true;
    this.socket.destroy();
  }

  private failLine(): void {
    this.fail({
      type: 'error',
      code: 'bad_reply',
      message: `the daemon sent a line longer than ${MAX_REPLY_LINE_BYTES / (1024 * 1024)} MiB; no reply of agentd's is that long (is something else listening on the socket?)`,
    });
  }

  /** The next reply, undefined when the daemon closed the connection, 'timeout' after timeoutMs. */
  async nextWithin(timeoutMs: number): Promise<Reply | undefined | 'timeout'> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const reply = await Promise.race([this.next(), timeout]);
      if (reply === 'timeout') this.waiting = undefined;
      return reply;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends one request and waits for its single reply (a `no_answer` error after timeoutMs). */
  async request(message: RequestBody, timeoutMs = ANSWER_TIMEOUT_MS): Promise<Reply | undefined> {
    this.send(message);
    return this.answer(timeoutMs);
  }

  /**
   * The next reply; after timeoutMs without one, a `no_answer` error, and the connection is closed: a
   * reply that came later would be taken for the answer to the next request.
   */
  async answer(timeoutMs = ANSWER_TIMEOUT_MS): Promise<Reply | undefined> {
    const reply = await this.nextWithin(timeoutMs);
    if (reply !== 'timeout') return reply;
    this.close();
    this.ended = true;
    return {
      type: 'error',
      code: 'no_answer',
      message: `the daemon took the connection but did not answer within ${durationSetting(timeoutMs)}; look at its log (journalctl -u agentd)`,
    };
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }

  private push(reply: Reply): void {
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve(reply);
    } else {
      this.queue.push(reply);
    }
  }
}

function parseReply(line: string): Reply {
  try {
    // Checked against the reply's table of fields (reply-check.ts), not with zod (it costs 40 ms a
    // call): a reply of the right type without its fields is a bad reply, not one to print.
    const reply: unknown = JSON.parse(line);
    if (typeof reply === 'object' && reply !== null && typeof (reply as { type?: unknown }).type === 'string')
      return checkReply(reply as { type: string }) ?? (reply as Reply);
    return {
      type: 'error',
      code: 'bad_reply',
      message: `the daemon sent a line that is not a message: ${line.slice(0, 200)}`,
    };
  } catch {
    return {
      type: 'error',
      code: 'bad_reply',
      message: `the daemon sent a line that is not JSON: ${line.slice(0, 200)}`,
    };
  }
}
