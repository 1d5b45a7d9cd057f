import { CATCH_UPS, OVERLAPS, USER_NAMESPACES } from '../config/types.js';
import { OUTCOME_KINDS } from '../outcome-kinds.js';
import { OUTCOMES } from '../outcomes.js';
import { DAEMON_STATES } from '../protocol/public-state.js';
import type { Reply as DaemonReply } from '../protocol/replies.js';
import { CLOSING_REASONS, ERROR_CODES, HOST_STATES, OUTPUT_STREAMS } from '../protocol/values.js';
import { RECORD_VERSION, REJECTION_CODES, RUN_PHASES, SESSION_PHASES } from '../sessions/types.js';
import { VALUE_FORMATS, type ValueFormat } from '../value-formats.js';
import { inertJson } from '../visible-text.js';

/** What the client makes of a line that is not a reply, or of no answer at all. */
export type ClientSideError = { type: 'error'; code: 'bad_reply' | 'no_answer'; message: string };

/** A reply from the daemon (one JSON object per line), or what the client makes of a line that is not one. */
export type Reply = DaemonReply | ClientSideError;

/**
 * Replies that the CLI takes for success only when they have the protocol's shape: a line with the right
 * `type` and nothing else (another program on the socket, a broken daemon) must fail as `bad_reply`, not
 * print `{}` or `session undefined succeeded` and exit 0.
 */

/**
 * What a field holds, as far as the CLI relies on it: a type, a string of a form (value-formats.ts: an
 * ISO time, a session id, an agent name), or one of the values of a list the protocol enumerates (the
 * very list its zod schema uses, so that the two cannot drift apart).
 */
export type Shape =
  | 'string'
  /** A finite number: JSON's `1e999` reads as Infinity, which zod refuses too. */
  | 'number'
  | 'boolean'
  | ValueFormat
  | { oneOf: readonly (string | number)[] }
  | { optional: Shape }
  | { array: Shape }
  /** An object of any keys, each value of this shape. */
  | { record: Shape }
  | { object: Record<string, Shape> };

const optional = (shape: Shape): Shape => ({ optional: shape });
const oneOf = (values: readonly (string | number)[]): Shape => ({ oneOf: values });
const PHASE = oneOf(SESSION_PHASES);

const RUNNING: Shape = {
  object: {
    id: 'string',
    agent: 'string',
    repo: 'string',
    host: optional('string'),
    workUnit: optional('string'),
    phase: PHASE,
    startedAt: 'time',
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
    acceptedAt: 'time',
    waitingMs: 'number',
  },
};
const SCHEDULE: Shape = {
  object: {
    agent: 'string',
    cron: 'string',
    timezone: optional('string'),
    overlap: oneOf(OVERLAPS),
    catchUp: oneOf(CATCH_UPS),
    next: optional('time'),
    failed: optional('string'),
    attempts: optional('number'),
    retryAt: optional('time'),
  },
};
const DIGEST: Shape = { object: { bytes: 'number', sha256: 'string' } };
/** A session record, every field (sessions/records.ts has the schema): history, show, status and outcomes carry them. */
const RECORD: Shape = {
  object: {
    version: oneOf([RECORD_VERSION]),
    id: 'sessionId',
    agent: 'agentName',
    repo: 'string',
    workUnit: optional('string'),
    timeoutMs: optional('number'),
    request: optional(DIGEST),
    inputs: optional({ array: { object: { bytes: 'number', sha256: 'string', name: 'string' } } }),
    key: optional('string'),
    acceptedAt: 'time',
    scheduledFor: optional('time'),
    startedAt: optional('time'),
    finishedAt: optional('time'),
    phase: PHASE,
    phases: { array: { object: { phase: PHASE, at: 'time' } } },
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
        outcome: oneOf(OUTCOMES),
        kind: optional(oneOf(OUTCOME_KINDS)),
        phase: oneOf(RUN_PHASES),
        exitCode: optional('number'),
        signal: optional('string'),
        message: optional('string'),
      },
    }),
    outcome: optional(oneOf(OUTCOMES)),
    kind: optional(oneOf(OUTCOME_KINDS)),
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
  state: oneOf(DAEMON_STATES),
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
        retryAt: optional('time'),
      },
    },
  }),
  noHost: optional('string'),
  unsealed: optional({
    object: {
      count: 'number',
      oldest: 'string',
      oldestFinishedAt: optional('time'),
      waitingMs: optional('number'),
    },
  }),
  maxSessions: 'number',
  running: { array: RUNNING },
  queued: { array: QUEUED },
  recent: { array: RECORD },
  schedules: optional({ array: SCHEDULE }),
};

