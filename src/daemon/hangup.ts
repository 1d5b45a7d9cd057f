import type { Logger } from 'pino';

/**
 * SIGHUP for the whole life of a daemon. Its default action ends the process, and the daemon took it only
 * while its machine ran: measured, a SIGHUP 150 ms or 2 s after `agentd start` (config read, preflight,
 * the podman calls before the socket opens) killed the daemon, and one after the machine stopped would
 * have killed it while it sealed the last records and sent the last notifications. A SIGHUP before the
 * reloader exists is one reload once it does (the file may have changed after the start read it); one
 * after the daemon stopped taking reloads is logged and changes nothing.
 */
export interface Hangups {
  /** From now on a SIGHUP reloads; one that came before reloads now. */
  reloadWith(reload: () => void): void;
  /** The daemon stops: a SIGHUP is logged and changes nothing. */
  stopping(): void;
  /** The daemon has ended: SIGHUP is no longer taken. */
  release(): void;
}

export function takeHangups(log: Logger, signals: NodeJS.EventEmitter = process): Hangups {
  let state:
    | { kind: 'early'; pending: boolean }
    | { kind: 'reload'; reload: () => void }
    | { kind: 'stopping'; told: boolean } = { kind: 'early', pending: false };
  const onHangup = () => {
    if (state.kind === 'reload') state.reload();
    else if (state.kind === 'early') {
      if (!state.pending) {
        log.info(
          { event: 'daemon.signal', signal: 'SIGHUP' },
          'received SIGHUP while starting: the configuration is re-read once the daemon takes reloads',
        );
      }
      state.pending = true;
    } else if (!state.told) {
      // Once: a burst of them says nothing more.
      state.told = true;
      log.info(
        { event: 'daemon.signal', signal: 'SIGHUP' },
        'received SIGHUP while stopping: the configuration is not re-read',
      );
    }
  };
  signals.on('SIGHUP', onHangup);
  return {
    reloadWith(reload) {
      const pending = state.kind === 'early' && state.pending;
      state = { kind: 'reload', reload };
      if (pending) reload();
    },
    stopping() {
      state = { kind: 'stopping', told: false };
    },
    release() {
      signals.off('SIGHUP', onHangup);
    },
  };
}
