import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { ErrorBody } from './schemas.js';

export interface ConnectionLimits {
  /** Connections open at once. */
  readonly max: number;
  /** Of those, from one source (connectionSource); a local socket's clients have no source. */
  readonly perSource: number;
  /** Requests of one connection handed to the app and not answered yet (pipelined, or answers unread). */
  readonly maxUnanswered: number;
  /** How long an answer may wait with none of it taken by its client before the connection is closed. */
  readonly stallMs: number;
  /**
   * At a limit with no idle connection, one whose answer has not moved for this long gives its slot up
   * too: a client that makes answers and reads none (long lists, many 404s) must not hold the slots
   * until stallMs.
   */
  readonly stuckMs: number;
}

/** One accepted connection. */
interface Connection {
  readonly raw: Socket;
  readonly source: string | undefined;
  /** Requests handed to the app whose answers are not finished. */
  unanswered: number;
  /** Where its answers are written: the TLS socket over `raw`, or `raw` itself (known from its first request). */
  stream: Socket;
  /** The stream's queue as last swept, and since when it has not moved. */
  queued: number;
  written: number;
  inKernelQueue: number;
  stuckSince: number | undefined;
}

/** How often answers are checked for clients that stopped taking them. */
const SWEEP_MS = 2000;

/**
 * The HTTP API's connections: how many are open (in all and per source), what each owes its client,
 * and which give their slot up. At a limit, the oldest connection with nothing owed (a client that sent
 * nothing yet, or is between requests) is closed to make room: clients that only open connections, with
 * or without a token, cannot lock others (the operator's `curl`, a health probe) out; a new connection
 * is refused only when every connection of its source (or every one) is being answered. A connection
 * whose answer its client does not take for `stallMs` is closed (Node has no timeout for it: the answer
 * would hold its slot and memory for ever).
 */
export class Connections {
  /** In the order they were accepted: the first idle one is the oldest. */
  private readonly open = new Map<Socket, Connection>();
  private readonly bySource = new Map<string, number>();
  private readonly byStream = new WeakMap<Socket, Connection>();
  private sweeper: NodeJS.Timeout | undefined;
  /** Told of each request answered 503 `busy` here, which the app never sees (to count it). */
  private refused: ((method: string) => void) | undefined;