/** How a departure from a table is put: what is wrong, where, and whether it is a value this CLI does not know. */
interface Departure {
  /** Keys and indices from the field out to the reply, innermost first (reversed once it is named). */
  path: (string | number)[];
  what: string;
  /** A value of the right type that no list of this CLI has: a daemon newer than it may send one. */
  unknown?: true;
}

/** Where `value` departs from `shape` (`running[0].elapsedMs is missing`), or undefined. */
export function shapeProblem(value: unknown, shape: Shape, path: string): string | undefined {
  const problem = departure(value, shape);
  return problem === undefined ? undefined : named(problem, path);
}

function named(problem: Departure, path: string): string {
  // The path is put together only for a departure: a history of 200 records checks some 8,000 fields.
  let where = path;
  for (const step of problem.path.reverse()) {
    if (typeof step === 'number') where = `${where}[${step}]`;
    // A key of a record (a label, a timing) is the daemon's text: quoted and cut unless it is a plain name.
    else if (!PLAIN_KEY.test(step)) where = `${where}[${shownValue(step)}]`;
    else where = where === '' ? step : `${where}.${step}`;
  }
  return `${where} ${problem.what}`;
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/** How much of a value a problem shows: enough to recognise it, never a flood of it. */
const SHOWN_CHARS = 64;

/**
 * A value as a problem shows it: JSON, cut to its first SHOWN_CHARS characters (the length said), with
 * every character a terminal would act on escaped (ESC, DEL, the C1 controls, bidirectional and invisible
 * ones), whether or not the message reaches a terminal.
 */
export function shownValue(value: string | number): string {
  if (typeof value === 'number') return String(value);
  if (value.length <= SHOWN_CHARS) return inertJson(JSON.stringify(value));
  let cut = value.slice(0, SHOWN_CHARS);
  // Not half of a character: a lone surrogate would be shown as an escape of nothing.
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `${inertJson(JSON.stringify(cut))}... (${value.length} characters)`;
}

/** How `value` departs from `shape`: what is wrong, and where, innermost step last once reversed. */
function departure(value: unknown, shape: Shape): Departure | undefined {
  if (typeof shape === 'string') {
    if (value === undefined) return { path: [], what: 'is missing' };
    switch (shape) {
      case 'number':
        if (typeof value !== 'number') return { path: [], what: 'is not a number' };
        return Number.isFinite(value) ? undefined : { path: [], what: 'is not a finite number' };
      case 'string':
      case 'boolean':
        return typeof value === shape ? undefined : { path: [], what: `is not a ${shape}` };
      default: {
        if (typeof value !== 'string') return { path: [], what: 'is not a string' };
        const format = VALUE_FORMATS[shape];
        return format.test(value)
          ? undefined
          : { path: [], what: `${shownValue(value)} is not ${format.what}` };
      }
    }
  }
  if ('optional' in shape) return value === undefined ? undefined : departure(value, shape.optional);
  if (value === undefined) return { path: [], what: 'is missing' };
  if ('oneOf' in shape) {
    if (shape.oneOf.includes(value as string | number)) return undefined;
    const kind = typeof shape.oneOf[0];
    if (typeof value !== kind) return { path: [], what: `is not a ${kind}` };
    // Every value the list has: the lists are short, and a person can tell which was meant.
    const known = shape.oneOf.map(String).join(', ');
    const shown = shownValue(value as string | number);
    return { path: [], what: `${shown} is not one this agentd knows (${known})`, unknown: true };
  }
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
  userNamespace: optional(oneOf(USER_NAMESPACES)),
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
      overlap: oneOf(OVERLAPS),
      catchUp: oneOf(CATCH_UPS),
      next: optional('time'),
      failed: optional('string'),
    },
  }),
};

