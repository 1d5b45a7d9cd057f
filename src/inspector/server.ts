import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AnyStateMachine, InspectionEvent } from 'xstate';
import { daemonMachine } from '../machines/daemon.machine.js';
import { runnerMachine } from '../machines/runner.machine.js';
import { sessionMachine } from '../machines/session.machine.js';
import { InspectorHub, type InspectorMessage, type MachineKind } from './hub.js';
import { inspectorPage } from './page.js';
import { machineStructure } from './structure.js';

/** Port of a bare `--inspect`: fixed, so an open page reconnects by itself to a restarted daemon. */
export const DEFAULT_INSPECTOR_PORT = 7390;

const HOST = '127.0.0.1';
/** Host names a page of ours is loaded from; anything else is a DNS-rebinding page reading our data. */
const LOCAL_HOSTNAMES = new Set(['127.0.0.1', 'localhost', '[::1]']);
/** A page that does not read its events for this long (bytes queued) is dropped, not buffered forever. */
const MAX_QUEUED_BYTES = 1024 * 1024;
/**
 * Event streams open at once, and connections at all: each stream costs a serialisation and a write per
 * machine event, inside the daemon's own transitions, and a descriptor the daemon's socket and podman
 * calls need too. A development aid has a few pages open.
 */
const MAX_STREAMS = 8;
const MAX_CONNECTIONS = 32;
const HEARTBEAT_MS = 15_000;

export interface InspectorServer {
  url: string;
  port: number;
  /** The XState inspection observer for `runDaemon({ inspect })`. */
  inspect: (event: InspectionEvent) => void;
  close(): Promise<void>;
}

export interface InspectorOptions {
  /** 0 picks a free port. */
  port: number;
  machines?: Record<MachineKind, AnyStateMachine>;
}

/**
 * The `--inspect` option's value as a port: `true` (bare flag) is the default port, undefined means
 * no inspector, and null a value that is not a port.
 */
export function inspectorPort(option: string | boolean | undefined): number | undefined | null {
  if (option === undefined || option === false) return undefined;
  if (option === true) return DEFAULT_INSPECTOR_PORT;
  if (!/^\d{1,5}$/.test(option.trim())) return null;
  const port = Number(option.trim());
  return port <= 65535 ? port : null;
}

/** Serves the live inspector on 127.0.0.1: `/` the page, `/machines.json` the charts, `/events` SSE. */
export async function startInspector(options: InspectorOptions): Promise<InspectorServer> {
  const machines = options.machines ?? {
    daemon: daemonMachine,
    session: sessionMachine,
    runner: runnerMachine,
  };
  const hub = new InspectorHub({ machines });
  const page = inspectorPage();
  const structure = JSON.stringify({
    daemon: machineStructure(machines.daemon),
    session: machineStructure(machines.session),
    runner: machineStructure(machines.runner),
  });
  const clients = new Set<ServerResponse>();

  const server = createServer((req, res) => {
    // A throw here would be an uncaught exception: it would end the daemon and leave its sessions.
    try {
      answer(req, res);
    } catch {
      if (!res.headersSent) plain(res, 500, 'the inspector could not answer this request\n');
      else res.destroy();
    }
  });

  const answer = (req: IncomingMessage, res: ServerResponse) => {
    if (!isLocalHost(req)) return plain(res, 403, 'the inspector answers to 127.0.0.1 and localhost only\n');
    if (!isSameOrigin(req))
      return plain(res, 403, 'the inspector answers to its own page only, not to other sites\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return plain(res, 405, 'method not allowed\n');
    }
    const path = pathOf(req.url);
    if (path === undefined) return plain(res, 400, 'not a path the inspector knows; try /\n');
    if (path === '/') {
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8',
        ...COMMON_HEADERS,
        // The page's own policy, which forbids framing too.
        'Content-Security-Policy': page.csp,
      });
      return res.end(req.method === 'HEAD' ? undefined : page.html);
    }
    if (path === '/machines.json') {
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', ...COMMON_HEADERS });
      return res.end(req.method === 'HEAD' ? undefined : structure);
    }
    if (path === '/events') return openStream(req, res);
    return plain(res, 404, 'not found; try /\n');
  };

  const openStream = (req: IncomingMessage, res: ServerResponse): void => {
    if (clients.size >= MAX_STREAMS) {
      res.setHeader('Retry-After', '5');
      plain(res, 503, `the inspector streams to ${MAX_STREAMS} pages at most; close one\n`);
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
      ...COMMON_HEADERS,
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.write('retry: 1000\n\n');
    for (const message of hub.replay()) res.write(frame(message));
    clients.add(res);
    const unsubscribe = hub.subscribe((message) => {
      if (res.writableLength > MAX_QUEUED_BYTES) {
        res.destroy();
        return;
      }
      res.write(frame(message));
    });
    res.on('close', () => {
      unsubscribe();
      clients.delete(res);
    });
  };

  server.maxConnections = MAX_CONNECTIONS;

  // Comments keep idle connections from being cut by proxies and reveal dead ones.
  const heartbeat = setInterval(() => {
    for (const res of clients) res.write(': ping\n\n');
  }, HEARTBEAT_MS);
  heartbeat.unref();

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    clearInterval(heartbeat);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new Error(
        `inspector: port ${options.port} on ${HOST} is in use; use --inspect=PORT with another port, or --inspect=0 for any free one`,
      );
    }
    throw new Error(`inspector: cannot listen on ${HOST}:${options.port}: ${String(error)}`);
  }
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://${HOST}:${port}/`,
    port,
    inspect: hub.inspect,
    close: async () => {
      clearInterval(heartbeat);
      for (const res of clients) res.end();
      clients.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Framing is refused everywhere: a framed /events is a stream another site holds open (there are 8). */
const COMMON_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "frame-ancestors 'none'",
};

function frame(message: InspectorMessage): string {
  return `data: ${JSON.stringify(message)}\n\n`;
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...COMMON_HEADERS });
  res.end(text);
}

/**
 * The path of a request target, or undefined for one that is no URL: `GET http://[ HTTP/1.1` made the
 * URL parser throw, and that throw, out of the request handler, ended the daemon.
 */
function pathOf(target: string | undefined): string | undefined {
  try {
    return new URL(target ?? '/', 'http://127.0.0.1').pathname;
  } catch {
    return undefined;
  }
}

function isLocalHost(req: IncomingMessage): boolean {
  const host = req.headers.host;
  if (host === undefined) return false;
  // Any port: an ssh tunnel (`ssh -L 9000:127.0.0.1:PORT`) changes it, and the name is what rebinding forges.
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  return hostname !== undefined && LOCAL_HOSTNAMES.has(hostname.toLowerCase());
}

/**
 * Whether a browser says the request comes from our own page (or the operator typed the address).
 * The Host check stops DNS rebinding but not another local site (localhost:OTHERPORT) that frames or
 * fetches us; the browser tells us which site asks. Clients that send neither header (curl) pass.
 */
function isSameOrigin(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  // Our origin is the one the browser addressed (a tunnel may change the port); Host is checked local already.
  return origin.toLowerCase() === `http://${(req.headers.host ?? '').toLowerCase()}`;
}
