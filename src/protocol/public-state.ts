/**
 * The daemon machine's states a client can see. `shutdown.stopped` is entered just before the socket
 * closes, so it is reported as `shutdown.draining`; `reconciling` and `opening` come before the socket
 * opens, and `failed` ends the process.
 */
export const PUBLIC_STATES = ['ready', 'degraded', 'shutdown.draining'] as const;

/** The state name a client is told for a state of the daemon machine (`shutdown.draining`, ...). */
export function publicState(name: string): string {
  return name === 'shutdown.stopped' ? 'shutdown.draining' : name;
}
