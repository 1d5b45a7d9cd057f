import type { Reply as DaemonReply } from '../protocol/replies.js';

/** What the client makes of a line that is not a reply, or of no answer at all. */
export type ClientSideError = { type: 'error'; code: 'bad_reply' | 'no_answer'; message: string };

/** A reply from the daemon (one JSON object per line), or what the client makes of a line that is not one. */
export type Reply = DaemonReply | ClientSideError;

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
const DIGEST: Shape = { object: { bytes: 'number', sha256: 'string' } };
/** A session record, every field (sessions/records.ts has the schema): history, show, status and outcomes carry them. */
const RECORD: Shape = {
  object: {
    version: 'number',
    id: 'string',
    agent: 'string',
    repo: 'string',
    workUnit: optional('string'),
    timeoutMs: optional('number'),
    request: optional(DIGEST),
    inputs: optional({ array: { object: { bytes: 'number', sha256: 'string', name: 'string' } } }),
    key: optional('string'),
    acceptedAt: 'string',
    scheduledFor: optional('string'),
    startedAt: optional('string'),
    finishedAt: optional('string'),
    phase: 'string',
    phases: { array: { object: { phase: 'string', at: 'string' } } },
    container: optional('string'),
    image: optional('string'),
    imageId: optional('string'),
    imageDigest: optional('string'),
    commit: optional('string'),
    recordDir: optional('string'),
    outputLimit: optional('number'),
    output: optional({
      object: {
        files: 'number',
        bytes: 'number',
        truncated: 'boolean',
        skipped: 'number',
        missing: optional('string'),
        damaged: optional('string'),
      },
    }),
    timings: optional({ record: 'number' }),
    host: optional('string'),
    containerCallStarted: optional('boolean'),
    decided: optional({
      object: {
        outcome: 'string',
        kind: optional('string'),
        phase: 'string',
        exitCode: optional('number'),
        signal: optional('string'),
        message: optional('string'),
      },
    }),
    outcome: optional('string'),
    kind: optional('string'),
    exitCode: optional('number'),
    signal: optional('string'),
    message: optional('string'),
    durationMs: optional('number'),
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
  recent: { array: RECORD },
  schedules: optional({ array: SCHEDULE }),
};

/** Where `value` departs from `shape` (`running[0].elapsedMs is missing`), or undefined. */
export function shapeProblem(value: unknown, shape: Shape, path: string): string | undefined {
  const problem = departure(value, shape);
  if (problem === undefined) return undefined;
  // The path is put together only for a departure: a history of 200 records checks some 8,000 fields.
  let where = path;
  for (const step of problem.path.reverse()) {
    where = typeof step === 'number' ? `${where}[${step}]` : where === '' ? step : `${where}.${step}`;
  }
  return `${where} ${problem.what}`;
}

/** How `value` departs from `shape`: what is wrong, and where, innermost step last once reversed. */
function departure(value: unknown, shape: Shape): { path: (string | number)[]; what: string } | undefined {
  if (typeof shape === 'string') {
    if (typeof value === shape) return undefined;
    return { path: [], what: value === undefined ? 'is missing' : `is not a ${shape}` };
  }
  if ('optional' in shape) return value === undefined ? undefined : departure(value, shape.optional);
  if (value === undefined) return { path: [], what: 'is missing' };
  if ('array' in shape) {
    if (!Array.isArray(value)) return { path: [], what: 'is not a list' };
    for (let index = 0; index < value.length; index++) {
      const problem = departure(value[index], shape.array);
      if (problem !== undefined) {
        problem.path.push(index);
        return problem;
      }
    }
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { path: [], what: 'is not an object' };
  }
  const fields = value as Record<string, unknown>;
  if ('record' in shape) {
    for (const key in fields) {
      if (!Object.hasOwn(fields, key)) continue;
      const problem = departure(fields[key], shape.record);
      if (problem !== undefined) {
        problem.path.push(key);
        return problem;
      }
    }
    return undefined;
  }
  for (const key in shape.object) {
    const problem = departure(
      Object.hasOwn(fields, key) ? fields[key] : undefined,
      shape.object[key] as Shape,
    );
    if (problem !== undefined) {
      problem.path.push(key);
      return problem;
    }
  }
  return undefined;
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

const HOST: Shape = {
  object: {
    name: 'string',
    url: optional('string'),
    state: 'string',
    drained: 'boolean',
    running: 'number',
    maxSessions: 'number',
    labels: { record: 'string' },
    version: optional('string'),
    lastProbe: optional({
      object: { at: 'string', ok: 'boolean', ms: optional('number'), error: optional('string') },
    }),
    problem: optional('string'),
    downSince: optional('string'),
  },
};
const NAMES: Shape = { array: 'string' };

/**
 * Every reply's fields besides `v`, `id` and `type`, by its type, as protocol/replies.ts has them (enums and
 * literals by the type of their values; of a list of answers, each one's `type`). The client checks each
 * reply it reads against its table (client.ts), so that no command prints `{}`, `undefined` or "unexpected
 * error" for a reply that has the right type and not its fields. By hand rather than with zod, which would
 * add some 100 ms to every command; test/unit/reply-check.test.ts holds each table to the schema.
 */
export const REPLY_SHAPES: Record<string, Record<string, Shape>> = {
  error: {
    code: 'string',
    message: 'string',
    problems: { array: { object: { path: 'string', message: 'string' } } },
    retryable: 'boolean',
    supported: optional({ array: 'number' }),
  },
  hello: {
    protocol: 'number',
    protocols: { array: 'number' },
    version: 'string',
    pid: 'number',
    instanceId: 'string',
    state: 'string',
  },
  accepted: { sessionId: 'string', queued: 'boolean', position: 'number', existing: optional('boolean') },
  rejected: { sessionId: optional('string'), code: 'string', reason: 'string', retryable: 'boolean' },
  phase: { sessionId: 'string', agent: optional('string'), phase: 'string' },
  output: {
    sessionId: 'string',
    line: 'string',
    seq: optional('number'),
    stream: optional('string'),
    time: optional('string'),
    cont: optional('boolean'),
    skipped: optional({
      object: { fromSeq: 'number', toSeq: 'number', count: 'number', reason: 'string' },
    }),
  },
  heartbeat: {},
  closing: { reason: 'string', message: 'string' },
  outcome: { sessionId: 'string', agent: optional('string'), outcome: optional('string'), record: RECORD },
  session: { sessionId: 'string', record: RECORD },
  history: { sessions: { array: RECORD }, more: 'number' },
  agents: { agents: { array: { object: AGENT_SHAPE } } },
  cancelling: { sessionId: 'string', wasQueued: 'boolean' },
  status: STATUS_SHAPE,
  'event.result': {
    event: { object: { type: 'string' } },
    answers: { array: { object: { type: 'string' } } },
    state: 'string',
  },
  state: {
    state: 'string',
    running: { array: { object: { id: 'string', agent: 'string', phase: 'string' } } },
    queued: NAMES,
  },
  reloaded: {
    file: 'string',
    agents: NAMES,
    added: NAMES,
    changed: NAMES,
    removed: NAMES,
    counts: { object: { agents: 'number', added: 'number', changed: 'number', removed: 'number' } },
    maxSessions: 'number',
    restartNeeded: { array: { object: { key: 'string', from: 'string', to: 'string' } } },
    message: 'string',
  },
  reload_failed: { file: 'string', message: 'string' },
  hosts: { hosts: { array: HOST } },
  drained: { host: 'string', drained: 'boolean' },
};

/**
 * A reply of a type the protocol has, without the fields its table gives it, as the `bad_reply` error it
 * is; else undefined (a type the protocol does not have is left to the command, which says it did not
 * expect it).
 */
export function checkReply(reply: { type: string }): ClientSideError | undefined {
  if (!Object.hasOwn(REPLY_SHAPES, reply.type)) return undefined;
  const shape = REPLY_SHAPES[reply.type] as Record<string, Shape>;
  const problem = shapeProblem(reply, { object: shape }, '');
  return problem === undefined ? undefined : badReply(reply.type, problem);
}

function badReply(type: string, problem: string): ClientSideError {
  return {
    type: 'error',
    code: 'bad_reply',
    message: `the daemon sent a malformed ${type} reply (${problem}); is something other than agentd listening on the socket?`,
  };
}
