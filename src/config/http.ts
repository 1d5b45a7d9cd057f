/**
 * Where the HTTP API listens (`daemon.http.listen`): `HOST:PORT` (an IPv6 host in brackets) or
 * `unix:/absolute/path`. Parsed here once, for the schema's message and the server's listen call.
 */

import { quoted } from './quoted.js';

export type HttpListen = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export const HTTP_SCOPES = ['trigger', 'read', 'cancel', 'admin'] as const;
/** What a token may do: `trigger` sessions, `read` status, sessions, logs and metrics, `cancel` them; `admin` all of it, reload and shutdown. */
export type HttpScope = (typeof HTTP_SCOPES)[number];

/** Longest Unix socket path: sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_BYTES = 107;

export function parseListen(text: string): HttpListen | { problem: string } {
  const example = 'write 127.0.0.1:7391, [::1]:7391 or unix:/run/agentd/http.sock';
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (!path.startsWith('/'))
      return { problem: `${quoted(text)}: the socket path must be absolute; ${example}` };
    if (Buffer.byteLength(path) > MAX_SOCKET_BYTES) {
      return {
        problem: `${quoted(text)}: the socket path is longer than ${MAX_SOCKET_BYTES} bytes; use a shorter one`,
      };
    }
    return { kind: 'unix', path };
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) {
    return { problem: `${quoted(text)} is not an address to listen on; ${example}` };
  }
  return { kind: 'tcp', host: (match[1] ?? match[2]) as string, port };
}

/** How an address reads in logs and messages: `127.0.0.1:7391`, `[::1]:7391`, `unix:/path`. */
export function describeListen(listen: HttpListen): string {
  if (listen.kind === 'unix') return `unix:${listen.path}`;
  return listen.host.includes(':') ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
}

/** Loopback hosts: a token to anything else travels the network, and should go over TLS. */
export function isLoopback(listen: HttpListen): boolean {
  if (listen.kind === 'unix') return true;
  return listen.host === 'localhost' || listen.host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(listen.host);
}
