import { z } from 'zod';
import { MAX_INPUT_FILES, MAX_LINE_BYTES, PROTOCOL_VERSION, SESSION_ID_PATTERN } from '../constants.js';
import { triggerFieldsSchema } from '../sessions/check-trigger.js';

/** Byte content in a JSON line: standard base64, with padding. */
const base64 = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')
  .max(MAX_LINE_BYTES);

const sessionId = z.string().regex(SESSION_ID_PATTERN, 'a session id is 16 lowercase hex characters');

/** Events of the daemon machine that clients may send (`agentd send`, the `event` request). */
export const daemonEventSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('trigger'), sessionId: sessionId.optional(), ...triggerFieldsSchema }),
  z.strictObject({ type: z.literal('cancel'), sessionId }),
  z.strictObject({ type: z.literal('shutdown') }),
]);
export type InjectedEvent = z.infer<typeof daemonEventSchema>;

const base = { v: z.literal(PROTOCOL_VERSION), id: z.string().max(128).optional() };

export const requestSchema = z.discriminatedUnion('type', [
  z.strictObject({ ...base, type: z.literal('hello'), client: z.string().max(128).optional() }),
  z.strictObject({
    ...base,
    type: z.literal('trigger'),
    ...triggerFieldsSchema,
    follow: z.boolean().optional(),
    /** The request text, base64 (any bytes); it reaches the agent as the file $AGENTD_REQUEST_FILE. */
    request: base64.optional(),
    /** Input files by content, base64; each reaches the agent as /agentd/input/NAME. */
    inputs: z
      .array(z.strictObject({ name: z.string().min(1).max(128), data: base64 }))
      .max(MAX_INPUT_FILES)
      .optional(),
  }),
  z.strictObject({ ...base, type: z.literal('status') }),
  z.strictObject({ ...base, type: z.literal('cancel'), sessionId }),
  z.strictObject({ ...base, type: z.literal('logs'), sessionId, follow: z.boolean().optional() }),
  z.strictObject({ ...base, type: z.literal('event'), event: daemonEventSchema }),
  z.strictObject({ ...base, type: z.literal('subscribe') }),
  z.strictObject({ ...base, type: z.literal('reload') }),
  z.strictObject({ ...base, type: z.literal('hosts') }),
  z.strictObject({ ...base, type: z.literal('drain'), host: z.string().min(1).max(64) }),
  z.strictObject({ ...base, type: z.literal('undrain'), host: z.string().min(1).max(64) }),
]);
export type Request = z.infer<typeof requestSchema>;
export type RequestOf<T extends Request['type']> = Extract<Request, { type: T }>;
/** A request as a client writes it: the client adds `v`. */
export type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, 'v'> : never) : never;

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
