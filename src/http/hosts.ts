import { describeListen, isLoopback } from '../config/http.js';
import type { HttpSettings } from '../config/types.js';

/**
 * Why a request's host is not one a loopback listener answers to (the message, with the fix), or
 * undefined when it is.
 */
export type HostCheck = (url: string, hostHeader: string | undefined) => string | undefined;

/**
 * The check of the name a request was sent to, for a plain-HTTP listener on a loopback address; none
 * for the others. DNS rebinding: any web page the operator's browser opens can have its own name resolve
 * to 127.0.0.1 and then talk to the API as its own origin: read /healthz and /readyz, and send tokens to
 * try (some 2,000 a second were measured), which without rebinding a browser never sends to another
 * origin (that needs a CORS preflight, which the API refuses). The browser sends the page's name as
 * Host: a loopback listener answers only loopback names. A `unix:` listener is out of a browser's reach;
 * TLS is out of rebinding's (the certificate does not name the page's host), and names other than
 * loopback ones may be the certificate's.
 */
export function hostCheckFor(settings: Pick<HttpSettings, 'listen' | 'tls'>): HostCheck | undefined {
  const { listen } = settings;
  if (listen.kind !== 'tcp' || settings.tls !== undefined || !isLoopback(listen)) return undefined;
  // Port 0 (any free one, as tests listen) is not where to send requests: the host alone then.
  const where = listen.port === 0 ? describeListen(listen).replace(/:0$/, '') : describeListen(listen);
  return (url, hostHeader) => {
    // The request line's host when it is a whole URL (as a client sends it to a proxy), else the Host
    // header's; and the Host header's: each must be a loopback name.
    const names = [hostOf(url), ...(hostHeader === undefined ? [] : [hostOf(`http://${hostHeader}/`)])];
    const wrong = names.find((name) => name === undefined || !isLoopbackName(name));
    if (!names.includes(undefined) && wrong === undefined) return undefined;
    const shown =
      wrong === undefined
        ? 'an unreadable one'
        : JSON.stringify(wrong.length > 64 ? `${wrong.slice(0, 64)}...` : wrong);
    return `the API listens on the loopback address ${where} and answers to Host localhost or a loopback address only, not ${shown} (a web page could otherwise reach it through DNS rebinding); send requests to http://${where}, and have a reverse proxy in front send Host ${where} (nginx: proxy_set_header Host $proxy_host; Caddy: header_up Host {upstream_hostport})`;
  };
}

/** The host a request was sent to, as the URL parser normalises it (lower case, IPv4 in dotted form). */
function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname;
  } catch {
    return undefined;
  }
}

/** localhost and its subdomains (which browsers resolve to loopback themselves), 127.0.0.0/8, ::1. */
function isLoopbackName(host: string): boolean {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  return (
    name === 'localhost' ||
    name.endsWith('.localhost') ||
    /^127\.\d+\.\d+\.\d+$/.test(name) ||
    name === '[::1]'
  );
}
