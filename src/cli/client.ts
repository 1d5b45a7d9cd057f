import { connect, type Socket } from 'node:net';
import { untrustedSocketProblem } from '../adapters/ownership.js';
import { PROTOCOL_VERSION } from '../constants.js';
import type { RequestBody } from '../protocol/messages.js';
import type { Reply as DaemonReply } from '../protocol/replies.js';
import { unreachableMessage } from './unreachable.js';

/** What the client makes of a line that is not a reply, or of no answer at all. */
export type ClientSideError = { type: 'error'; code: 'bad_reply' | 'no_answer'; message: string };

/** A reply from the daemon (one JSON object per line), or what the client makes of a line that is not one. */
export type Reply = DaemonReply | ClientSideError;

/** An error the client made of what it got (a line that is no reply, or no answer), not the daemon's own. */
export function isClientSideError(reply: Reply): reply is ClientSideError {
  return reply.type === 'error' && (reply.code === 'bad_reply' || reply.code === 'no_answer');
}

/**
 * How long a one-shot request waits for its answer: a daemon that took the connection and never answers
 * (hung, or something else on its socket) must not hold a script for ever; a reload's checks take seconds.
 */
export const ANSWER_TIMEOUT_MS = 120_000;

export class DaemonUnreachable extends Error {
  constructor(
    readonly socketPath: string,
    readonly reason: string,
    kind: 'absent' | 'untrusted' = 'absent',
  ) {
    super(unreachableMessage(socketPath, reason, kind));
    this.name = 'DaemonUnreachable';
  }
}

/** A connection to the daemon's Unix socket. */
export class DaemonClient {
  private readonly queue: Reply[] = [];
  private waiting: ((reply: Reply | undefined) => void) | undefined;
  private ended = false;

  private constructor(private readonly socket: Socket) {
    let partial: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      let at = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, at)) {
        const piece = chunk.subarray(at, nl);
        at = nl + 1;
        const line =
          partial.length === 0 ? piece.toString('utf8') : Buffer.concat([...partial, piece]).toString('utf8');
        partial = [];
        if (line.trim() !== '') this.push(parseReply(line));
      }
      if (at < chunk.length) partial.push(chunk.subarray(at));
    });
    // A last line without its newline is a message cut short by a lost connection: not a reply.
    socket.on('close', () => {
      this.ended = true;
      this.waiting?.(undefined);
      this.waiting = undefined;
    });
    socket.on('error', () => socket.destroy());
  }

  static async connect(socketPath: string, timeoutMs = 5000): Promise<DaemonClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await DaemonClient.connectOnce(socketPath, Math.max(1, deadline - Date.now()));
      } catch (error) {
        // A full listen queue (a burst of clients) is worth waiting out; anything else is an answer.
        if (!(error instanceof DaemonUnreachable) || error.reason !== 'EAGAIN' || Date.now() >= deadline)
          throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  private static connectOnce(socketPath: string, timeoutMs: number): Promise<DaemonClient> {
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
    return new Promise((resolve) => {
      this.waiting = resolve;
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
      message: `the daemon took the connection but did not answer within ${Math.round(timeoutMs / 1000)} s; look at its log (journalctl -u agentd)`,
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
    // The daemon builds its replies through the protocol's types; the client trusts its own daemon
    // and does not load zod to check them again (it costs 40 ms a call), only that it is a message.
    const reply: unknown = JSON.parse(line);
    if (typeof reply === 'object' && reply !== null && typeof (reply as { type?: unknown }).type === 'string')
      return reply as Reply;
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
