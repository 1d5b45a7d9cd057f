import { StateDirError } from '../../adapters/state-files.js';
import type { RejectionCode } from '../../sessions/check-trigger.js';
import type { BusEvent } from '../../sessions/session-bus.js';
import {
  decodeBase64,
  manifestOf,
  payloadProblem,
  type WorkManifest,
  type WorkPayload,
} from '../../sessions/work.js';
import { type DaemonPort, type Handler, reply } from '../context.js';
import type { RequestOf } from '../messages.js';

/** Accepts a trigger; with `follow`, streams the session's phases and output until its outcome. */
export const trigger: Handler<'trigger'> = (request, connection, daemon) => {
  const sessionId = daemon.newSessionId();
  // Follow before sending: the first phase may be announced while the trigger is processed.
  let unfollow: (() => void) | undefined;
  // Events published while the trigger is processed wait until the "accepted" reply is out.
  let early: BusEvent[] | undefined = [];
  if (request.follow) {
    unfollow = daemon.follow(sessionId, (event: BusEvent) => {
      if (early) {
        early.push(event);
        return;
      }
      forward(event);
    });
    connection.onClose(() => unfollow?.());
  }
  function forward(event: BusEvent): void {
    if (event.type === 'phase') reply(connection, request, { type: 'phase', sessionId, phase: event.phase });
    else if (event.type === 'output')
      reply(connection, request, { type: 'output', sessionId, line: event.line });
    else {
      reply(connection, request, { type: 'outcome', sessionId, record: event.record });
      unfollow?.();
    }
  }

  const { v: _v, id: _id, type: _type, follow: _follow, request: text, inputs, ...fields } = request;
  const staged = stage(daemon, sessionId, text, inputs);
  if ('code' in staged) {
    unfollow?.();
    reply(connection, request, { type: 'rejected', sessionId, ...staged });
    return;
  }
  const answers = daemon.send({
    type: 'trigger',
    sessionId,
    ...fields,
    ...(staged.work === undefined ? {} : { work: staged.work }),
  });
  const answer = answers[0];
  if (answer?.type !== 'trigger.accepted' && staged.work !== undefined) daemon.unstage(sessionId);
  if (answer?.type === 'trigger.accepted') {
    reply(connection, request, {
      type: 'accepted',
      sessionId,
      queued: answer.queued,
      position: answer.position,
    });
    const pending = early;
    early = undefined;
    for (const event of pending) forward(event);
    return;
  }
  unfollow?.();
  reply(connection, request, {
    type: 'rejected',
    sessionId,
    code: answer?.type === 'trigger.rejected' ? answer.code : 'not_accepting',
    reason: answer?.type === 'trigger.rejected' ? answer.reason : 'the daemon is not accepting triggers',
  });
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
