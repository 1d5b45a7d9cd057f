import { z } from 'zod';
import { OUTCOMES, SESSION_PHASES } from './types.js';

export const outcomeSchema = z.enum(OUTCOMES);
export const phaseSchema = z.enum(SESSION_PHASES);

/** A session as written to the state dir: enough to answer `status` and to recover after a crash. */
export const sessionRecordSchema = z.object({
  version: z.literal(1),
  id: z.string(),
  agent: z.string(),
  repo: z.string(),
  workUnit: z.string().optional(),
  timeoutMs: z.number().optional(),
  acceptedAt: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  phase: phaseSchema,
  phases: z.array(z.object({ phase: phaseSchema, at: z.string() })),
  container: z.string().optional(),
  outcome: outcomeSchema.optional(),
  exitCode: z.number().optional(),
  signal: z.string().optional(),
  message: z.string().optional(),
  durationMs: z.number().optional(),
});
export type SessionRecord = z.infer<typeof sessionRecordSchema>;
