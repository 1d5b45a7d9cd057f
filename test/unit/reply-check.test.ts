/**
 * Replies with the right `type` and not the protocol's shape are bad replies (exit 4, `bad_reply`), not a
 * success: `status` against `{"type":"status"}` printed `{}` and exited 0, and `wait` against an outcome
 * without its record's id printed `session undefined succeeded`.
 */

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EXIT } from '../../src/cli/exit-codes.js';
import {
  checkReply,
  REPLY_SHAPES,
  type Shape,
  STATUS_SHAPE,
  shapeProblem,
} from '../../src/cli/reply-check.js';
import { replySchema } from '../../src/protocol/replies.js';
import { FORMATTED } from '../../src/sessions/records.js';
import { runCliInProcess as run } from '../helpers/cli-in-process.js';
import { fakeDaemon } from '../helpers/fake-daemon.js';
import { makeTempDir } from '../helpers/resources.js';

const ID = '0123456789abcdef';
const RECORD = {
  version: 1,
  id: ID,
  agent: 'demo',
  repo: 'https://example.com/x.git',
  acceptedAt: '2026-12-05T01:00:00.000Z',
  finishedAt: '2026-12-05T01:00:05.000Z',
  phase: 'finished',
  phases: [{ phase: 'finished', at: '2026-12-05T01:00:05.000Z' }],
  outcome: 'succeeded',
  exitCode: 0,
  durationMs: 5000,
};
const STATUS = {
  v: 2,
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
      startedAt: '2026-12-05T01:00:00.000Z',
      elapsedMs: 10,
    },
  ],
  queued: [],
  recent: [RECORD],
  schedules: [{ agent: 'demo', cron: '0 * * * *', overlap: 'skip', catchUp: 'none' }],
};

describe('status', () => {
  it('a status reply without its fields is a bad reply: exit 4, one JSON object naming the field', async () => {
    const path = await fakeDaemon({ v: 2, type: 'status' });
    const json = await run(['status', '--json', '--socket', path]);
    expect(json.code).toBe(EXIT.infrastructure);
    const failure = JSON.parse(json.stdout.trim()) as { error: string; message: string; code: number };
    expect(failure).toMatchObject({ error: 'bad_reply', code: EXIT.infrastructure });
    expect(failure.message).toBe(
      'the daemon sent a malformed status reply (state is missing); is something other than agentd listening on the socket?',
    );
    const text = await run(['status', '--socket', path]);
    expect(text.code).toBe(EXIT.infrastructure);
    expect(text.stdout).toBe('');
    expect(text.stderr).toMatch(/^agentd: the daemon sent a malformed status reply \(state is missing\)/);
  });

  it('a malformed session in a list is one too, named by its place', async () => {
    const running = [{ ...STATUS.running[0], elapsedMs: 'soon' }];
    const path = await fakeDaemon({ ...STATUS, running });
    const result = await run(['status', '--json', '--socket', path]);
    expect(result.code).toBe(EXIT.infrastructure);
    expect(result.stderr).toContain('(running[0].elapsedMs is not a number)');
  });

  it('a whole status reply is shown, as text and as JSON', async () => {
    expect(replySchema.safeParse(STATUS).success).toBe(true);
    const path = await fakeDaemon(STATUS);
    const text = await run(['status', '--socket', path]);
    expect(text.code, text.stderr).toBe(EXIT.succeeded);
    expect(text.stdout).toMatch(/^agentd 0\.1\.0: ready, pid 42/);
    const json = await run(['status', '--json', '--socket', path]);
    expect(json.code).toBe(EXIT.succeeded);
    expect(JSON.parse(json.stdout)).toMatchObject({ state: 'ready', running: [{ agent: 'demo' }] });
  });

  it('a degraded daemon says why and what waits for it, where status is read (it said only "degraded")', async () => {
    const reason =
      'state dir full: cannot record session 0123456789abcdef (ENOSPC on /var/lib/agentd/sessions/0123456789abcdef.json); free space on that filesystem';
    const degraded = { ...STATUS, state: 'degraded', degraded: reason };
    expect(replySchema.safeParse(degraded).success).toBe(true);
    const path = await fakeDaemon(degraded);
    const text = await run(['status', '--socket', path]);
    expect(text.code, text.stderr).toBe(EXIT.degraded);
    expect(text.stdout.split('\n').slice(0, 2)).toEqual([
      'agentd 0.1.0: degraded, pid 42, up 1.0s, socket /run/agentd.sock',
      `degraded: ${reason}; triggers are rejected and queued sessions wait until the state dir takes writes again (looked at every second)`,
    ]);
    const json = await run(['status', '--json', '--socket', path]);
    expect(json.code, json.stderr).toBe(EXIT.degraded);
    expect(JSON.parse(json.stdout)).toMatchObject({ state: 'degraded', degraded: reason });
  });

  it('a daemon whose machine failed says so and why, not ready, until it exits', async () => {
    const failed = 'the daemon failed: ENOSPC: no space left on device, write; it is exiting, restart it';
    const reply = { ...STATUS, state: 'failed', failed };
    expect(replySchema.safeParse(reply).success).toBe(true);
    const path = await fakeDaemon(reply);
    const text = await run(['status', '--socket', path]);
    expect(text.code, text.stderr).toBe(EXIT.daemonFailed);
    expect(text.stdout.split('\n').slice(0, 2)).toEqual([
      'agentd 0.1.0: failed, pid 42, up 1.0s, socket /run/agentd.sock',
      failed,
    ]);
  });
});

