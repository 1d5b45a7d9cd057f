import type { ClientSideError, Reply } from './client.js';

/**
 * Replies that the CLI takes for success only when they have the protocol's shape: a line with the right
 * `type` and nothing else (another program on the socket, a broken daemon) must fail as `bad_reply`, not
 * print `{}` or `session undefined succeeded` and exit 0.
 */

/** What a field holds, as far as the CLI relies on it. `?` marks an optional field. */
export type Shape =
  | 'string'
  | 'number'
  | 'boolean'
  | { optional: Shape }
  | { array: Shape }
  /** An object of any keys, each value of this shape. */
  | { record: Shape }
  | { object: Record<string, Shape> };

const optional = (shape: Shape): Shape => ({ optional: shape });

const RUNNING: Shape = {
  object: {
    id: 'string',
    agent: 'string',
    repo: 'string',
    host: optional('string'),
    workUnit: optional('string'),
    phase: 'string',
    startedAt: 'string',
    elapsedMs: 'number',
  },
};
const QUEUED: Shape = {
  object: {
    id: 'string',
    agent: 'string',
    repo: 'string',
    workUnit: optional('string'),
    position: 'number',
    acceptedAt: 'string',
    waitingMs: 'number',
  },
};
const SCHEDULE: Shape = {
  object: {
    agent: 'string',
    cron: 'string',
    timezone: optional('string'),
    overlap: 'string',
    catchUp: 'string',
    next: optional('string'),
    failed: optional('string'),
    attempts: optional('number'),
    retryAt: optional('string'),
  },
};
/** The fields of a session record that `status` shows (the record has more; --json passes them on). */
const RECENT: Shape = {
  object: {
    id: 'string',
    agent: 'string',
    repo: 'string',
    host: optional('string'),
    outcome: optional('string'),
    kind: optional('string'),
    exitCode: optional('number'),
    durationMs: optional('number'),
    finishedAt: optional('string'),
  },
};

/**
 * A `status` reply's fields. Checked by hand rather than through the protocol's zod schema
 * (protocol/replies.ts): loading zod adds about 50 ms to every `agentd status`, which the quick path
 * keeps near 80; test/unit/reply-check.test.ts holds this table to the schema.
 */
export const STATUS_SHAPE: Record<string, Shape> = {
  state: 'string',
  pid: 'number',
  version: 'string',
  instanceId: 'string',
  socket: 'string',
  uptimeMs: 'number',
  degraded: optional('string'),
  failed: optional('string'),
  failedHosts: optional({
    array: {
      object: {
        name: 'string',
        problem: 'string',
        attempts: optional('number'),
        retryAt: optional('string'),
      },
    },
  }),
  noHost: optional('string'),
  unsealed: optional({
    object: {
      count: 'number',
      oldest: 'string',
      oldestFinishedAt: optional('string'),
      waitingMs: optional('number'),
    },
  }),
  maxSessions: 'number',
  running: { array: RUNNING },
  queued: { array: QUEUED },
  recent: { array: RECENT },
  schedules: optional({ array: SCHEDULE }),
};

