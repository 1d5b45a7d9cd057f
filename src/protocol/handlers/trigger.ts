import { RETRYABLE_REJECTIONS, type RejectionCode } from '../../sessions/check-trigger.js';
import type { BusEvent } from '../../sessions/session-bus.js';
import { decodeBase64, type WorkPayload } from '../../sessions/work.js';
import { type Handler, reply } from '../context.js';
import { followSession, forwardEvent } from '../follow.js';
import { Follower } from '../follower.js';
import type { RequestOf } from '../messages.js';
import { oweStream } from '../streams.js';
import { type Submitted, submitTrigger } from '../submit.js';

/** Accepts a trigger; with `follow`, streams the session's phases and output until its outcome. */
export const trigger: Handler<'trigger'> = (request, connection, daemon) => {
  const sessionId = daemon.newSessionId();
  // Follow before sending: the first phase may be announced while the trigger is processed.
  let unfollow: (() => void) | undefined;
  // Events published while the trigger is processed wait until the "accepted" reply is out.
  let early: BusEvent[] | undefined = [];
  const follower = new Follower(connection, request, sessionId);
  // A client that prints no output is sent none: serialising it cost the daemon a third of its time
  // with sessions printing fast (docs/benchmarks.md).
  const withOutput = request.output !== false;
  const forward = (event: BusEvent) => {
    if (!withOutput && event.type === 'output') return;
    if (forwardEvent(follower, event)) unfollow?.();
  };
  if (request.follow) {
    // One of the connection's streams until the outcome (or the connection's end), with its heartbeats.
    const settled = oweStream(connection, request, daemon);
    let forgetClose: (() => void) | undefined;
    const stop = daemon.follow(sessionId, (event: BusEvent) => {
      if (early) early.push(event);
      else forward(event);
    });
    unfollow = () => {
      stop();
      settled();
      // Ended (its outcome, or turned away): the connection, which may stay open, no longer holds it.
      forgetClose?.();
    };
    forgetClose = connection.onClose(() => {
      unfollow?.();
      follower.stop();
    });
  }

  const {
    v: _v,
    id: _id,
    type: _type,
    follow: _follow,
    output: _output,
    heartbeat: _heartbeat,
    request: text,
    inputs,
    ...fields
  } = request;
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
  const payload = decoded(text, inputs);
  if ('code' in payload) {
    daemon.turnedAway?.(payload.code);
    rejected(payload.code, payload.reason);
    return;
  }
  const finish = (submitted: Submitted) => {
    if (!submitted.accepted) {
      rejected(submitted.code, submitted.reason);
      return;
    }
    accepted(submitted);
  };
  const accepted = (submitted: Extract<Submitted, { accepted: true }>) => {
    reply(connection, request, {
      type: 'accepted',
      sessionId: submitted.sessionId,
      queued: submitted.queued,
      position: submitted.position,
      ...(submitted.existing ? { existing: true } : {}),
    });
    const pending = early ?? [];
    early = undefined;
    if (submitted.existing) {
      // The key's first session: follow that one (in this tick, so nothing falls in between).
      unfollow?.();
      if (request.follow) {
        followSession(connection, request, daemon, submitted.sessionId, { stream: true, output: withOutput });
      }
      return;
    }
    for (const event of pending) forward(event);
  };
  // A trigger with files is answered once they are on disk (in the thread pool); one without at once.
  const submitted = submitTrigger(daemon, sessionId, fields, payload.payload);
  if (submitted instanceof Promise) {
    // Owed until answered: a client that ended its side after sending still gets its session id.
    const settled = connection.owe();
    submitted
      .then(finish, (error: unknown) => {
        daemon.turnedAway?.('state_dir_unwritable');
        rejected('state_dir_unwritable', error instanceof Error ? error.message : String(error));
      })
      .catch(() => {
        // The connection went away meanwhile: nobody is left to answer.
      })
      .finally(settled);
  } else finish(submitted);
};

/** The request and input files of a trigger request, decoded from base64. */
function decoded(
  text: RequestOf<'trigger'>['request'],
  inputs: RequestOf<'trigger'>['inputs'],
): { payload?: WorkPayload } | { code: RejectionCode; reason: string } {
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
  return { payload };
}
