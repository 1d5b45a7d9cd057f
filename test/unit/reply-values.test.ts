/**
 * A daemon (or whatever listens on the socket) that sends the right fields with values the protocol does
 * not allow: each is a `bad_reply`, exit 4, one line naming the field and what is wrong with its value,
 * the value cut and escaped, never printed raw. Before the tables knew values, `status` printed a state of
 * a megabyte or with escape sequences as it came, `show` printed `Invalid Date` for a time that is none,
 * `hosts` a state it does not know, and `wait` loaded zod to check an outcome's record.
 */
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { OUTCOME_KINDS } from '../../src/outcome-kinds.js';
import { replySchema } from '../../src/protocol/replies.js';
import { runCliInProcess as run } from '../helpers/cli-in-process.js';
import { fakeDaemon } from '../helpers/fake-daemon.js';

const ID = '0123456789abcdef';
const AT = '2026-12-05T01:00:00.000Z';
const RECORD = {
  version: 1,
  id: ID,
  agent: 'demo',
  repo: 'https://example.com/x.git',
  acceptedAt: AT,
  startedAt: AT,
  finishedAt: '2026-12-05T01:00:05.000Z',
  phase: 'finished',
  phases: [{ phase: 'finished', at: AT }],
  outcome: 'failed',
  kind: 'failure',
  exitCode: 1,
  durationMs: 5000,
};
const STATUS = {
  type: 'status',
  state: 'ready',
  pid: 42,
  version: '0.1.0',
  instanceId: 'abc',
  socket: '/run/agentd.sock',
  uptimeMs: 1000,
  maxSessions: 4,
  running: [
    {
      id: 'fedcba9876543210',
      agent: 'demo',
      repo: 'https://example.com/x.git',
      phase: 'running',
      startedAt: AT,
      elapsedMs: 10,
    },
  ],
  queued: [],
  recent: [RECORD],
  schedules: [{ agent: 'demo', cron: '0 * * * *', overlap: 'skip', catchUp: 'none', next: AT }],
};
const HOST = {
  name: 'local',
  state: 'up',
  drained: false,
  running: 0,
  maxSessions: 4,
  labels: { gpu: 'yes' },
  lastProbe: { at: AT, ok: true, ms: 5 },
};
const OUTPUT = { type: 'output', sessionId: ID, line: 'hello', seq: 1, stream: 'stdout', time: AT };
const outcome = (record: object) => ({ type: 'outcome', sessionId: ID, record });
const session = (record: object) => ({ type: 'session', sessionId: ID, record });

/** OSC 52 (write the clipboard), a window title, a C1 CSI (clear the screen), a right-to-left override. */
const HOSTILE = '\x1b]52;c;cHduZWQ=\x07\x1b]0;title\x07\u009b2J\u202e';
/** What a terminal acts on: ESC, BEL, DEL, the C1 controls, bidirectional overrides and isolates. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: what a terminal acts on is the point.
const ACTS_ON_TERMINAL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const HUGE = 'x'.repeat(1_000_000);

/** The reply's JSON with one field's value replaced by raw JSON text (`1e999`, which reads as Infinity). */
function withRaw(
  reply: object,
  field: string,
  raw: string,
): (type: string, id: string | undefined) => string {
  return (_type, id) =>
    JSON.stringify({ v: 2, ...reply, ...(id === undefined ? {} : { id }) }).replace(
      `"${field}":"__raw__"`,
      `"${field}":${raw}`,
    );
}

const TRIGGER = ['trigger', 'demo', 'https://example.com/x.git'];

/**
 * Each command and the worst form of a field it reads: the reply (or its raw line), and the problem the
 * error names. `unknown`: a value of a list this agentd does not have, which a newer daemon may send.
 */