/**
 * A zod schema as the Shape the CLI checks by hand: an enum or literal as the list of its values, a string
 * refined by a test of value-formats.ts as that format. Each list the tables have is compared whole, so a
 * value added to a schema's enum and not to the table's (or the other way round) fails here.
 */
function shapeOf(schema: z.ZodType): Shape {
  const format = FORMATTED.get(schema);
  if (format !== undefined) return format;
  if (schema instanceof z.ZodOptional) return { optional: shapeOf(schema.unwrap() as z.ZodType) };
  if (schema instanceof z.ZodArray) return { array: shapeOf(schema.element as z.ZodType) };
  if (schema instanceof z.ZodRecord) return { record: shapeOf(schema.valueType as z.ZodType) };
  // Of a union of objects (an event's answers), the field that tells them apart: what the CLI reads.
  if (schema instanceof z.ZodDiscriminatedUnion) return { object: { [schema.def.discriminator]: 'string' } };
  if (schema instanceof z.ZodObject) {
    const fields = Object.entries(schema.shape as Record<string, z.ZodType>);
    return { object: Object.fromEntries(fields.map(([key, field]) => [key, shapeOf(field)])) };
  }
  if (schema instanceof z.ZodEnum) return { oneOf: schema.options as (string | number)[] };
  if (schema instanceof z.ZodLiteral) return { oneOf: [...schema.values] as (string | number)[] };
  // A refinement the tables cannot know of would pass for a plain string: refuse to map it.
  if (schema instanceof z.ZodString && (schema.def.checks ?? []).length === 0) return 'string';
  if (schema instanceof z.ZodNumber) return 'number';
  if (schema instanceof z.ZodBoolean) return 'boolean';
  throw new Error('a kind of schema this test does not map: extend shapeOf');
}

/** A reply's fields but `v`, `id` and `type`, as the Shapes of its schema. */
function fieldsOf(type: string): Record<string, Shape> {
  const option = replySchema.options.find((o) => (o.shape.type as z.ZodLiteral).values.has(type));
  if (option === undefined) throw new Error(`no reply of type ${type}`);
  const { v: _v, id: _id, type: _type, ...fields } = option.shape as Record<string, z.ZodType>;
  return Object.fromEntries(Object.entries(fields).map(([key, field]) => [key, shapeOf(field)]));
}

