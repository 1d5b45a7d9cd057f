import { chmodSync, lstatSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { AgentdError, errorMessage } from '../errors.js';
import { GrowingBuffer } from '../growing-buffer.js';
import { firstNonUtf8 } from '../utf8-offset.js';
import { ensurePrivateDir } from './ownership.js';
import { takeLock } from './pid-file.js';

/** How long a closing server waits for its clients to read what was queued for them. */
const CLOSE_LINGER_MS = 2000;

export interface Connection {
  readonly id: number;
  /** Queues one JSON message. */
  send(message: object): void;
  /**
   * Queues whole messages already serialised, each ending in a newline (a batch). A Buffer is written
   * as it is: one batch shared by many connections is held once, not copied per connection.
   */
  sendRaw(data: string | Uint8Array): void;
  /**
   * The client has more unread than lagBytes: output it can do without (a follower's lines) should
   * be skipped until onDrain. Its requests are not read meanwhile.
   */
  readonly lagging: boolean;
  /** Called each time everything queued has been handed over after the client lagged; returns an unsubscribe. */
  onDrain(listener: () => void): () => void;
  /**
   * Notes a reply owed later (a stream until its session ends, an answer that takes a while) and returns
   * the function that says it is settled (calling it again does nothing). A client that has ended its
   * side of the connection (`printf ... | nc -N`) is answered until nothing is owed; then the connection ends.
   */
  owe(): () => void;
  /** Replies owed later, now. */
  readonly owed: number;
  close(): void;
  /**
   * Calls the listener once the connection has closed (at once if it has); returns the function that
   * takes it back. A stream that ends before its connection takes its listener back: each one holds its
   * request, and a connection may stay open for ever.
   */
  onClose(listener: () => void): () => void;
  readonly closed: boolean;
  /** The protocol version of the client's last request (set by whoever reads the requests). */
  protocol?: number;
}

export interface SocketServerOptions {
  path: string;
  maxLineBytes: number;
  /**
   * Bytes of unfinished lines held for all connections together: lines may be long (a trigger carries
   * its input files), so many slow clients must not add up to the daemon's memory. A connection whose
   * line would go past it is closed with a `busy` error.
   */
  maxBufferedBytes?: number;
  maxConnections: number;
  /**
   * A client that leaves a line unfinished this long after it began (or sends no first line this long
   * after connecting) is disconnected, however slowly its bytes keep coming.
   */
  partialLineTimeoutMs: number;
  /**
   * A connection owed nothing, with no line under way, is closed after this long: leaked or idle clients
   * must not keep every slot of maxConnections (the operator's own CLI would be refused).
   */
  idleTimeoutMs: number;
  /** Output a client has not read yet beyond which it lags: its requests wait, skippable output is skipped. */
  lagBytes: number;
  /** A client that lags this long without reading down to nothing is closed (at a message boundary). */
  stallTimeoutMs: number;
  /** A closed stalled client's last unread messages wait this long for it before the socket is destroyed. */
  lingerMs: number;
  /** Unread output beyond which a client is closed at once (at a message boundary): a safety net. */
  maxPendingWriteBytes: number;
  /** A client was closed for not reading. */
  onStalled?: (connection: Connection) => void;
  /**
   * A complete request line. `notUtf8At`: the offset of its first byte that is not UTF-8, when it has one
   * (the line is then what Node decodes, each such byte a U+FFFD).
   */
  onLine: (line: string, connection: Connection, notUtf8At?: number) => void;
  onLineTooLong: (connection: Connection) => void;
  onRejectedConnection?: () => void;
  /**
   * The line sent to a connection refused because maxConnections are open, made from its first
   * request line when that arrives soon enough (so the refusal can carry the request's id), else
   * from undefined.
   */
  busyLine: (firstLine: string | undefined, message?: string) => object;
}

const NEWLINE = Buffer.from('\n');

/** Refused connections held at once to read their first request (beyond: refused at once). */
const MAX_REFUSING = 64;
/** How long a refused connection may take to send its first request, and how much of it is read. */
const REFUSE_WAIT_MS = 1000;
const REFUSE_READ_BYTES = 4096;
/**
 * The request lines one connection has handled in one event-loop turn at most, and the time they may
 * take: libuv can hand over many 64 KiB reads in one turn and a trigger's durable writes take a
 * millisecond or two, so a client pipelining thousands would otherwise hold every other client, timer
 * and container output for seconds (its small replies fit the kernel's buffer, so it never lags).
 * Past either, its reading pauses, the rest is deferred, and it goes on at setImmediate.
 */
const LINES_PER_TURN = 32;
const TURN_BUDGET_MS = 4;

/** A Unix socket speaking newline-delimited JSON, bounded in connections and buffered bytes. */
export class SocketServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Refused connections whose first request is being read. */
  private readonly refusing = new Set<Socket>();
  private nextId = 1;
  /** Bytes of unfinished lines held for every connection together. */
  private bufferedTotal = 0;
  constructor(private readonly options: SocketServerOptions) {}

  async listen(): Promise<void> {
    const { path } = this.options;
    // Only a directory nobody else controls: otherwise the socket could be swapped under the clients.
    ensurePrivateDir(dirname(path), 'socket directory');
    // A client may end its side once it has sent its requests: their replies still go out (see owe).
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    await claimSocketPath(path, 'daemon.socket', async () => {
      // The socket file must never exist with wider permissions than 0600, not even for a moment.
      const previous = process.umask(0o177);
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(path, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } finally {
        process.umask(previous);
      }
    });
    this.server = server;
    chmodSync(path, 0o600);
  }

  /**
   * Stops listening and ends every connection: what was queued for a client (an outcome sent just
   * before the end) goes out first, for at most CLOSE_LINGER_MS; a client that does not read it then
   * is cut off.
   */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const socket of this.refusing) socket.destroy();
    for (const socket of this.sockets) {
      socket.end();
      setTimeout(() => socket.destroy(), CLOSE_LINGER_MS).unref();
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.options.path, { force: true });
  }

  private accept(socket: Socket): void {
    const { options } = this;
    if (this.sockets.size >= options.maxConnections) {
      options.onRejectedConnection?.();
      this.refuse(socket);
      return;
    }
    this.sockets.add(socket);
    const closeListeners = new Set<() => void>();
    const drainListeners = new Set<() => void>();
    let closed = false;
    /** No more writes: the connection is closing at a message boundary. */
    let ending = false;
    let stallTimer: NodeJS.Timeout | undefined;
    /**
     * Destroys an ended connection whose client does not close its side. Cleared when the client does:
     * left to run, it kept every closed connection (its socket, buffers and closures) alive for the
     * whole linger, 60 s: 1,001 triggers left 4 to 5 MB of RSS behind for a minute.
     */
    let lingerTimer: NodeJS.Timeout | undefined;
    /** Requests are not read while the client does not read its replies. */
    let readingPaused = false;
    /** Reading waits for setImmediate: the connection had its share of this turn (LINES_PER_TURN). */
    let yielding = false;
    /** Request lines handled in this turn, and when the first of them began. */
    let turnLines = 0;
    let turnStarted = 0;
    /** The client has ended its side: it sends no more requests. */
    let peerEnded = false;
    let owed = 0;
    const lagging = () => socket.writableLength > options.lagBytes;
    // Every write is a whole message (or whole messages): stopping writes and ending the socket never
    // leaves half a message queued by us. The client reads what was queued, then the end.
    const endGracefully = () => {
      if (ending || closed) return;
      ending = true;
      clearTimeout(stallTimer);
      // Nothing more it sends is acted on (onData drops it: its reply could not be sent), so a request
      // that crosses the end of an idle connection is not carried out and may be sent again. Reading
      // goes on, so that the client's own close is seen and the slot is freed.
      socket.end();
      lingerTimer = setTimeout(() => socket.destroy(), options.lingerMs);
      lingerTimer.unref();
    };
    /** A client that ended its side is answered what it is owed, then the connection ends too. */
    const finishIfDone = () => {
      if (peerEnded && owed === 0 && deferred === undefined) endGracefully();
    };
    /** onStalled is running: what it sends is the last message, and cannot stall the client again. */
    let stalling = false;
    const stall = () => {
      if (stalling || ending || closed) return;
      stalling = true;
      try {
        options.onStalled?.(connection);
      } finally {
        endGracefully();
      }
    };
    const afterWrite = () => {
      if (stalling) return;
      if (socket.writableLength > options.maxPendingWriteBytes) {
        stall();
        return;
      }
      if (!lagging()) return;
      if (!readingPaused) {
        readingPaused = true;
        socket.pause();
      }
      stallTimer ??= setTimeout(stall, options.stallTimeoutMs);
    };
    socket.on('drain', () => {
      clearTimeout(stallTimer);
      stallTimer = undefined;
      if (readingPaused && !ending) {
        readingPaused = false;
        if (!yielding) readOn();
      }
      for (const listener of [...drainListeners]) {
        try {
          listener();
        } catch {
          // One listener's failure is its own.
        }
      }
    });
    const connection: Connection = {
      id: this.nextId++,
      send: (message) => {
        if (closed || ending) return;
        socket.write(`${JSON.stringify(message)}\n`);
        afterWrite();
      },
      sendRaw: (data) => {
        if (closed || ending || data.length === 0) return;
        socket.write(data);
        afterWrite();
      },
      get lagging() {
        return lagging();
      },
      onDrain: (listener) => {
        drainListeners.add(listener);
        return () => drainListeners.delete(listener);
      },
      owe: () => {
        owed++;
        armQuietTimer();
        let settled = false;
        return () => {
          if (settled) return;
          settled = true;
          owed--;
          armQuietTimer();
          finishIfDone();
        };
      },
      get owed() {
        return owed;
      },
      close: () => endGracefully(),
      onClose: (listener) => {
        if (closed) {
          listener();
          return () => {};
        }
        // Its own function, so that taking it back never takes another's that happens to be the same.
        const once = () => listener();
        closeListeners.add(once);
        return () => {
          closeListeners.delete(once);
        };
      },
      get closed() {
        return closed || ending;
      },
    };
    const partial = new GrowingBuffer(options.maxLineBytes);
    let held = 0;
    /** Counts what the partial line holds now against the bound for all connections. */
    const holdPartial = () => {
      this.bufferedTotal += partial.capacity - held;
      held = partial.capacity;
    };
    const release = () => {
      partial.clear();
      this.bufferedTotal -= held;
      held = 0;
    };
    let discarding = false;
    /** A client that connects and never completes a request must not hold a slot for ever. */
    let sentLine = false;
    /**
     * One timer for a connection that is quiet in a way it may not stay: a line begun and not finished
     * (or no first line) for partialLineTimeoutMs, or nothing under way and nothing owed for
     * idleTimeoutMs. Kept, not restarted, while the same wait goes on: a byte now and then does not
     * extend it. A completed line or a settled reply starts the next wait.
     */
    let quietTimer: NodeJS.Timeout | undefined;
    let quietFor: 'line' | 'idle' | undefined;
    const armQuietTimer = (restart = false) => {
      const now: typeof quietFor =
        partial.length > 0 || discarding || !sentLine ? 'line' : owed === 0 && !closed ? 'idle' : undefined;
      if (now === quietFor && !restart) return;
      clearTimeout(quietTimer);
      quietFor = now;
      quietTimer =
        now === 'line'
          ? setTimeout(() => socket.destroy(), options.partialLineTimeoutMs)
          : now === 'idle'
            ? setTimeout(() => endGracefully(), options.idleTimeoutMs)
            : undefined;
    };
    armQuietTimer();
    /**
     * The rest of a chunk whose requests stopped being read when the client began to lag (one chunk of
     * requests, many small ones, must not queue a reply each for a client that reads none of them) or
     * when the connection had its share of the turn.
     */
    let deferred: Buffer | undefined;
    /** Reading goes on: the requests deferred (when the client lagged or the turn was used) come first. */
    const readOn = () => {
      const rest = deferred;
      deferred = undefined;
      if (rest !== undefined) onData(rest);
      if (!readingPaused && !yielding && !ending && !closed) socket.resume();
      finishIfDone();
    };
    const onData = (data: Buffer) => {
      if (ending || closed) return;
      let start = 0;
      for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
        if (
          turnLines >= LINES_PER_TURN ||
          (turnLines > 0 && performance.now() - turnStarted >= TURN_BUDGET_MS)
        ) {
          deferred = data.subarray(start);
          yielding = true;
          socket.pause();
          setImmediate(() => {
            yielding = false;
            if (!readingPaused && !ending && !closed) readOn();
          });
          armQuietTimer();
          return;
        }
        const piece = data.subarray(start, nl);
        start = nl + 1;
        if (discarding) {
          discarding = false;
          // The next line has its own time from now.
          armQuietTimer(true);
          continue;
        }
        if (partial.length + piece.length > options.maxLineBytes) {
          release();
          options.onLineTooLong(connection);
          armQuietTimer(true);
          continue;
        }
        const bytes = partial.take(piece);
        const line = bytes.toString('utf8');
        release();
        sentLine = true;
        // The next line (or the idle wait) has its own time from now.
        armQuietTimer(true);
        if (line.trim() !== '') {
          if (turnLines++ === 0) {
            turnStarted = performance.now();
            setImmediate(() => {
              turnLines = 0;
            });
          }
          try {
            const notUtf8At = firstNonUtf8(bytes);
            options.onLine(line, connection, notUtf8At === -1 ? undefined : notUtf8At);
          } catch {
            // The handler's own failure handling answers the client; nothing reaches the process.
          }
        }
        if (closed || ending) return;
        if (readingPaused) {
          if (start < data.length) deferred = data.subarray(start);
          // A whole request was read: the half-line (or no-request) timer stops; the stall timer rules now.
          armQuietTimer();
          return;
        }
      }
      const rest = data.subarray(start);
      if (rest.length > 0 && !discarding) {
        if (partial.length + rest.length > options.maxLineBytes) {
          release();
          discarding = true;
          options.onLineTooLong(connection);
        } else if (
          this.bufferedTotal - held + partial.capacityWith(rest.length) >
          (options.maxBufferedBytes ?? Number.POSITIVE_INFINITY)
        ) {
          release();
          options.onRejectedConnection?.();
          socket.end(
            `${JSON.stringify(options.busyLine(undefined, 'the daemon holds too many unfinished requests; retry later'))}\n`,
          );
          socket.destroy();
          return;
        } else {
          partial.append(rest);
          holdPartial();
        }
      }
      armQuietTimer();
    };
    socket.on('data', onData);
    socket.on('end', () => {
      peerEnded = true;
      // The end of the input ends its last line too (`printf '{"type":"status"}' | nc -N`). Node
      // reports the end while reading is paused: then that last line is in what was deferred.
      if (deferred !== undefined) {
        if (deferred.at(-1) !== 10) deferred = Buffer.concat([deferred, NEWLINE]);
      } else if (partial.length > 0 && !closed && !ending) onData(NEWLINE);
      finishIfDone();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      closed = true;
      release();
      clearTimeout(stallTimer);
      clearTimeout(quietTimer);
      clearTimeout(lingerTimer);
      drainListeners.clear();
      this.sockets.delete(socket);
      const listeners = [...closeListeners];
      closeListeners.clear();
      for (const listener of listeners) listener();
    });
  }

  /**
   * Answers a connection beyond the limit with one `busy` line and closes it. Its first request is
   * read first, for a short time and a few KiB, so the answer can name the request; when many are
   * refused at once, the rest get the answer at once.
   */
  private refuse(socket: Socket): void {
    let timer: NodeJS.Timeout | undefined;
    const answer = (line: string | undefined) => {
      clearTimeout(timer);
      this.refusing.delete(socket);
      socket.removeAllListeners('data');
      socket.end(`${JSON.stringify(this.options.busyLine(line))}\n`);
      socket.destroySoon();
    };
    socket.on('error', () => socket.destroy());
    if (this.refusing.size >= MAX_REFUSING) {
      answer(undefined);
      return;
    }
    this.refusing.add(socket);
    socket.on('close', () => this.refusing.delete(socket));
    let read = Buffer.alloc(0);
    timer = setTimeout(() => answer(undefined), REFUSE_WAIT_MS);
    socket.on('data', (data: Buffer) => {
      read = Buffer.concat([read, data]).subarray(0, REFUSE_READ_BYTES + 1);
      const nl = read.indexOf(10);
      if (nl !== -1) answer(read.subarray(0, nl).toString('utf8'));
      else if (read.length > REFUSE_READ_BYTES) answer(undefined);
    });
  }
}

