import type { Logger } from 'pino';
import type { Connection } from '../adapters/socket-server.js';
import { PROTOCOL_VERSION, type ProtocolVersion } from '../constants.js';
import type { ClientEvent, DaemonEmitted } from '../machines/daemon.machine.js';
import type { LogSource } from '../runner/session-log.js';
import type { AgentView } from '../sessions/agent-view.js';
import type { RejectionCode, TriggerFields } from '../sessions/check-trigger.js';
import type { HistoryFilter, HistoryPage } from '../sessions/history.js';
import type { SessionRecord } from '../sessions/records.js';
import type { BusEvent } from '../sessions/session-bus.js';
import type { WorkPayload } from '../sessions/work.js';
import type { Request, RequestOf } from './messages.js';
import { describeProblems, type Problem } from './problems.js';
import type { DaemonStateName } from './public-state.js';
import {
  type ErrorCode,
  type HostStatus,
  RETRYABLE_ERRORS,
  type ReloadReply,
  type ReplyBody,
  type ReplyOf,
} from './replies.js';

/** The daemon as a socket handler sees it: what `status` shows of it. */
export type DaemonStatus = Omit<ReplyOf<'status'>, 'v' | 'id' | 'type'>;
/** The daemon's state and its live sessions, as `subscribe` streams them. */
export type DaemonState = Omit<ReplyOf<'state'>, 'v' | 'id' | 'type'>;

/**
 * What a socket message handler may use of the running daemon: a small port, not the machine. The
 * daemon implements it (src/daemon/port.ts) over its machine and its session journal. Everything a
 * client can ask goes through here, so another front end (an HTTP API) can offer the same.
 */
export interface DaemonPort {
  /** The daemon machine's state as clients see it, e.g. `ready` or `shutdown.draining`. */
  state(): DaemonStateName;
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
  /** Every session's phases, output and outcome. */
  followAll(listener: (event: BusEvent) => void): () => void;
  /** A session's record, queued, running or finished; undefined when the daemon keeps none. */
  record(sessionId: string): SessionRecord | undefined;
  /** Kept records that match the filters, newest first. */
  history(filter: HistoryFilter): HistoryPage;
  /** The agents triggers are accepted for now, as clients may see them (no credential value). */
  agents(): AgentView[];
  /**
   * A session's record, and a reader of its stored output after a sequence number (0: from the start);
   * undefined for an unknown session.
   */
  readLog(sessionId: string): { record: SessionRecord; reader: (afterSeq?: number) => LogSource } | undefined;
  /**
   * Writes a trigger's request and input files where its session will find them, before the trigger is
   * sent (in the thread pool); rejects with a StateDirError when the state dir cannot take them. `unstage` removes them again for a
   * trigger that was not accepted.
   */
  stage(sessionId: string, payload: WorkPayload): Promise<void>;
  unstage(sessionId: string): void;
  /**
   * Whether the daemon, as it is now, makes no new session of this trigger whatever files it carries
   * (not `ready`, a repeated key, a rule it breaks): then its files are never staged. Asked in the same
   * turn as the trigger is sent.
   */
  makesNoSession(sessionId: string, fields: TriggerFields): boolean;
  /**
   * A trigger turned away before the daemon machine saw it (its files: bad_input, no room to stage
   * them), counted as the machine's rejections are (agentd_triggers_rejected_total).
   */
  turnedAway?(code: RejectionCode): void;
  /** Re-reads the configuration file (SIGHUP, the `reload` request); never rejects. */
  reload(trigger: 'SIGHUP' | 'request'): Promise<ReloadReply>;
  newSessionId(): string;
  /** How often a stream that asked for them gets a `heartbeat` (default HEARTBEAT_MS); tests make it short. */
  readonly heartbeatMs?: number;
  readonly version: string;
  readonly instanceId: string;
  readonly log: Logger;
}

export type Handler<T extends Request['type']> = (
  request: RequestOf<T>,
  connection: Connection,
  daemon: DaemonPort,
) => void;

/** What a reply needs of its request: the version to answer in and the id to repeat. */
export interface RequestHead {
  v?: ProtocolVersion | undefined;
  id?: string | undefined;
}

/** Sends one reply to a request, in the request's protocol version and with the request's id. */
export function reply(connection: Connection, request: RequestHead, message: ReplyBody): void {
  connection.send({
    v: request.v ?? PROTOCOL_VERSION,
    ...(request.id === undefined ? {} : { id: request.id }),
    ...message,
  });
}

/** Sends an `error` reply: a stable code, a message for people, and every problem for programs. */
export function replyError(
  connection: Connection,
  request: RequestHead,
  code: ErrorCode,
  message: string,
  problems: Problem[] = [],
  extra: { supported?: number[] } = {},
): void {
  connection.send(errorReply(request, code, message, problems, extra));
}

/** The message of `unknown_session`: the daemon has no record of the session. */
export function noSuchSession(sessionId: string): string {
  return `no session ${sessionId}; see \`agentd history\` for known sessions`;
}

/** An `error` reply as it goes on the wire. */
export function errorReply(
  request: RequestHead,
  code: ErrorCode,
  message: string,
  problems: Problem[] = [],
  extra: { supported?: number[] } = {},
): object {
  const body: ReplyBody = {
    type: 'error',
    code,
    // A bad request's message names each problem; the other codes' messages say it all.
    message:
      code === 'bad_request' ? `${message}: ${describeProblems(problems)}; see docs/protocol.md` : message,
    problems,
    retryable: RETRYABLE_ERRORS.includes(code),
    ...extra,
  };
  return {
    v: request.v ?? PROTOCOL_VERSION,
    ...(request.id === undefined ? {} : { id: request.id }),
    ...body,
  };
}