describe("the CLI's tables of the replies and the protocol's schema", () => {
  it('has one table per reply type, each with every field of its schema and the schema’s types', () => {
    const types = replySchema.options.flatMap((o) => [...(o.shape.type as z.ZodLiteral).values].map(String));
    expect(Object.keys(REPLY_SHAPES).sort()).toEqual([...types].sort());
    for (const type of types) expect(REPLY_SHAPES[type], type).toEqual(fieldsOf(type));
  });

  it('checks each reply the client reads: one of the protocol passes, one without a field fails, naming it', () => {
    const record = { type: 'session', sessionId: ID, record: RECORD };
    expect(replySchema.safeParse({ v: 2, ...record }).success).toBe(true);
    expect(checkReply(record)).toBeUndefined();
    const { phases: _phases, ...partial } = RECORD;
    const malformed = { ...record, record: partial };
    expect(checkReply(malformed)?.message).toBe(
      'the daemon sent a malformed session reply (record.phases is missing); is something other than agentd listening on the socket?',
    );
    // A type the protocol does not have is the command's to refuse ("unexpected reply").
    expect(checkReply({ type: 'surprise' })).toBeUndefined();
    expect(checkReply({ type: 'constructor' })).toBeUndefined();
  });
});

describe("status's hand-made check and the protocol's schema", () => {
  it('has every field of the status reply, its lists, schedules and records, with the schema’s types', () => {
    expect(STATUS_SHAPE).toEqual(fieldsOf('status'));
  });

  it('refuses what the schema refuses, field by field: each one missing or of another type', () => {
    const status = { ...STATUS, running: [...STATUS.running], recent: [RECORD] };
    for (const [key, shape] of Object.entries(STATUS_SHAPE)) {
      const stringly =
        shape === 'string' ||
        (typeof shape === 'object' && 'optional' in shape && shape.optional === 'string');
      const wrong = { ...status, [key]: stringly ? 7 : 'seven' };
      expect(shapeProblem(wrong, { object: STATUS_SHAPE }, ''), key).toBeDefined();
      expect(replySchema.safeParse(wrong).success, key).toBe(false);
      const without: Record<string, unknown> = { ...status };
      delete without[key];
      const optional = typeof shape === 'object' && 'optional' in shape;
      expect(shapeProblem(without, { object: STATUS_SHAPE }, '') === undefined, key).toBe(optional);
      expect(replySchema.safeParse(without).success, key).toBe(optional);
    }
  });
});

describe('wait', () => {
  it('an outcome whose record lacks its id is a bad reply: exit 4, not "session undefined succeeded"', async () => {
    const { id: _id, ...record } = RECORD;
    const path = await fakeDaemon({ v: 2, type: 'outcome', sessionId: ID, record });
    const json = await run(['wait', ID, '--json', '--socket', path]);
    expect(json.code, json.stderr).toBe(EXIT.infrastructure);
    const failure = JSON.parse(json.stdout.trim()) as { error: string; message: string };
    expect(failure).toMatchObject({ error: 'bad_reply', code: EXIT.infrastructure });
    expect(failure.message).toMatch(/^the daemon sent a malformed outcome reply \(record\.id is missing\)/);
    const text = await run(['wait', ID, '--socket', path]);
    expect(text.code).toBe(EXIT.infrastructure);
    expect(text.stdout).not.toContain('undefined');
  });

  it('an outcome of no known kind, or without a record, is one too', async () => {
    for (const reply of [
      { v: 2, type: 'outcome', sessionId: ID, record: { ...RECORD, outcome: 'great' } },
      { v: 2, type: 'outcome', sessionId: ID },
    ]) {
      const path = await fakeDaemon(reply);
      const result = await run(['wait', ID, '--json', '--socket', path]);
      expect(result.code, JSON.stringify(reply)).toBe(EXIT.infrastructure);
      expect(JSON.parse(result.stdout.trim())).toMatchObject({ error: 'bad_reply' });
    }
  });

  it('a whole outcome is the session’s: its line and exit code', async () => {
    const path = await fakeDaemon({ v: 2, type: 'outcome', sessionId: ID, record: RECORD });
    const result = await run(['wait', ID, '--socket', path]);
    expect(result.code, result.stderr).toBe(EXIT.succeeded);
    expect(result.stdout).toBe(`session ${ID} succeeded, exit code 0, in 5.0s\n`);
  });
});

