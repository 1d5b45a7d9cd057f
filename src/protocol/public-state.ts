/**
 * The daemon machine's states a client can see. `shutdown.stopped` is entered just before the socket
 * closes, so it is reported as `shutdown.draining`; `reconciling` comes before the socket opens, `opening`
 * is the moment from its bind to the end of the start (a client that connects then sees it), and
 * `failed` ends the process.
 */
export const PUBLIC_STATES = ['opening', 'ready', 'degraded', 'shutdown.draining'] as const;
/** The `state` of `hello`, `status`, `state` and `event.result`: a public state, or `failed` (the machine failed). */
export const DAEMON_STATES = [...PUBLIC_STATES, 'failed'] as const;
export type DaemonStateName = (typeof DAEMON_STATES)[number];

/** The state name a client is told for a state of the daemon machine (`shutdown.draining`, ...). */
export function publicState(name: string): DaemonStateName {
  if (name === 'shutdown.stopped') return 'shutdown.draining';
  // Reconciling comes before the socket and the HTTP API open, so no client is told it; were one told,
  // it would be a state the protocol has, and as much not ready.
  return (DAEMON_STATES as readonly string[]).includes(name) ? (name as DaemonStateName) : 'opening';
}
