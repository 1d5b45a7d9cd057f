import { execa } from 'execa';
import { errorMessage } from '../errors.js';

/**
 * Tells a service manager where the daemon is in its life: `READY=1` once the socket accepts (so
 * `systemctl start agentd && agentd trigger ...` cannot race), `RELOADING=1` while a configuration is
 * re-read, `STOPPING=1` when it drains. See sd_notify(3).
 */
export interface ServiceNotifier {
  ready(status: string): void;
  reloading(status: string): void;
  stopping(status: string): void;
  /** Resolves once every message sent so far was handed over (or failed). */
  flush(): Promise<void>;
}

/** For a daemon that no service manager watches (NOTIFY_SOCKET unset): does nothing. */
export const silentNotifier: ServiceNotifier = {
  ready: () => {},
  reloading: () => {},
  stopping: () => {},
  flush: async () => {},
};

export interface SystemdNotifierOptions {
  /** Read for NOTIFY_SOCKET, which is then removed from it (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Called when a message could not be sent; the daemon goes on either way. */
  warn: (message: string) => void;
  /** The sender program (tests point it elsewhere). */
  command?: string;
  /** Deadline of one send; systemd-notify waits for the manager to have read the message. */
  timeoutMs?: number;
}

/**
 * sd_notify through systemd's own `systemd-notify` program. NOTIFY_SOCKET is an AF_UNIX datagram
 * socket, which Node cannot open (net has streams only, dgram has UDP only), and the npm clients for
 * it are native addons that need a compiler at install time. systemd-notify ships with systemd, so it
 * is present wherever a NOTIFY_SOCKET is set. As root it sends with the daemon's pid (its parent, and
 * `--pid`), so the default NotifyAccess=main accepts it, and it waits until the manager has read the
 * message. Messages are sent one at a time, in order (of those waiting, only the newest).
 *
 * NOTIFY_SOCKET is removed from the environment so that no child inherits it: Podman passes a
 * NOTIFY_SOCKET on to containers and conmon, and an agent must not be able to talk to the service
 * manager.
 */
export function systemdNotifier(options: SystemdNotifierOptions): ServiceNotifier {
  const env = options.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  delete env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return silentNotifier;
  const command = options.command ?? 'systemd-notify';
  const sendOne = async (fields: string[]): Promise<void> => {
    const result = await execa(command, [`--pid=${process.pid}`, ...fields], {
      env: { ...env, NOTIFY_SOCKET: socket },
      reject: false,
      timeout: options.timeoutMs ?? 10_000,
      stdin: 'ignore',
    });
    if (result.exitCode !== 0) {
      const why =
        (result as { code?: string }).code === 'ENOENT'
          ? `${command} is not installed (it comes with systemd)`
          : (result.stderr.trim() || errorMessage(result.message)).slice(0, 500);
      options.warn(`could not tell the service manager ${fields[0]}: ${why}`);
    }
  };
  // One send at a time, in order; of the messages that wait behind it only the newest is sent, since
  // each says the whole state. A manager that reads slowly (systemd-notify waits up to 5 s for it to
  // have read each message, 10 s at most here) then delays the stop by two sends at most: with a
  // socket nobody read, every message queued added its wait, and a stop after a reload took 24 s.
  let pending: string[] | undefined;
  let sending: Promise<void> | undefined;
  const pump = async (): Promise<void> => {
    while (pending !== undefined) {
      const fields = pending;
      pending = undefined;
      try {
        await sendOne(fields);
      } catch (error) {
        options.warn(`could not tell the service manager ${fields[0]}: ${errorMessage(error)}`);
      }
    }
    sending = undefined;
  };
  // After STOPPING=1 only STOPPING=1 (a newer status): a reload asked for while the daemon drains (it
  // is refused) sent RELOADING=1 and READY=1, and `systemctl status` said "ready" until the process exited.
  let stopping = false;
  const send = (fields: string[]) => {
    if (fields[0] === 'STOPPING=1') stopping = true;
    else if (stopping) return;
    pending = fields;
    sending ??= pump();
  };
  return {
    ready: (status) => send(['READY=1', `STATUS=${oneLine(status)}`]),
    reloading: (status) => send(['RELOADING=1', `STATUS=${oneLine(status)}`]),
    stopping: (status) => send(['STOPPING=1', `STATUS=${oneLine(status)}`]),
    flush: () => sending ?? Promise.resolve(),
  };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').slice(0, 200);
}
