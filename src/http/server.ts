import { chmodSync, rmSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { dirname } from 'node:path';
import { getRequestListener, RequestError } from '@hono/node-server';
import type { Hono } from 'hono';
import { ensurePrivateDir } from '../adapters/ownership.js';
import { claimSocketPath } from '../adapters/socket-server.js';
import { describeListen } from '../config/http.js';
import type { HttpSettings } from '../config/types.js';
import { AgentdError, errorMessage } from '../errors.js';
import { Connections } from './connections.js';
import { loadTls } from './tls.js';

/**
 * Connections served at once, of them from one address (a local socket's clients are not counted), and
 * answers one connection may leave untaken: see Connections. Node runs the handler of every pipelined
 * request it has read at once and holds each answer until the client has taken the ones before: a client
 * with a read token that pipelined 100 large requests per connection and read nothing took the daemon
 * from 108 MB to 1.15 GB. An answer of which the client takes nothing for a minute closes its connection,
 * and for 5 s gives its slot to a new connection at a limit.
 */
const CONNECTIONS = { max: 256, perSource: 64, maxUnanswered: 4, stallMs: 60_000, stuckMs: 5000 };
/**
 * Requests on one connection, after which it is closed: a client that pipelines requests and reads no
 * answer would otherwise have the daemon answer (and buffer) them without end, on the event loop every
 * session shares.
 */
const MAX_REQUESTS_PER_CONNECTION = 100;
/** A client gets this long to send its headers, and the whole request (a log stream's response may last). */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** How often those deadlines are checked (Node's default, 30 s, would let a stalled client stay 40 s). */
const LIMITS = { connectionsCheckingInterval: 2000 };
/**
 * A connection quiet this long is probed by TCP keepalive (libuv then probes every second, 10 times): a
 * client that vanished without closing (a laptop put to sleep, a NAT or firewall that forgot the
 * connection) is found out in some 40 s. Without it, the log stream of a session that printed nothing
 * more (NDJSON writes nothing meanwhile) held its connection and its token's stream slot until the
 * session ended: 16 such took every stream of their token, 64 from one address every connection of it.
 */
const TCP_KEEPALIVE_MS = 30_000;

/**
 * The HTTP API's listening socket: TCP (plain or TLS) or a Unix socket (0600, in a directory only the
 * daemon controls), with limits on connections and on how long a client may take to send a request.
 */
export class HttpServer {
  private constructor(
    private readonly server: Server,
    readonly address: string,
    private readonly socketPath: string | undefined,
    private readonly connections: Connections,
  ) {}

  /**
   * `answered` hears of the requests answered before the app sees them (it counts the others itself):
   * `refused` ones (503 `busy`, too many unanswered on their connection) and `unparsed` ones, which
   * Node could not read (400, 408 headers too slow, 413, 431), with method `unknown`.
   */
  static async listen(
    settings: HttpSettings,
    app: { fetch: Hono['fetch'] },
    answered?: (method: string, route: 'refused' | 'unparsed', status: number) => void,
  ): Promise<HttpServer> {
    const { listen } = settings;
    const where = describeListen(listen);
    let server: Server;
    const connections = new Connections(CONNECTIONS);
    try {
      // As @hono/node-server's createAdaptorServer, with an answer in the one error shape for a request
      // it cannot make a URL of (its own is a 400 without a body).
      // The request being turned into a URL: hono calls errorHandler for it synchronously, within the
      // listener's call, so it is the one this holds (and which part is at fault can be said).
      let current: IncomingMessage | undefined;
      const hono = getRequestListener(app.fetch, {
        errorHandler: (error) => unreadableRequest(error, current, answered),
      });
      const listener = (request: IncomingMessage, response: ServerResponse) => {
        current = request;
        try {
          return hono(request, response);
        } finally {
          current = undefined;
        }
      };
      server = settings.tls
        ? // A TLS client gets the headers' deadline for its handshake too (Node's default is 120 s).
          createHttpsServer(
            { ...LIMITS, handshakeTimeout: HEADERS_TIMEOUT_MS, ...tlsOptions(settings.tls) },
            listener,
          )
        : createHttpServer(LIMITS, listener);
      server.maxRequestsPerSocket = MAX_REQUESTS_PER_CONNECTION;
      // Node would answer requests past the limit 503 and keep the connection (its parser reads on):
      // the last one's answer closes it instead.
      server.prependListener('request', (_request: unknown, response: LimitedResponse) => {
        if (response.maxRequestsOnConnectionReached === true) response.shouldKeepAlive = false;
      });
      server.headersTimeout = HEADERS_TIMEOUT_MS;
      server.requestTimeout = REQUEST_TIMEOUT_MS;
      // Node's own answer to a request it cannot read (its default without a listener), counted: anyone
      // who reaches the port could otherwise send such requests as fast as they like, unseen.
      server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
        const inFlight = (socket as Socket & { _httpMessage?: { _headerSent?: boolean } | null })
          ._httpMessage;
        if (socket.writable && !inFlight?._headerSent) {
          const status = clientErrorStatus(error.code);
          socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`);
          answered?.('unknown', 'unparsed', status);
        }
        socket.destroy(error);
      });
      // Last: it wraps every request listener added above (the app's, the keep-alive limit's).
      connections.attach(server, (method) => answered?.(method, 'refused', 503));
      // A TLS connection too: this is the TCP socket under it. A Unix socket has no keepalive (Node skips it).
      server.on('connection', (socket: Socket) => socket.setKeepAlive(true, TCP_KEEPALIVE_MS));
      if (listen.kind === 'unix') {
        ensurePrivateDir(dirname(listen.path), 'HTTP socket directory');
        await claimSocketPath(listen.path, 'daemon.http.listen', async () => {
          const previous = process.umask(0o177);
          try {
            await bind(server, (done) => server.listen(listen.path, done));
          } finally {
            process.umask(previous);
          }
        });
        chmodSync(listen.path, 0o600);
      } else {
        await bind(server, (done) => server.listen(listen.port, listen.host, done));
      }
    } catch (error) {
      connections.detach();
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
      connections,
    );
  }

  /** Stops taking requests and ends every open connection (log streams too). */
  async close(): Promise<void> {
    this.connections.detach();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    if (this.socketPath !== undefined) rmSync(this.socketPath, { force: true });
  }
}

/**
 * The answer to a request Node read but @hono/node-server could not make a URL of, before the app sees
 * it: a target that is not a path (`OPTIONS *`), a backslash in the path, no Host (HTTP/1.0) or a Host that
 * is no host. Its own was a 400 with no body, neither logged nor counted: a client was told nothing of what
 * to send instead. Anything else thrown before a response (a bug) is a 500 in the same shape.
 */
function unreadableRequest(
  error: unknown,
  request: IncomingMessage | undefined,
  answered: ((method: string, route: 'refused' | 'unparsed', status: number) => void) | undefined,
): Response {
  let body: Record<string, unknown>;
  if (error instanceof RequestError) {
    answered?.('unknown', 'unparsed', 400);
    const problem = requestProblem(error.message, request?.url ?? '');
    body = {
      type: 'error',
      code: 'bad_request',
      message: `invalid request: ${problem.path}: ${problem.message}; the operations are in docs/openapi.json`,
      problems: [problem],
      retryable: false,
    };
  } else {
    body = {
      type: 'error',
      code: 'internal',
      message: 'the daemon failed to answer this request; see its log',
      problems: [],
      retryable: false,
    };
  }
  return new Response(JSON.stringify(body), {
    status: error instanceof RequestError ? 400 : 500,
    headers: { 'content-type': 'application/json', connection: 'close' },
  });
}

/** @hono/node-server's reason, as the problem of the part at fault: the request target or its Host. */
function requestProblem(reason: string, target: string): { path: string; message: string } {
  const host = 'send the Host of the address the API listens on (HTTP/1.1)';
  if (reason === 'Missing host header') return { path: 'header.host', message: `is missing; ${host}` };
  if (reason === 'Invalid host header' || (reason === 'Invalid URL' && target.startsWith('/')))
    return { path: 'header.host', message: `is not a host name or address; ${host}` };
  if (reason === 'Backslash in request path')
    return { path: 'target', message: 'holds a backslash in its path; write the path with /' };
  if (reason === 'Invalid absolute URL')
    return { path: 'target', message: 'is not a valid absolute URL; send a path like /v1/status' };
  return {
    path: 'target',
    message:
      'is not a path starting with / (OPTIONS * asks about the server, which this API does not answer); send a path like /v1/status',
  };
}

/** The status Node answers a request it could not read with (lib/_http_server.js, socketOnError). */
function clientErrorStatus(code: string | undefined): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') return 413;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

/** Node (18.10+) sets this on the response to a connection's last request; @types/node lacks it. */
type LimitedResponse = ServerResponse & { maxRequestsOnConnectionReached?: boolean };

function bind(server: Server, listen: (done: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    listen(() => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The TLS pair, or start refused naming the setting and file at fault (not the listen address). */
function tlsOptions(tls: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  const loaded = loadTls(tls);
  if ('message' in loaded) {
    throw new AgentdError('START_FAILED', `${loaded.message}. ${loaded.fix}`, {
      operation: 'open the HTTP API',
    });
  }
  return loaded;
}
