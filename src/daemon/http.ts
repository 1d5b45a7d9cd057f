import type { Logger } from 'pino';
import { describeListen, isLoopback } from '../config/http.js';
import type { HttpSettings } from '../config/types.js';
import { createApi } from '../http/api.js';
import { Tokens } from '../http/auth.js';
import { hostCheckFor } from '../http/hosts.js';
import { HttpServer } from '../http/server.js';
import type { DaemonPort } from '../protocol/context.js';
import type { DaemonMetrics } from './metrics.js';

/**
 * Opens the HTTP API (`daemon.http`) onto the daemon port: tokens read from their sources, the app,
 * its listening socket. Throws when a token's source cannot be read or the address cannot be bound:
 * the daemon then does not start.
 */
export async function openHttpApi(options: {
  settings: HttpSettings;
  port: DaemonPort;
  metrics: DaemonMetrics;
  env: NodeJS.ProcessEnv;
  log: Logger;
}): Promise<HttpServer> {
  const { settings, port, metrics, log } = options;
  const tokens = await Tokens.resolve(settings.tokens, options.env);
  const app = createApi({
    daemon: port,
    tokens,
    metrics,
    readiness: async () => readiness(port),
    log: log.child({ component: 'http' }),
    bodyLimitBytes: settings.bodyLimitBytes,
    checkHost: hostCheckFor(settings),
  });
  const server = await HttpServer.listen(settings, app, (method, route, status) =>
    metrics.httpRequest(method, route, status),
  );
  log.info(
    { event: 'http.listening', address: server.address, tokens: settings.tokens.map((t) => t.name) },
    `HTTP API on ${server.address}`,
  );
  if (!settings.tls && !isLoopback(settings.listen)) {
    log.warn(
      { event: 'http.insecure', listen: describeListen(settings.listen) },
      `the HTTP API listens on ${describeListen(settings.listen)} without TLS: tokens cross the network in clear; set daemon.http.tls`,
    );
  }
  return server;
}

/** Ready: the daemon takes triggers and at least one Podman host answered its last probe. */
export function readiness(port: DaemonPort): { ready: boolean; reason?: string } {
  const state = port.state();
  if (state !== 'ready') return { ready: false, reason: `the daemon is ${state}` };
  const hosts = port.hosts();
  if (!hosts.some((h) => h.state === 'up')) {
    // Names and states only: /readyz answers without a token, and a host's problem names its url,
    // user and key file (`agentd status` and the log have it).
    const why = hosts.map((h) => `${h.name}: ${h.state}`).join('; ');
    return { ready: false, reason: `Podman does not answer (${why})` };
  }
  return { ready: true };
}
