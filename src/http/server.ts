import { chmodSync, readFileSync, rmSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import type { Hono } from 'hono';
import { ensurePrivateDir } from '../adapters/ownership.js';
import { clearStaleSocket } from '../adapters/socket-server.js';
import { describeListen } from '../config/http.js';
import type { HttpSettings } from '../config/types.js';
import { AgentdError, errorMessage } from '../errors.js';
import type { ErrorBody } from './schemas.js';

/** Connections served at once; more are refused, so a flood of clients cannot take every descriptor. */
const MAX_CONNECTIONS = 256;
/** Of those, from one address: one client cannot hold them all (a local socket's clients are not counted). */
const MAX_CONNECTIONS_PER_ADDRESS = 64;
/**
 * Requests on one connection, after which it is closed: a client that pipelines requests and reads no
 * answer would otherwise have the daemon answer (and buffer) them without end, on the event loop every
 * session shares.
 */
const MAX_REQUESTS_PER_CONNECTION = 100;
/**
 * Answers not yet handed to the connection, per connection: Node runs the handler of every pipelined
 * request it has read at once and holds each answer until the client has taken the ones before. A client
 * with a read token that pipelined 100 large requests per connection and read nothing took the daemon
 * from 108 MB to 1.15 GB. Past this, a request gets 503 `busy` and the connection closes after it.
 */
const MAX_UNANSWERED_PER_CONNECTION = 4;
/** A client gets this long to send its headers, and the whole request (a log stream's response may last). */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** How often those deadlines are checked (Node's default, 30 s, would let a stalled client stay 40 s). */
const LIMITS = { connectionsCheckingInterval: 2000 };

/**
 * The HTTP API's listening socket: TCP (plain or TLS) or a Unix socket (0600, in a directory only the
 * daemon controls), with limits on connections and on how long a client may take to send a request.
 */
export class HttpServer {
  private constructor(
    private readonly server: Server,
    readonly address: string,
    private readonly socketPath: string | undefined,
  ) {}

  static async listen(settings: HttpSettings, app: { fetch: Hono['fetch'] }): Promise<HttpServer> {
    const { listen } = settings;
    const where = describeListen(listen);
    let server: Server;
    try {
      server = createAdaptorServer({
        fetch: app.fetch,
        ...(settings.tls
          ? {
              createServer: createHttpsServer,
              // A TLS client gets the headers' deadline for its handshake too (Node's default is 120 s).
              serverOptions: { ...LIMITS, handshakeTimeout: HEADERS_TIMEOUT_MS, ...tlsOptions(settings.tls) },
            }
          : { createServer: createHttpServer, serverOptions: LIMITS }),
      }) as Server;
      server.maxConnections = MAX_CONNECTIONS;
      server.maxRequestsPerSocket = MAX_REQUESTS_PER_CONNECTION;
      // Node would answer requests past the limit 503 and keep the connection (its parser reads on):
      // the last one's answer closes it instead.
      server.prependListener('request', (_request: unknown, response: LimitedResponse) => {
        if (response.maxRequestsOnConnectionReached === true) response.shouldKeepAlive = false;
      });
      server.headersTimeout = HEADERS_TIMEOUT_MS;
      server.requestTimeout = REQUEST_TIMEOUT_MS;
      limitPerAddress(server, MAX_CONNECTIONS_PER_ADDRESS);
      // Last: it wraps every request listener added above (the app's, the keep-alive limit's).
      boundUnanswered(server, MAX_UNANSWERED_PER_CONNECTION);
      if (listen.kind === 'unix') {
        ensurePrivateDir(dirname(listen.path), 'HTTP socket directory');
        await clearStaleSocket(listen.path, 'daemon.http.listen');
        const previous = process.umask(0o177);
        try {
          await bind(server, (done) => server.listen(listen.path, done));
        } finally {
          process.umask(previous);
        }
        chmodSync(listen.path, 0o600);
      } else {
        await bind(server, (done) => server.listen(listen.port, listen.host, done));
      }
    } catch (error) {
      if (error instanceof AgentdError) throw error;
      throw new AgentdError(
        'START_FAILED',
        `cannot listen on ${where} (daemon.http.listen): ${errorMessage(error)}`,
        { operation: 'open the HTTP API', cause: error },
      );
    }
    const address = server.address() as AddressInfo | string;
    const bound =
      typeof address === 'string' || listen.kind === 'unix'
        ? where
        : describeListen({ kind: 'tcp', host: listen.host, port: address.port });
    return new HttpServer(
      server,
      `${settings.tls ? 'https' : 'http'}://${bound}`,
      listen.kind === 'unix' ? listen.path : undefined,
    );
  }

  /** Stops taking requests and ends every open connection (log streams too). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    if (this.socketPath !== undefined) rmSync(this.socketPath, { force: true });
  }
}

/** Node (18.10+) sets this on the response to a connection's last request; @types/node lacks it. */
type LimitedResponse = ServerResponse & { maxRequestsOnConnectionReached?: boolean };

/**
 * A request that comes while `max` answers on its connection are unfinished (pipelined, unread) is not
 * handed to the app: it gets a small 503 `busy`, and the connection closes after it.
 */
function boundUnanswered(server: Server, max: number): void {
  const listeners = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners('request');
  const unanswered = new WeakMap<Socket, number>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    const count = unanswered.get(socket) ?? 0;
    if (count >= max) {
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
      return;
    }
    unanswered.set(socket, count + 1);
    let done = false;
    const settle = () => {
      if (done) return;
      done = true;
      unanswered.set(socket, (unanswered.get(socket) ?? 1) - 1);
    };
    res.once('finish', settle);
    res.once('close', settle);
    for (const listener of listeners) listener.call(server, req, res);
  });
}

/** Refuses (closes at once) a connection from a source (connectionSource) that already has `max` open. */
function limitPerAddress(server: Server, max: number): void {
  const open = new Map<string, number>();
  const own = ownAddresses();
  server.on('connection', (socket: Socket) => {
    const remote = socket.remoteAddress;
    if (remote === undefined) return;
    const address = connectionSource(remote, own);
    const count = (open.get(address) ?? 0) + 1;
    if (count > max) {
      socket.destroy();
      return;
    }
    open.set(address, count);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
  });
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

function bind(server: Server, listen: (done: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    listen(() => {
      server.off('error', reject);
      resolve();
    });
  });
}

function tlsOptions(tls: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  const read = (path: string, key: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new AgentdError(
        'START_FAILED',
        `cannot read ${path} (daemon.http.tls.${key}): ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}; check the path and that the daemon's user can read it`,
        { operation: 'open the HTTP API', cause: error },
      );
    }
  };
  return { cert: read(tls.cert, 'cert'), key: read(tls.key, 'key') };
}