/** Where `value` departs from `shape` (`running[0].elapsedMs is missing`), or undefined. */
export function shapeProblem(value: unknown, shape: Shape, path: string): string | undefined {
  if (typeof shape === 'object' && 'optional' in shape) {
    return value === undefined ? undefined : shapeProblem(value, shape.optional, path);
  }
  if (value === undefined) return `${path} is missing`;
  if (typeof shape === 'string') return typeof value === shape ? undefined : `${path} is not a ${shape}`;
  if ('array' in shape) {
    if (!Array.isArray(value)) return `${path} is not a list`;
    for (const [index, item] of value.entries()) {
      const problem = shapeProblem(item, shape.array, `${path}[${index}]`);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${path} is not an object`;
  if ('record' in shape) {
    for (const [key, item] of Object.entries(value)) {
      const problem = shapeProblem(item, shape.record, `${path}.${key}`);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  for (const [key, field] of Object.entries(shape.object)) {
    const problem = shapeProblem(
      (value as Record<string, unknown>)[key],
      field,
      path === '' ? key : `${path}.${key}`,
    );
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** A `status` reply without the fields `agentd status` shows, as the `bad_reply` error it is; else undefined. */
export function checkStatusReply(reply: Reply): ClientSideError | undefined {
  const problem = shapeProblem(reply, { object: STATUS_SHAPE }, '');
  return problem === undefined ? undefined : badReply('status', problem);
}

/**
 * An `outcome` reply whose record lacks what the CLI shows and decides the exit code by (checked with the
 * protocol's record schema), as a `bad_reply` error; else undefined. zod is loaded here, once the outcome
 * has come (the end of a wait), not at every start.
 */
export async function checkOutcomeReply(reply: Reply): Promise<ClientSideError | undefined> {
  const [{ z }, { sessionRecordSchema }] = await Promise.all([
    import('zod'),
    import('../sessions/records.js'),
  ]);
  // What outcomeLine, outcomeJson and exitCodeForRecord read; the rest of the record is the daemon's.
  const schema = z.object({
    record: sessionRecordSchema.pick({
      id: true,
      agent: true,
      outcome: true,
      kind: true,
      exitCode: true,
      signal: true,
      message: true,
      durationMs: true,
    }),
  });
  const result = schema.safeParse(reply);
  if (result.success) return undefined;
  const issue = result.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? 'reply' : issue.path.map(String).join('.');
  return badReply('outcome', `${where}: ${issue?.message ?? 'does not match the protocol'}`);
}

/**
 * One agent of an `agents` reply, as `agentd agents` prints it (sessions/agent-view.ts has the schema; the
 * fields a daemon before them did not send are optional). Checked by hand, as the status reply is, rather
 * than with zod, which made every `agentd agents` some 100 ms slower; test/unit/agent-view.test.ts holds
 * this table to the schema.
 */
export const AGENT_SHAPE: Record<string, Shape> = {
  name: 'string',
  image: 'string',
  command: { array: 'string' },
  repo: optional('string'),
  timeoutMs: optional('number'),
  network: 'string',
  env: { array: 'string' },
  credentials: { array: { object: { name: 'string', source: 'string' } } },
  repoToken: optional({ object: { source: 'string', origins: { array: 'string' }, required: 'boolean' } }),
  resources: {
    object: {
      memory: 'string',
      memorySwap: 'string',
      cpus: optional('number'),
      pids: 'number',
      disk: 'string',
      output: optional('string'),
      cache: optional('string'),
    },
  },
  capAdd: { array: 'string' },
  userNamespace: optional('string'),
  mounts: optional({ array: { object: { source: 'string', target: 'string', readOnly: 'boolean' } } }),
  context: optional('string'),
  caches: optional({ array: { object: { name: 'string', target: 'string' } } }),
  hosts: optional({ array: 'string' }),
  hostLabels: optional({ record: 'string' }),
  notify: optional({
    array: { object: { url: 'string', secret: 'string', outcomes: optional({ array: 'string' }) } },
  }),
  maxConcurrent: optional('number'),
  schedule: optional({
    object: {
      cron: 'string',
      timezone: optional('string'),
      workUnit: optional('string'),
      overlap: 'string',
      catchUp: 'string',
      next: optional('string'),
      failed: optional('string'),
    },
  }),
};

/**
 * An `agents` reply that is not a list of agents as `agentd agents` prints them, as the `bad_reply`
 * error it is; else undefined. Without it, `agentd agents --json` printed `{}` and exited 0 for
 * `{"type":"agents"}`, and the text view failed with "Cannot read properties of undefined".
 */
export function checkAgentsReply(reply: Reply): ClientSideError | undefined {
  const problem = shapeProblem(reply, { object: { agents: { array: { object: AGENT_SHAPE } } } }, '');
  return problem === undefined ? undefined : badReply('agents', problem);
}

function badReply(type: string, problem: string): ClientSideError {
  return {
    type: 'error',
    code: 'bad_reply',
    message: `the daemon sent a malformed ${type} reply (${problem}); is something other than agentd listening on the socket?`,
  };
}
