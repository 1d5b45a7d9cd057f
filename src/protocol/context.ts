import type { Logger } from 'pino';
import type { Actor, StateValue } from 'xstate';
import type { SessionStore } from '../adapters/session-store.js';
import type { Connection } from '../adapters/socket-server.js';
import type { Settings } from '../config/types.js';
import { PROTOCOL_VERSION } from '../constants.js';
import type { daemonMachine } from '../machines/daemon.machine.js';
import type { SessionRecord } from '../sessions/records.js';
import type { SessionBus } from '../sessions/session-bus.js';
import type { Request, RequestOf } from './messages.js';
import type { ReloadReply, ReplyBody } from './replies.js';

/** What a socket message handler may use of the running daemon. */
export interface DaemonHandle {
  actor: Actor<typeof daemonMachine>;
  bus: SessionBus;
  store: SessionStore<SessionRecord>;
  settings: Settings;
  instanceId: string;
  startedAt: number;
  version: string;
  log: Logger;
  /** Newest finished sessions first, kept in memory for `status`. */
  recent: SessionRecord[];
  newSessionId(): string;
  /** Re-reads the configuration file (SIGHUP, the `reload` request); never rejects. */
  reload(trigger: 'SIGHUP' | 'request'): Promise<ReloadReply>;
}

export type Handler<T extends Request['type']> = (
  request: RequestOf<T>,
  connection: Connection,
  daemon: DaemonHandle,
) => void;

/** Sends one reply to a request, with the protocol version and the request's id. */
export function reply(
  connection: Connection,
  request: { id?: string | undefined },
  message: ReplyBody,
): void {
  connection.send({
    v: PROTOCOL_VERSION,
    ...(request.id === undefined ? {} : { id: request.id }),
    ...message,
  });
}

export function stateName(value: StateValue): string {
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([key, inner]) => (inner === undefined ? key : `${key}.${stateName(inner)}`))
    .join(',');
}
