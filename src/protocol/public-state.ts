/**
 * The daemon machine's states a client can see. `shutdown.stopped` is entered just before the socket
 * closes, so it is reported as `shutdown.draining`; `reconciling` comes before the socket opens, `opening`
 * is the moment from its bind to the end of the start (a client that connects then sees it), and
 * `failed` ends the process.
 */
export const PUBLIC_STATES = ['opening', 'ready', 'degraded', 'shutdown.draining'] as const;

/** The state name a client is told for a state of the daemon machine (`shutdown.draining`, ...). */
export function publicState(name: string): string {
  return name === 'shutdown.stopped' ? 'shutdown.draining' : name;
}
