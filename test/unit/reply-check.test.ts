/**
 * Replies with the right `type` and not the protocol's shape are bad replies (exit 4, `bad_reply`), not a
 * success: `status` against `{"type":"status"}` printed `{}` and exited 0, and `wait` against an outcome
 * without its record's id printed `session undefined succeeded`.
 */

import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EXIT } from '../../src/cli/exit-codes.js';
import { type Shape, STATUS_SHAPE, shapeProblem } from '../../src/cli/reply-check.js';
import { replySchema } from '../../src/protocol/replies.js';
import { runCliInProcess as run } from '../helpers/cli-in-process.js';
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

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

/** A daemon that answers every request line with `reply` (its id added). */
async function fakeDaemon(reply: object): Promise<string> {
  const path = join(makeTempDir('agentd-unit-reply-'), 'agentd.sock');
  const server = createServer((socket) => {
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
        const { id } = JSON.parse(buffered.slice(0, nl)) as { id?: string };
        buffered = buffered.slice(nl + 1);
        socket.write(`${JSON.stringify({ ...reply, ...(id === undefined ? {} : { id }) })}\n`);
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return path;
}

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

/** A zod schema as the Shape the CLI checks by hand (enums and literals by their values' type). */
function shapeOf(schema: z.ZodType): Shape {
  if (schema instanceof z.ZodOptional) return { optional: shapeOf(schema.unwrap() as z.ZodType) };
  if (schema instanceof z.ZodArray) return { array: shapeOf(schema.element as z.ZodType) };
  if (schema instanceof z.ZodObject) {
    const fields = Object.entries(schema.shape as Record<string, z.ZodType>);
    return { object: Object.fromEntries(fields.map(([key, field]) => [key, shapeOf(field)])) };
  }
  if (schema instanceof z.ZodString || schema instanceof z.ZodEnum) return 'string';
  if (schema instanceof z.ZodNumber) return 'number';
  if (schema instanceof z.ZodBoolean) return 'boolean';
  if (schema instanceof z.ZodLiteral) {
    const kinds = new Set([...schema.values].map((value) => typeof value));
    if (kinds.size === 1 && (kinds.has('string') || kinds.has('number'))) return [...kinds][0] as Shape;
  }
  throw new Error('a kind of schema this test does not map: extend shapeOf');
}

describe("status's hand-made check and the protocol's schema", () => {
  it('has every field of the status reply, its lists and schedules, with the schema’s types; of a record, the ones status shows', () => {
    const option = replySchema.options.find((o) =>
      (o.shape.type as z.ZodLiteral).values.has('status'),
    ) as z.ZodObject;
    const { v: _v, id: _id, type: _type, ...fields } = option.shape as Record<string, z.ZodType>;
    // A record has many fields the status lines do not show: the hand-made check reads those it shows.
    const shown = (STATUS_SHAPE.recent as { array: { object: Record<string, Shape> } }).array.object;
    const record = (fields.recent as z.ZodArray).element as z.ZodObject;
    const mask = Object.fromEntries(Object.keys(shown).map((key) => [key, true]));
    fields.recent = z.array(record.pick(mask as Parameters<typeof record.pick>[0]));
    const derived = Object.fromEntries(Object.entries(fields).map(([key, field]) => [key, shapeOf(field)]));
    expect(STATUS_SHAPE).toEqual(derived);
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
    const path = await fakeDaemon({ v: 2, type: 'outcome', record: { outcome: 'succeeded' } });
    const json = await run(['wait', ID, '--json', '--socket', path]);
    expect(json.code, json.stderr).toBe(EXIT.infrastructure);
    const failure = JSON.parse(json.stdout.trim()) as { error: string; message: string };
    expect(failure).toMatchObject({ error: 'bad_reply', code: EXIT.infrastructure });
    expect(failure.message).toMatch(/^the daemon sent a malformed outcome reply \(record\.id: /);
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
