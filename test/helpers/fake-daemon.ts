import { rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, track } from './resources.js';

/** A request line as a fake daemon read it, parsed. */
export type Request = Record<string, unknown> & { type: string; id?: string };

/**
 * What a scripted daemon does with each request: writes to (or ends, or destroys) the connection it came
 * on. `index` is the request's place on its connection (0 for the first), for a daemon that answers some
 * and then goes away.
 */
export type Script = (request: Request, socket: Socket, index: number) => void;

export interface ScriptedDaemon {
  /** Its socket's path. */
  readonly path: string;
  /** Every request line read, parsed, over all connections, in order. */
  readonly requests: Request[];
  /** Its side of every connection, in order of arrival. */
  readonly connections: Socket[];
  /** The next connection next() has not given yet, once it arrives. */
  next(): Promise<Socket>;
  /** Ends its connections, stops listening and removes the socket: the daemon is gone. */
  close(): Promise<void>;
}

export interface ScriptOptions {
  /** Where it listens; a new temp dir's agentd.sock by default. */
  path?: string;
  /** Reads nothing on a connection until the test resumes it (to reset one with its request unread). */
  pauseOnConnect?: boolean;
  /**
   * Each connection as it arrives, with its number (1 for the first), before anything is read: a daemon
   * that closes every one, say.
   */
  onConnection?: (socket: Socket, number: number) => void;
}

const open: ScriptedDaemon[] = [];

/**
 * A daemon on a Unix socket that reads newline-ended JSON requests and hands each to `script`. Closed by
 * closeFakeDaemons, and at the test file's cleanup in any case.
 */
export async function scriptedDaemon(script: Script, options: ScriptOptions = {}): Promise<ScriptedDaemon> {
  const path = options.path ?? join(makeTempDir('agentd-unit-fake-daemon-'), 'agentd.sock');
  const requests: Request[] = [];
  const connections: Socket[] = [];
  const live = new Set<Socket>();
  const waiters: ((socket: Socket) => void)[] = [];
  let given = 0;
  const server = createServer({ pauseOnConnect: options.pauseOnConnect === true }, (socket) => {
    connections.push(socket);
    live.add(socket);
    socket.on('close', () => live.delete(socket));
    socket.on('error', () => {});
    waiters.shift()?.(socket);
    options.onConnection?.(socket, connections.length);
    let buffered = '';
    let index = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      // A script that closed the connection is answered no further lines.
      for (let nl = buffered.indexOf('\n'); nl !== -1 && !socket.destroyed; nl = buffered.indexOf('\n')) {
        const request = JSON.parse(buffered.slice(0, nl)) as Request;
        buffered = buffered.slice(nl + 1);
        requests.push(request);
        script(request, socket, index++);
      }
    });
  });
  let closing: Promise<void> | undefined;
  const daemon: ScriptedDaemon = {
    path,
    requests,
    connections,
    next: () => {
      const ready = connections[given++];
      return ready ? Promise.resolve(ready) : new Promise((resolve) => waiters.push(resolve));
    },
    close: () => {
      // A connection a client left open (a daemon that hangs) must not hold the server.
      closing ??= new Promise<void>((resolve) => {
        for (const socket of live) socket.destroy();
        server.close(() => resolve());
        rmSync(path, { force: true });
      });
      return closing;
    },
  };
  open.push(daemon);
  track.onCleanup(() => daemon.close());
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return daemon;
}

/** Closes every fake daemon this test file opened so far: for files that want them gone after each test. */
export async function closeFakeDaemons(): Promise<void> {
  for (const daemon of open.splice(0)) await daemon.close();
}

/** A reply as the daemon writes it: `{"v":2,...}` and a newline. */
export function replyLine(reply: object): string {
  return `${JSON.stringify({ v: 2, ...reply })}\n`;
}

/** What a fake daemon answers a request with: replies (each sent as JSON, the request's id added), raw text, or nothing. */
export type Answer = object | readonly object[] | string | undefined;

/**
 * A daemon on a Unix socket that answers every request line with `reply`: an object, or a function of the
 * request giving its answer: the replies to send, raw line(s) (for JSON that JSON.stringify cannot make,
 * such as `1e999`, or for what is no JSON at all), or undefined to answer nothing. With `delayMs`, each
 * answer is written that late. Returns the socket's path.
 */
export async function fakeDaemon(
  reply: object | ((type: string, id: string | undefined, request: Request) => Answer),
  options: { delayMs?: number } = {},
): Promise<string> {
  const daemon = await scriptedDaemon((request, socket) => {
    const { id, type } = request;
    const answer = typeof reply === 'function' ? reply(type, id, request) : reply;
    if (answer === undefined || (Array.isArray(answer) && answer.length === 0)) return;
    const withId = (one: object) => JSON.stringify({ ...one, ...(id === undefined ? {} : { id }) });
    const line =
      typeof answer === 'string'
        ? answer
        : Array.isArray(answer)
          ? answer.map(withId).join('\n')
          : withId(answer);
    if (options.delayMs === undefined) socket.write(`${line}\n`);
    else setTimeout(() => socket.write(`${line}\n`), options.delayMs);
  });
  return daemon.path;
}