describe('every command that prints a reply', () => {
  const OUT = join(makeTempDir('agentd-unit-reply-out-'), 'record.tar.gz');
  /**
   * A reply of the right type without (some of) its fields, and the command that reads it. Each printed
   * `{}`, `undefined` lines or "unexpected error", or exited 0 (cancel, hosts drain, reload, trigger
   * --detach, history), before the client checked each reply against its table.
   */
  const CASES: [string[], { type: string; [field: string]: unknown }, string][] = [
    [['hosts'], { type: 'hosts' }, 'hosts is missing'],
    [['hosts'], { type: 'hosts', hosts: [{}] }, 'hosts[0].name is missing'],
    [['history'], { type: 'history' }, 'sessions is missing'],
    [['history'], { type: 'history', sessions: [{}], more: 0 }, 'sessions[0].version is missing'],
    [['history'], { type: 'history', sessions: [RECORD] }, 'more is missing'],
    [['show', ID], { type: 'session', sessionId: ID }, 'record is missing'],
    [
      ['show', ID],
      { type: 'session', sessionId: ID, record: { ...RECORD, phases: 'all' } },
      'record.phases is not a list',
    ],
    [
      ['export', ID, '--output', 'OUT'],
      { type: 'session', sessionId: ID, record: {} },
      'record.version is missing',
    ],
    [['cancel', ID], { type: 'cancelling' }, 'sessionId is missing'],
    [['hosts', 'drain', 'build2'], { type: 'drained', host: 'build2' }, 'drained is missing'],
    [['reload'], { type: 'reloaded' }, 'file is missing'],
    [['reload'], { type: 'reload_failed', file: '/etc/agentd.yaml' }, 'message is missing'],
    [['logs', ID], { type: 'output', sessionId: ID }, 'line is missing'],
    [['logs', ID], { type: 'outcome', sessionId: ID, record: {} }, 'record.version is missing'],
    [
      ['trigger', 'demo', 'https://example.com/x.git', '--detach'],
      { type: 'accepted' },
      'sessionId is missing',
    ],
    [['trigger', 'demo', 'https://example.com/x.git', '--detach'], { type: 'rejected' }, 'code is missing'],
    [['status'], { type: 'error' }, 'code is missing'],
  ];

  it.each(CASES)(
    'agentd %j: bad_reply, exit 4, naming the field, nothing printed on stdout',
    async (argv, body, problem) => {
      const reply = { v: 2, ...body };
      const path = await fakeDaemon(reply);
      const text = await run([...argv.map((arg) => (arg === 'OUT' ? OUT : arg)), '--socket', path]);
      expect(text.code, text.stderr).toBe(EXIT.infrastructure);
      expect(text.stdout).toBe('');
      expect(text.stderr).toBe(
        `agentd: the daemon sent a malformed ${reply.type} reply (${problem}); is something other than agentd listening on the socket?\n`,
      );
      if (argv[0] === 'export' || (argv[0] === 'hosts' && argv[1] === 'drain')) return;
      const json = await run([...argv, '--json', '--socket', path]);
      expect(json.code, json.stderr).toBe(EXIT.infrastructure);
      expect(JSON.parse(json.stdout)).toMatchObject({ error: 'bad_reply', code: EXIT.infrastructure });
    },
  );
});
