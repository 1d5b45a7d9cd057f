import { SessionFilesExistError, StagedFilesFullError } from '../adapters/session-files.js';
import { StateDirError } from '../adapters/state-files.js';
import type { RejectionCode, TriggerFields } from '../sessions/check-trigger.js';
import { manifestOf, payloadProblem, type WorkManifest, type WorkPayload } from '../sessions/work.js';
import type { DaemonPort } from './context.js';

/** What became of a trigger: the session it made (or, for a repeated key, the key's first one), or why not. */
export type Submitted =
  | { accepted: true; sessionId: string; queued: boolean; position: number; existing: boolean }
  | { accepted: false; code: RejectionCode; reason: string };

/**
 * Triggers whose files are being written at once, from every front end: each holds its decoded request
 * and inputs (up to 9 MiB) until they are on disk, and a client pipelining triggers would otherwise have
 * the daemon hold all of them. Beyond, a trigger is turned away for now (`queue_full`, retry).
 */
export const MAX_STAGING = 4;
let staging = 0;

/** What submitTrigger uses of the daemon. */
export type SubmitPort = Pick<DaemonPort, 'send' | 'stage' | 'unstage' | 'makesNoSession' | 'turnedAway'>;

/** A trigger turned away before the machine saw it, counted (the machine's own rejections are counted where it answers). */
export function turnedAway(
  daemon: Pick<DaemonPort, 'turnedAway'>,
  code: RejectionCode,
  reason: string,
): { accepted: false; code: RejectionCode; reason: string } {
  daemon.turnedAway?.(code);
  return { accepted: false, code, reason };
}

/**
 * A trigger from any front end (the socket's `trigger`, the HTTP API's POST /v1/sessions): its request
 * and input files are staged where the session will find them, the daemon machine decides, and what
 * was staged for a session that was not made is removed again. A trigger the machine makes no session
 * of whatever it carries (the daemon is not `ready`, a repeated key, a full queue, a rule it breaks) is
 * decided without staging anything: writing and syncing its files only to delete them held the event
 * loop, and a client could repeat that without end. A trigger without files is decided at once (in the
 * same turn: the caller's reply comes before anything the session publishes); one with files once they
 * are on disk (a promise), the machine asked only then.
 */
export function submitTrigger(
  daemon: SubmitPort,
  sessionId: string,
  fields: TriggerFields,
  payload?: WorkPayload,
): Submitted | Promise<Submitted> {
  const event = { type: 'trigger' as const, sessionId, ...fields };
  if (payload === undefined || (payload.request === undefined && payload.inputs.length === 0)) {
    return submitted(daemon.send(event)[0]);
  }
  const problem = payloadProblem(payload);
  if (problem !== undefined) return turnedAway(daemon, 'bad_input', problem);
  // The machine answers it (a rejection, or a repeated key's session) with its own words.
  if (daemon.makesNoSession(sessionId, fields)) return submitted(daemon.send(event)[0]);
  if (staging >= MAX_STAGING) {
    return turnedAway(
      daemon,
      'queue_full',
      `${MAX_STAGING} triggers' files are being written; retry when they are`,
    );
  }
  staging++;
  return stage(daemon, sessionId, payload)
    .then((staged): Submitted => {
      if ('code' in staged) return turnedAway(daemon, staged.code, staged.reason);
      const answer = daemon.send({ ...event, work: staged.work })[0];
      // Staged for a session that was not made (rejected, or the key's first session is answered).
      if (answer?.type !== 'trigger.accepted' || answer.existing) daemon.unstage(sessionId);
      return submitted(answer);
    })
    .finally(() => {
      staging--;
    });
}

function submitted(answer: ReturnType<DaemonPort['send']>[number] | undefined): Submitted {
  if (answer?.type === 'trigger.accepted') {
    return {
      accepted: true,
      sessionId: answer.sessionId,
      queued: answer.queued,
      position: answer.position,
      existing: answer.existing === true,
    };
  }
  if (answer?.type === 'trigger.rejected')
    return { accepted: false, code: answer.code, reason: answer.reason };
  return { accepted: false, code: 'not_accepting', reason: 'the daemon is not accepting triggers' };
}

/**
 * Writes the trigger's request and input files into the session's work dir before the machine sees the
 * trigger (which then carries their digests only). A state dir that cannot take them refuses the
 * trigger as it refuses a record.
 */
async function stage(
  daemon: Pick<DaemonPort, 'stage'>,
  sessionId: string,
  payload: WorkPayload,
): Promise<{ work: WorkManifest } | { code: RejectionCode; reason: string }> {
  try {
    await daemon.stage(sessionId, payload);
  } catch (error) {
    if (error instanceof StagedFilesFullError) return { code: 'queue_full', reason: error.message };
    if (error instanceof SessionFilesExistError) return { code: 'duplicate_session', reason: error.message };
    const full = error instanceof StateDirError && error.full;
    return {
      code: full ? 'state_dir_full' : 'state_dir_unwritable',
      reason: error instanceof Error ? error.message : String(error),
    };
  }
  return { work: manifestOf(payload) };
}
