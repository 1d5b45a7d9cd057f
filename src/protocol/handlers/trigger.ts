import { StateDirError } from '../../adapters/state-files.js';
import { RETRYABLE_REJECTIONS, type RejectionCode } from '../../sessions/check-trigger.js';
import type { BusEvent } from '../../sessions/session-bus.js';
import {
  decodeBase64,
  manifestOf,
  payloadProblem,
  type WorkManifest,
  type WorkPayload,
} from '../../sessions/work.js';
import { type DaemonPort, type Handler, reply } from '../context.js';
import { followReply, followSession } from '../follow.js';
import type { RequestOf } from '../messages.js';

/** Accepts a trigger; with `follow`, streams the session's phases and output until its outcome. */
export const trigger: Handler<'trigger'> = (request, connection, daemon) => {
  const sessionId = daemon.newSessionId();
  // Follow before sending: the first phase may be announced while the trigger is processed.
  let unfollow: (() => void) | undefined;
  // Events published while the trigger is processed wait until the "accepted" reply is out.
  let early: BusEvent[] | undefined = [];
  const forward = (event: BusEvent) => {
    const message = followReply(event);
    if (message) reply(connection, request, message);
    if (event.type === 'outcome') unfollow?.();
  };
  if (request.follow) {
    unfollow = daemon.follow(sessionId, (event: BusEvent) => {
      if (early) early.push(event);
      else forward(event);
    });
    connection.onClose(() => unfollow?.());
  }

  const { v: _v, id: _id, type: _type, follow: _follow, request: text, inputs, ...fields } = request;
  const rejected = (code: RejectionCode, reason: string) => {
    unfollow?.();
    reply(connection, request, {
      type: 'rejected',
      // Version 1 sent the id the session would have had; it means nothing, so version 2 leaves it out.
      ...(request.v === 1 ? { sessionId } : {}),
      code,
      reason,
      retryable: RETRYABLE_REJECTIONS.includes(code),
    });
  };
  const staged = stage(daemon, sessionId, text, inputs);
  if ('code' in staged) {
    rejected(staged.code, staged.reason);
    return;
  }
  const answer = daemon.send({
    type: 'trigger',
    sessionId,
    ...fields,
    ...(staged.work === undefined ? {} : { work: staged.work }),
  })[0];
  // Staged for a session that was not made (rejected, or the key's first session is answered).
  if ((answer?.type !== 'trigger.accepted' || answer.existing) && staged.work !== undefined) {
    daemon.unstage(sessionId);
  }
  if (answer?.type === 'trigger.accepted') {
    reply(connection, request, {
      type: 'accepted',
      sessionId: answer.sessionId,
      queued: answer.queued,
      position: answer.position,
      ...(answer.existing ? { existing: true } : {}),
    });
    const pending = early;
    early = undefined;
    if (answer.existing) {
      // The key's first session: follow that one (in this tick, so nothing falls in between).
      unfollow?.();
      if (request.follow) followSession(connection, request, daemon, answer.sessionId, { stream: true });
      return;
    }
    for (const event of pending) forward(event);
    return;
  }
  if (answer?.type === 'trigger.rejected') rejected(answer.code, answer.reason);
  else rejected('not_accepting', 'the daemon is not accepting triggers');
};

/**
 * Writes the trigger's request and input files into the session's work dir before the machine sees the
 * trigger (which then carries their digests only). Too large, badly named or undecodable content is
 * refused with bad_input; a state dir that cannot take it, as it refuses a record.
 */
function stage(
  daemon: DaemonPort,
  sessionId: string,
  text: RequestOf<'trigger'>['request'],
  inputs: RequestOf<'trigger'>['inputs'],
): { work?: WorkManifest } | { code: RejectionCode; reason: string } {
  if (text === undefined && (inputs === undefined || inputs.length === 0)) return {};
  const payload: WorkPayload = { inputs: [] };
  if (text !== undefined) {
    const bytes = decodeBase64(text);
    if (bytes === undefined) return { code: 'bad_input', reason: 'the request is not valid base64' };
    payload.request = bytes;
  }
  for (const input of inputs ?? []) {
    const bytes = decodeBase64(input.data);
    if (bytes === undefined) {
      return { code: 'bad_input', reason: `input ${JSON.stringify(input.name)} is not valid base64` };
    }
    payload.inputs.push({ name: input.name, bytes });
  }
  const problem = payloadProblem(payload);
  if (problem !== undefined) return { code: 'bad_input', reason: problem };
  try {
    daemon.stage(sessionId, payload);
  } catch (error) {
    const full = error instanceof StateDirError && error.full;
    return {
      code: full ? 'state_dir_full' : 'state_dir_unwritable',
      reason: error instanceof Error ? error.message : String(error),
    };
  }
  return { work: manifestOf(payload) };
}