const CASES: {
  name: string;
  argv: string[];
  reply: object | ((type: string, id: string | undefined) => string);
  problem: string;
  unknown?: boolean;
  /** What the command printed of the replies before (trigger: that the session was accepted). */
  before?: string;
}[] = [
  {
    name: 'a daemon state it does not know',
    argv: ['status'],
    reply: { ...STATUS, state: 'rebooting' },
    problem:
      'state "rebooting" is not one this agentd knows (opening, ready, degraded, shutdown.draining, failed)',
    unknown: true,
  },
  {
    name: 'a state of a megabyte',
    argv: ['status'],
    reply: { ...STATUS, state: HUGE },
    problem: `state "${'x'.repeat(64)}"... (1000000 characters) is not one this agentd knows`,
    unknown: true,
  },
  {
    name: 'a state with escape sequences',
    argv: ['status'],
    reply: { ...STATUS, state: `${HOSTILE}ready` },
    problem: 'state "\\u001b]52;c;cHduZWQ=\\u0007\\u001b]0;title\\u0007\\u009b2J\\u202eready" is not one',
    unknown: true,
  },
  {
    name: 'a state of another type',
    argv: ['status'],
    reply: { ...STATUS, state: 7 },
    problem: 'state is not a string',
  },
  {
    name: 'an uptime of 1e999 (Infinity)',
    argv: ['status'],
    reply: withRaw({ ...STATUS, uptimeMs: '__raw__' }, 'uptimeMs', '1e999'),
    problem: 'uptimeMs is not a finite number',
  },
  {
    name: 'a running session started at "Invalid Date"',
    argv: ['status'],
    reply: { ...STATUS, running: [{ ...STATUS.running[0], startedAt: 'Invalid Date' }] },
    problem: 'running[0].startedAt "Invalid Date" is not an ISO 8601 time',
  },
  {
    name: 'a phase it does not know',
    argv: ['status'],
    reply: { ...STATUS, running: [{ ...STATUS.running[0], phase: 'sleeping' }] },
    problem: 'running[0].phase "sleeping" is not one this agentd knows (queued, resolving, creating,',
    unknown: true,
  },
  {
    name: "a schedule's next firing that is no time",
    argv: ['status'],
    reply: { ...STATUS, schedules: [{ ...STATUS.schedules[0], next: 'NaN' }] },
    problem: 'schedules[0].next "NaN" is not an ISO 8601 time',
  },
  {
    name: 'a record accepted on the 45th of the 13th month',
    argv: ['status'],
    reply: { ...STATUS, recent: [{ ...RECORD, acceptedAt: '2026-13-45T00:00:00Z' }] },
    problem: 'recent[0].acceptedAt "2026-13-45T00:00:00Z" is not an ISO 8601 time',
  },
  {
    name: 'an outcome kind it does not know',
    argv: ['wait', ID],
    reply: outcome({ ...RECORD, kind: 'exploded' }),
    problem: `record.kind "exploded" is not one this agentd knows (${OUTCOME_KINDS.join(', ')})`,
    unknown: true,
  },
  {
    name: 'an outcome it does not know',
    argv: ['wait', ID],
    reply: outcome({ ...RECORD, outcome: 'great' }),
    problem: 'record.outcome "great" is not one this agentd knows',
    unknown: true,
  },
  {
    name: 'an exit code of 1e999',
    argv: ['wait', ID],
    reply: withRaw(outcome({ ...RECORD, exitCode: '__raw__' }), 'exitCode', '1e999'),
    problem: 'record.exitCode is not a finite number',
  },
  {
    name: 'a duration of -1e999',
    argv: ['wait', ID],
    reply: withRaw(outcome({ ...RECORD, durationMs: '__raw__' }), 'durationMs', '-1e999'),
    problem: 'record.durationMs is not a finite number',
  },
  {
    name: 'an agent name that clears the screen',
    argv: ['wait', ID],
    reply: outcome({ ...RECORD, agent: '\x1b[2J\x1b]0;pwned\x07' }),
    problem: 'record.agent "\\u001b[2J\\u001b]0;pwned\\u0007" is not an agent name',
  },
  {
    name: 'a session id that is a path',
    argv: ['wait', ID],
    reply: outcome({ ...RECORD, id: '../../etc' }),
    problem: 'record.id "../../etc" is not a session id (16 lowercase hex characters)',
  },
  {
    name: 'an outcome kind of another type',
    argv: ['wait', ID],
    reply: outcome({ ...RECORD, kind: 3 }),
    problem: 'record.kind is not a string',
  },
  {
    name: 'a phase written right to left',
    argv: ['show', ID],
    reply: session({ ...RECORD, phase: '\u202edehsinif' }),
    problem: 'record.phase "\\u202edehsinif" is not one this agentd knows',
    unknown: true,
  },
  {
    name: 'a phase entered at no time',
    argv: ['show', ID],
    reply: session({ ...RECORD, phases: [{ phase: 'queued', at: '' }] }),
    problem: 'record.phases[0].at "" is not an ISO 8601 time',
  },
  {
    name: 'a decided outcome in a phase it does not know',
    argv: ['show', ID],
    reply: session({ ...RECORD, decided: { outcome: 'failed', phase: 'queued' } }),
    problem:
      'record.decided.phase "queued" is not one this agentd knows (creating, cloning, running, tearing_down)',
    unknown: true,
  },
  {
    name: 'a session finished "yesterday"',
    argv: ['history'],
    reply: { type: 'history', sessions: [{ ...RECORD, finishedAt: 'yesterday' }], more: 0 },
    problem: 'sessions[0].finishedAt "yesterday" is not an ISO 8601 time',
  },
  {
    name: 'a host state it does not know',
    argv: ['hosts'],
    reply: { type: 'hosts', hosts: [{ ...HOST, state: 'exploded' }] },
    problem: 'hosts[0].state "exploded" is not one this agentd knows (up, down, reconciling, failed)',
    unknown: true,
  },
  {
    name: 'a probe at no time',
    argv: ['hosts'],
    reply: { type: 'hosts', hosts: [{ ...HOST, lastProbe: { at: 'soon', ok: true } }] },
    problem: 'hosts[0].lastProbe.at "soon" is not an ISO 8601 time',
  },
  {
    name: 'a label named with escape sequences, of another type',
    argv: ['hosts'],
    reply: { type: 'hosts', hosts: [{ ...HOST, labels: { [`${HOSTILE}gpu`]: 5 } }] },
    problem:
      'hosts[0].labels["\\u001b]52;c;cHduZWQ=\\u0007\\u001b]0;title\\u0007\\u009b2J\\u202egpu"] is not a string',
  },
  {
    name: 'an output stream it does not know',
    argv: ['logs', ID],
    reply: { ...OUTPUT, stream: 'stdin' },
    problem: 'stream "stdin" is not one this agentd knows (stdout, stderr, agentd)',
    unknown: true,
  },
  {
    name: 'an output line read at no time',
    argv: ['logs', ID],
    reply: { ...OUTPUT, time: 'Invalid Date' },
    problem: 'time "Invalid Date" is not an ISO 8601 time',
  },
  {
    name: 'a rejection code it does not know',
    argv: [...TRIGGER, '--detach'],
    reply: { type: 'rejected', code: 'nope', reason: HOSTILE, retryable: false },
    problem: 'code "nope" is not one this agentd knows (unknown_agent, no_repo,',
    unknown: true,
  },
  {
    name: 'an outcome kind it does not know, after the output',
    argv: TRIGGER,
    reply: (type, id) =>
      type !== 'trigger'
        ? ''
        : [
            { type: 'accepted', sessionId: ID, queued: false, position: 0 },
            outcome({ ...RECORD, kind: HUGE }),
          ]
            .map((reply) => JSON.stringify({ v: 2, ...reply, ...(id === undefined ? {} : { id }) }))
            .join('\n'),
    problem: `record.kind "${'x'.repeat(64)}"... (1000000 characters) is not one this agentd knows`,
    unknown: true,
    before: `session ${ID} accepted\n`,
  },
  {
    name: 'an error code it does not know, with a hostile message',
    argv: ['cancel', ID],
    reply: { type: 'error', code: 'teapot', message: HOSTILE, problems: [], retryable: false },
    problem: 'code "teapot" is not one this agentd knows (bad_json, bad_request,',
    unknown: true,
  },
];

