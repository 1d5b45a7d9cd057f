import { z } from 'zod';
import { PROTOCOL_VERSION } from '../constants.js';

const sessionId = z.string().regex(/^[0-9a-f]{16}$/, 'a session id is 16 lowercase hex characters');
const text = (max: number) => z.string().min(1).max(max);

/** Fields of a trigger, shared by the `trigger` request and an injected `trigger` event. */
export const triggerFields = {
  agent: text(64),
  repo: text(2048).optional(),
  workUnit: text(256).optional(),
  timeout: text(32).optional(),
};

/** Events of the daemon machine that clients may send (`agentd send`, the `event` request). */
export const daemonEventSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('trigger'), sessionId: sessionId.optional(), ...triggerFields }),
  z.strictObject({ type: z.literal('cancel'), sessionId }),
  z.strictObject({ type: z.literal('shutdown') }),
]);
export type InjectedEvent = z.infer<typeof daemonEventSchema>;

const base = { v: z.literal(PROTOCOL_VERSION), id: z.string().max(128).optional() };

export const requestSchema = z.discriminatedUnion('type', [
  z.strictObject({ ...base, type: z.literal('hello'), client: z.string().max(128).optional() }),
  z.strictObject({ ...base, type: z.literal('trigger'), ...triggerFields, follow: z.boolean().optional() }),
  z.strictObject({ ...base, type: z.literal('status') }),
  z.strictObject({ ...base, type: z.literal('cancel'), sessionId }),
  z.strictObject({ ...base, type: z.literal('logs'), sessionId, follow: z.boolean().optional() }),
  z.strictObject({ ...base, type: z.literal('event'), event: daemonEventSchema }),
  z.strictObject({ ...base, type: z.literal('subscribe') }),
  z.strictObject({ ...base, type: z.literal('reload') }),
]);
export type Request = z.infer<typeof requestSchema>;
export type RequestOf<T extends Request['type']> = Extract<Request, { type: T }>;
export const REQUEST_TYPES = [
  'hello',
  'trigger',
  'status',
  'cancel',
  'logs',
  'event',
  'subscribe',
  'reload',
] as const;

/**
 * The answer to `reload` (and what SIGHUP logs): `reloaded` when the new configuration is in force,
 * `reload_failed` with every problem when the old one was kept. Shared by the daemon and the CLI.
 */
export const reloadReplySchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('reloaded'),
    file: z.string(),
    agents: z.array(z.string()),
    added: z.array(z.string()),
    changed: z.array(z.string()),
    removed: z.array(z.string()),
    maxSessions: z.number(),
    /** Settings that differ in the file but apply only after a restart (socket, state dir, ...). */
    restartNeeded: z.array(z.object({ key: z.string(), from: z.string(), to: z.string() })),
    message: z.string(),
  }),
  z.object({ type: z.literal('reload_failed'), file: z.string(), message: z.string() }),
]);
export type ReloadReply = z.infer<typeof reloadReplySchema>;

/** Turns zod issues into one line that names each field and what it expects. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.join('.') : 'message';
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}
