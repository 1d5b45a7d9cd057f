import { z } from 'zod';
import { OUTCOMES, SESSION_PHASES } from './types.js';

export const outcomeSchema = z.enum(OUTCOMES);
export const phaseSchema = z.enum(SESSION_PHASES);
const digestSchema = z.object({ bytes: z.number(), sha256: z.string() });

/** A session as written to the state dir: enough to answer `status` and to recover after a crash. */
export const sessionRecordSchema = z.object({
  version: z.literal(1),
  id: z.string(),
  agent: z.string(),
  repo: z.string(),
  workUnit: z.string().optional(),
  timeoutMs: z.number().optional(),
  /** Digests of what the trigger handed over; the content is in the work dir while the session runs. */
  request: digestSchema.optional(),
  inputs: z.array(digestSchema.extend({ name: z.string() })).optional(),
  acceptedAt: z.string(),
  /** The schedule firing that made the session (ISO time); unset for a triggered one. */
  scheduledFor: z.string().optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  phase: phaseSchema,
  phases: z.array(z.object({ phase: phaseSchema, at: z.string() })),
  container: z.string().optional(),
  /** The image the container ran: the reference, its id and its registry digest (when it has one). */
  image: z.string().optional(),
  imageId: z.string().optional(),
  imageDigest: z.string().optional(),
  /** The commit the clone checked out. */
  commit: z.string().optional(),
  outcome: outcomeSchema.optional(),
  exitCode: z.number().optional(),
  signal: z.string().optional(),
  message: z.string().optional(),
  durationMs: z.number().optional(),
});
export type SessionRecord = z.infer<typeof sessionRecordSchema>;