describe('a reply with a value the protocol does not allow', () => {
  it.each(CASES)(
    '$name (agentd $argv.0): bad_reply, exit 4, one line naming the field, nothing raw',
    async ({ argv, reply, problem, unknown, before }) => {
      const socket = await fakeDaemon(typeof reply === 'function' ? reply : { v: 2, ...reply });
      for (const terminal of [true, false]) {
        const text = await run([...argv, '--socket', socket], { terminal });
        expect(text.code, text.stderr).toBe(EXIT.infrastructure);
        expect(text.stdout).toBe(before ?? '');
        const lines = text.stderr.split('\n');
        expect(lines, text.stderr).toHaveLength(2);
        expect(lines[1]).toBe('');
        const line = lines[0] as string;
        expect(line).toMatch(/^agentd: the daemon sent (a malformed|an?) [a-z_.]+ reply /);
        expect(line).toContain(problem);
        expect(line).not.toMatch(ACTS_ON_TERMINAL);
        expect(line.length).toBeLessThan(1000);
        expect(
          line.endsWith(
            "is the daemon newer than this agentd? Use the agentd command of the daemon's version",
          ),
        ).toBe(unknown === true);
      }
      const json = await run([...argv, '--json', '--socket', socket], { terminal: true });
      expect(json.code, json.stderr).toBe(EXIT.infrastructure);
      expect(json.stdout).not.toMatch(ACTS_ON_TERMINAL);
      const printed = json.stdout.trim().split('\n');
      expect(printed).toHaveLength(1);
      const failure = JSON.parse(printed.at(-1) as string) as {
        error: string;
        code: number;
        message: string;
      };
      expect(failure).toMatchObject({ error: 'bad_reply', code: EXIT.infrastructure });
      expect(failure.message).toContain(problem);
    },
  );

  it('each case is one the protocol refuses too', () => {
    for (const { name, reply } of CASES) {
      const line =
        typeof reply === 'function'
          ? (reply('trigger', undefined).split('\n').at(-1) as string)
          : JSON.stringify({ v: 2, ...reply });
      expect(replySchema.safeParse(JSON.parse(line)).success, name).toBe(false);
    }
  });
});

describe('an older daemon, which leaves out what the protocol marks optional', () => {
  it.each([
    ['status', ['status'], { ...STATUS, schedules: undefined, running: [], recent: [] }],
    ['hosts', ['hosts'], { type: 'hosts', hosts: [{ ...HOST, lastProbe: undefined }] }],
    [
      'wait',
      ['wait', ID],
      outcome({
        version: 1,
        id: ID,
        agent: 'demo',
        repo: 'r',
        acceptedAt: AT,
        phase: 'finished',
        phases: [],
        outcome: 'succeeded',
      }),
    ],
  ])('%s: passes, exit 0', async (_name, argv, reply) => {
    expect(replySchema.safeParse({ v: 2, ...reply }).success).toBe(true);
    const socket = await fakeDaemon({ v: 2, ...reply });
    const result = await run([...argv, '--socket', socket]);
    expect(result.code, result.stderr).toBe(EXIT.succeeded);
  });
});