/**
 * Clears a dead daemon's socket at `path` (clearStaleSocket) and binds it (`bind`), holding the lock
 * `<path>.lock` throughout: two daemons started at once on one socket path (with different state dirs,
 * so their pid files do not keep one out) would otherwise both find a dead daemon's socket, and the one
 * that removed it last would remove the other's new socket with it, leaving that daemon running where no
 * client can reach it.
 */
export async function claimSocketPath(
  path: string,
  setting: string,
  bind: () => Promise<void>,
): Promise<void> {
  const lock = `${path}.lock`;
  const release = takeLock(
    lock,
    (holder) =>
      new AgentdError(
        'DAEMON_RUNNING',
        `another agentd${holder === undefined ? '' : ` (pid ${holder})`} is starting on the socket path ${path} (${lock}); retry in a few seconds (if no agentd is starting, remove ${lock}), or set ${setting} to another path`,
        { operation: 'bind socket' },
      ),
    (error) =>
      new AgentdError(
        'START_FAILED',
        `cannot make the lock ${lock} beside the socket (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}); check that ${dirname(path)} is writable by this user, or set ${setting} to another path`,
        { operation: 'bind socket', cause: error },
      ),
  );
  try {
    await clearStaleSocket(path, setting);
    await bind();
  } finally {
    release();
  }
}