const HOST: Shape = {
  object: {
    name: 'string',
    url: optional('string'),
    state: oneOf(HOST_STATES),
    drained: 'boolean',
    running: 'number',
    maxSessions: 'number',
    labels: { record: 'string' },
    version: optional('string'),
    lastProbe: optional({
      object: { at: 'time', ok: 'boolean', ms: optional('number'), error: optional('string') },
    }),
    problem: optional('string'),
    downSince: optional('time'),
  },
};
const NAMES: Shape = { array: 'string' };

/**
 * Every reply's fields besides `v`, `id` and `type`, by its type, as protocol/replies.ts has them (enums
 * and literals by the same lists of values, refined strings by the same tests; of a list of answers, each
 * one's `type`). The client checks each reply it reads against its table (client.ts), so that no command
 * prints `{}`, `undefined`, `Invalid Date` or a value it does not know, or "unexpected error", for a reply
 * that has the right type and not the protocol's fields and values. By hand rather than with zod, which
 * would add some 100 ms to every command (`wait` too); test/unit/reply-check.test.ts holds each table to the
 * schema, its lists of values included.
 */
export const REPLY_SHAPES: Record<string, Record<string, Shape>> = {
  error: {
    code: oneOf(ERROR_CODES),
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
    state: oneOf(DAEMON_STATES),
  },
  accepted: { sessionId: 'string', queued: 'boolean', position: 'number', existing: optional('boolean') },
  rejected: {
    sessionId: optional('string'),
    code: oneOf(REJECTION_CODES),
    reason: 'string',
    retryable: 'boolean',
  },
  phase: { sessionId: 'string', agent: optional('string'), phase: PHASE },
  output: {
    sessionId: 'string',
    line: 'string',
    seq: optional('number'),
    stream: optional(oneOf(OUTPUT_STREAMS)),
    time: optional('time'),
    cont: optional('boolean'),
    skipped: optional({
      object: { fromSeq: 'number', toSeq: 'number', count: 'number', reason: 'string' },
    }),
  },
  heartbeat: {},
  closing: { reason: oneOf(CLOSING_REASONS), message: 'string' },
  outcome: {
    sessionId: 'string',
    agent: optional('string'),
    outcome: optional(oneOf(OUTCOMES)),
    record: RECORD,
  },
  session: { sessionId: 'string', record: RECORD },
  history: { sessions: { array: RECORD }, more: 'number' },
  agents: { agents: { array: { object: AGENT_SHAPE } } },
  cancelling: { sessionId: 'string', wasQueued: 'boolean' },
  status: STATUS_SHAPE,
  'event.result': {
    event: { object: { type: 'string' } },
    answers: { array: { object: { type: 'string' } } },
    state: oneOf(DAEMON_STATES),
  },
  state: {
    state: oneOf(DAEMON_STATES),
    running: { array: { object: { id: 'string', agent: 'string', phase: PHASE } } },
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
 * A reply of a type the protocol has, without the fields its table gives it or with a value the protocol
 * does not allow, as the `bad_reply` error it is; else undefined (a type the protocol does not have is left
 * to the command, which says it did not expect it).
 */
export function checkReply(reply: { type: string }): ClientSideError | undefined {
  if (!Object.hasOwn(REPLY_SHAPES, reply.type)) return undefined;
  const shape = REPLY_SHAPES[reply.type] as Record<string, Shape>;
  const problem = departure(reply, { object: shape });
  if (problem === undefined) return undefined;
  const where = named(problem, '');
  // A value of a list this CLI does not know (a new outcome kind, state or code) is what a newer daemon
  // would send (docs/protocol.md, Compatibility): said so, rather than blamed on another program.
  const message = problem.unknown
    ? `the daemon sent ${/^[aeiou]/.test(reply.type) ? 'an' : 'a'} ${reply.type} reply with a value this agentd does not know (${where}); is the daemon newer than this agentd? Use the agentd command of the daemon's version`
    : `the daemon sent a malformed ${reply.type} reply (${where}); is something other than agentd listening on the socket?`;
  return { type: 'error', code: 'bad_reply', message };
}