  constructor(
    private readonly limits: ConnectionLimits,
    private readonly own: ReadonlySet<string> = ownAddresses(),
    /**
     * Milliseconds on a steady clock: how long an answer has not moved is a duration, and the wall
     * clock can be set (an NTP step of hours would close every connection with an answer pending, or
     * let stalled ones hold their slots for hours more).
     */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Takes over the server's connection limit and request handling. Call it after every `request`
   * listener is added: it wraps them, so that a request past `maxUnanswered` never reaches them.
   */
  attach(server: Server, refused?: (method: string) => void): void {
    this.refused = refused;
    server.on('connection', (socket: Socket) => this.admit(socket));
    const listeners = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (!this.answering(req, res)) return;
      for (const listener of listeners) listener.call(server, req, res);
    });
    this.sweeper = setInterval(
      () => this.sweep(this.now()),
      Math.min(SWEEP_MS, this.limits.stallMs / 4, this.limits.stuckMs / 4),
    );
    this.sweeper.unref();
  }

  detach(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** Connections open now (for tests and the figures). */
  get size(): number {
    return this.open.size;
  }

  private admit(raw: Socket): void {
    const remote = raw.remoteAddress;
    const source = remote === undefined ? undefined : connectionSource(remote, this.own);
    const fromSource = () => (source === undefined ? 0 : (this.bySource.get(source) ?? 0));
    const room =
      (fromSource() < this.limits.perSource || this.evict(source)) &&
      (this.open.size < this.limits.max || this.evict(undefined));
    if (!room) {
      raw.destroy();
      return;
    }
    const connection: Connection = {
      raw,
      source,
      unanswered: 0,
      stream: raw,
      queued: 0,
      written: 0,
      inKernelQueue: 0,
      stuckSince: undefined,
    };
    this.open.set(raw, connection);
    this.byStream.set(raw, connection);
    // Counted after any eviction above, which took one off.
    if (source !== undefined) this.bySource.set(source, fromSource() + 1);
    raw.once('close', () => this.forget(connection));
  }

  /** Counts a request against its connection; false when it was answered 503 `busy` here instead. */
  private answering(req: IncomingMessage, res: ServerResponse): boolean {
    const connection = this.connectionOf(req.socket);
    if (connection === undefined) return true;
    if (connection.unanswered >= this.limits.maxUnanswered) {
      refuseUnanswered(res, this.limits.maxUnanswered);
      this.refused?.(req.method ?? 'GET');
      return false;
    }
    connection.unanswered += 1;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      connection.unanswered -= 1;
    };
    res.once('finish', settle);
    res.once('close', settle);
    return true;
  }

  private connectionOf(stream: Socket): Connection | undefined {
    const known = this.byStream.get(stream);
    if (known !== undefined) return known;
    // A TLS socket's answers go through the socket it wraps, which is what was accepted. `_parent` is
    // Node's own (undocumented) link from one to the other; without it the request is not counted.
    const parent = (stream as Socket & { _parent?: Socket })._parent;
    const connection = parent === undefined ? undefined : this.open.get(parent);
    if (connection !== undefined) {
      connection.stream = stream;
      this.byStream.set(stream, connection);
    }
    return connection;
  }

  /** Nothing owed: no request being answered and nothing of an answer waiting for the client. */
  private idle(connection: Connection): boolean {
    return connection.unanswered === 0 && connection.stream.writableLength === 0;
  }

  /**
   * Closes the oldest idle connection (of `source`, when given); else the one whose answer has waited
   * longest, untaken for `stuckMs` at least. False when there is neither.
   */
  private evict(source: string | undefined): boolean {
    const now = this.now();
    let stuck: Connection | undefined;
    for (const connection of this.open.values()) {
      if (source !== undefined && connection.source !== source) continue;
      if (this.idle(connection)) return this.close(connection);
      const since = connection.stuckSince;
      if (since !== undefined && now - since >= this.limits.stuckMs && since < (stuck?.stuckSince ?? now)) {
        stuck = connection;
      }
    }
    return stuck === undefined ? false : this.close(stuck);
  }

  private close(connection: Connection): true {
    this.forget(connection);
    connection.stream.destroy();
    connection.raw.destroy();
    return true;
  }

  private forget(connection: Connection): void {
    if (this.open.get(connection.raw) !== connection) return;
    this.open.delete(connection.raw);
    if (connection.source === undefined) return;
    const left = (this.bySource.get(connection.source) ?? 1) - 1;
    if (left > 0) this.bySource.set(connection.source, left);
    else this.bySource.delete(connection.source);
  }

  /**
   * Closes connections whose answer has waited `stallMs` with nothing of it taken: its queue neither
   * shrank nor grew since the sweep before, in Node's stream or in libuv's queue under it (which shows
   * a large write being taken piece by piece; Node's own socket timeout reads it the same way).
   */
  private sweep(now: number): void {
    for (const connection of [...this.open.values()]) {
      const { stream } = connection;
      const queued = stream.writableLength;
      const written = stream.bytesWritten;
      const inKernelQueue =
        writeQueueSize(stream) + (connection.raw === stream ? 0 : writeQueueSize(connection.raw));
      if (
        queued + inKernelQueue === 0 ||
        queued !== connection.queued ||
        written !== connection.written ||
        inKernelQueue !== connection.inKernelQueue
      ) {
        connection.queued = queued;
        connection.written = written;
        connection.inKernelQueue = inKernelQueue;
        connection.stuckSince = queued + inKernelQueue === 0 ? undefined : now;
        continue;
      }
      connection.stuckSince ??= now;
      if (now - connection.stuckSince >= this.limits.stallMs) this.close(connection);
    }
  }
}

/**
 * Bytes libuv still has to write on a socket: `_handle.writeQueueSize`, Node's own (undocumented) field,
 * which its socket timeout reads to tell a slow write from a stalled one. 0 where there is none.
 */
function writeQueueSize(socket: Socket): number {
  const size = (socket as Socket & { _handle?: { writeQueueSize?: unknown } | null })._handle?.writeQueueSize;
  return typeof size === 'number' ? size : 0;
}

function refuseUnanswered(res: ServerResponse, max: number): void {
  res.shouldKeepAlive = false;
  res.writeHead(503, { 'content-type': 'application/json', connection: 'close' });
  const body: ErrorBody = {
    type: 'error',
    code: 'busy',
    message: `${max} requests on this connection are not answered yet (pipelined, or their answers not read); read them before sending more, or use another connection`,
    problems: [],
    retryable: true,
  };
  res.end(JSON.stringify(body));
}

/**
 * Who a connection counts against: its address, but every address of this machine as one (any local
 * user can connect from 127.0.0.2, 127.0.0.3 ..., ::1 or the host's own addresses) and an IPv6 address
 * by its /64 (what one site gets), so that the per-address limit cannot be multiplied by changing
 * addresses.
 */
export function connectionSource(address: string, ownAddresses: ReadonlySet<string> = new Set()): string {
  const v4 =
    address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
  const bare = v4.split('%')[0] as string;
  if (bare.startsWith('127.') || bare === '::1' || ownAddresses.has(bare)) return 'this machine';
  if (bare.includes('.')) return bare;
  const [head = '', tail] = bare.split('::');
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined
      ? front
      : [...front, ...Array(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${groups
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}

/** This machine's own addresses (as sockets report them, without a zone). */
function ownAddresses(): Set<string> {
  const own = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) own.add(info.address.split('%')[0] as string);
  }
  return own;
}