/**
 * A path left by a daemon that died is replaced; anything else is never deleted: a file that is
 * not a socket, or a socket a live daemon answers on.
 */
export async function clearStaleSocket(path: string, setting = 'daemon.socket'): Promise<void> {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) {
    throw new AgentdError(
      'SOCKET_PATH_IN_USE',
      `socket path ${path} exists and is not a socket; agentd will not delete it. Move it away or set ${setting} to another path`,
      { operation: 'bind socket' },
    );
  }
  // Only a refused connection says nobody listens. A full queue of connections (EAGAIN) is a live
  // daemon that is busy: deleting its socket would leave it running and unreachable.
  let answer = await probeSocket(path);
  for (let tries = 1; answer === 'EAGAIN' && tries < STALE_PROBE_TRIES; tries++) {
    await new Promise((resolve) => setTimeout(resolve, STALE_PROBE_PAUSE_MS));
    answer = await probeSocket(path);
  }
  if (answer === 'ENOENT') return;
  if (answer === 'ECONNREFUSED') {
    rmSync(path, { force: true });
    return;
  }
  if (answer === 'answers' || answer === 'EAGAIN') {
    throw new AgentdError(
      'DAEMON_RUNNING',
      `a daemon already answers on ${path}${answer === 'EAGAIN' ? ' (its queue of connections is full)' : ''}; stop it first or set ${setting} to another path`,
      { operation: 'bind socket' },
    );
  }
  throw new AgentdError(
    'SOCKET_PATH_IN_USE',
    `cannot tell whether a daemon answers on ${path} (connecting failed with ${answer}); agentd will not delete it. Check the path's permissions, or set ${setting} to another path`,
    { operation: 'bind socket' },
  );
}

/** How often a socket whose queue is full is probed again before it counts as a live daemon's. */
const STALE_PROBE_TRIES = 10;
const STALE_PROBE_PAUSE_MS = 100;
const STALE_PROBE_TIMEOUT_MS = 2000;

/** Connects once: `answers`, or the error code the connection failed with. */
function probeSocket(path: string): Promise<string> {
  return new Promise((resolve) => {
    const probe = connect(path);
    const done = (answer: string) => {
      clearTimeout(timer);
      probe.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done('EAGAIN'), STALE_PROBE_TIMEOUT_MS);
    probe.once('connect', () => done('answers'));
    probe.once('error', (error: NodeJS.ErrnoException) => done(error.code ?? 'error'));
  });
}
