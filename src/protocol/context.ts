import type { Logger } from 'pino';
import type { Connection } from '../adapters/socket-server.js';
import { PROTOCOL_VERSION } from '../constants.js';
import type { ClientEvent, DaemonEmitted } from '../machines/daemon.machine.js';
import type { SessionRecord } from '../sessions/records.js';
import type { BusEvent } from '../sessions/session-bus.js';
import type { WorkPayload } from '../sessions/work.js';
import type { Request, RequestOf } from './messages.js';
import type { HostStatus, ReloadReply, ReplyBody, ReplyOf } from './replies.js';

/** The daemon as a socket handler sees it: what `status` shows of it. */
export type DaemonStatus = Omit<ReplyOf<'status'>, 'v' | 'id' | 'type'>;
/** The daemon's state and its live sessions, as `subscribe` streams them. */
export type DaemonState = Omit<ReplyOf<'state'>, 'v' | 'id' | 'type'>;

/**
 * What a socket message handler may use of the running daemon: a small port, not the machine. The
 * daemon implements it (src/daemon/port.ts) over its machine and its session journal.
 */
export interface DaemonPort {
  /** The daemon machine's state, e.g. `ready` or `shutdown.draining`. */
  state(): string;
  /** Sends one client event to the daemon machine and returns what it answered to it. */
  send(event: ClientEvent): DaemonEmitted[];
  /** Everything `status` reports. */
  status(): DaemonStatus;
  /** The state and the running and queued sessions; `watch` calls back whenever they may have changed. */
  sessions(): DaemonState;
  watch(listener: () => void): () => void;
  /** Every host with its state, sessions and last probe (`agentd hosts`). */
  hosts(): HostStatus[];
  /** A session's phases, output and outcome as they happen; returns a function that stops following. */
  follow(sessionId: string, listener: (event: BusEvent) => void): () => void;
  /** A session's record and the lines of its stored output; undefined for an unknown session. */
  readLog(sessionId: string): { record: SessionRecord; lines: string[] } | undefined;
  /**
   * Writes a trigger's request and input files where its session will find them, before the trigger is
   * sent; throws a StateDirError when the state dir cannot take them. `unstage` removes them again for a
   * trigger that was not accepted.
   */
  stage(sessionId: string, payload: WorkPayload): void;
  unstage(sessionId: string): void;
  /** Re-reads the configuration file (SIGHUP, the `reload` request); never rejects. */
  reload(trigger: 'SIGHUP' | 'request'): Promise<ReloadReply>;
  newSessionId(): string;
  readonly version: string;
  readonly instanceId: string;
  readonly log: Logger;
}

export type Handler<T extends Request['type']> = (
  request: RequestOf<T>,
  connection: Connection,
  daemon: DaemonPort,
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
