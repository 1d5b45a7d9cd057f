/**
 * The CLI's long reads of the daemon (`trigger`, `logs`, `logs --follow`, `wait`), against fake daemons:
 * memory that stays flat however many replies come (no race of every read against a promise pending for the
 * whole session), reading paused while stdout is full (so the daemon's rule for slow clients applies),
 * a bound on one reply line, heartbeats that tell a hung daemon from a quiet session, and a Ctrl-C before
 * the daemon answered a trigger.
 */
import type { Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Cli } from 'clipanion';
import { afterEach, describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { DaemonClient, type Reply } from '../../src/cli/client.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { followSession } from '../../src/cli/session-follow.js';
import { waitForSession } from '../../src/cli/session-wait.js';
import { runTrigger, type TriggerOptions } from '../../src/cli/trigger-run.js';
import { MAX_REPLY_LINE_BYTES } from '../../src/protocol/limits.js';
import { collector } from '../helpers/cli-in-process.js';
import { closeFakeDaemons, replyLine as line, type Request, scriptedDaemon } from '../helpers/fake-daemon.js';

const ID = '0123456789abcdef';
const RECORD = {
  version: 1,
  id: ID,
  agent: 'demo',
  repo: 'git://127.0.0.1/x.git',
  acceptedAt: '2026-01-01T00:00:00.000Z',
  phase: 'finished',
  phases: [{ phase: 'finished', at: '2026-01-01T00:00:00.005Z' }],
  outcome: 'succeeded',
  durationMs: 5,
};

afterEach(closeFakeDaemons);

function outputLine(seq: number): string {
  return line({
    type: 'output',
    sessionId: ID,
    line: `line ${seq} ${'x'.repeat(40)}`,
    seq,
    stream: 'stdout',
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function within<T>(ms: number, pending: Promise<T>): Promise<T | 'still waiting'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still waiting'>((resolve) => {
    timer = setTimeout(() => resolve('still waiting'), ms);
  });
  try {
    return await Promise.race([pending, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A sink that counts lines and keeps nothing; `onLine` sees the count after each. */
function countingSink(onLine: (count: number) => void = () => {}): Writable & { lines: () => number } {
  let count = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) onLine(++count);
      done();
    },
  });
  return Object.assign(sink, { lines: () => count });
}

function triggerOptions(socket: string, more: Partial<TriggerOptions> = {}): TriggerOptions {
  return {
    agent: 'demo',
    socket,
    quiet: false,
    json: false,
    detach: false,
    exitCode: 'outcome',
    raw: false,
    repo: undefined,
    workUnit: undefined,
    timeout: undefined,
    key: undefined,
    ...more,
  };
}

/** The live heap after a full collection. */
const collect = (() => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
})();

/**
 * Heap growth from the first reply to the 20,000th and to the 200,000th of one run. Replies held for the
 * whole session (the old race left each one reachable from a promise pending until the end) make the second
 * ten times the first; a loop that lets go of each makes both noise.
 */
function heapProbe() {
  let base = 0;
  let at20k = 0;
  let at200k = 0;
  return {
    onLine: (count: number) => {
      if (count === 1) base = collect();
      else if (count === 20_000) at20k = collect() - base;
      else if (count === 200_000) at200k = collect() - base;
    },
    check: () => {
      const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;
      const growth = `growth to 20k replies ${mb(at20k)}, to 200k ${mb(at200k)}`;
      // Flat: 200k replies grow the heap no more than twice what 20k did, with 4 MB of noise allowed.
      expect(at200k, growth).toBeLessThan(2 * Math.max(at20k, 0) + 4 * 1048576);
    },
  };
}

const COUNT = 200_000;

describe('memory over a long stream of replies', () => {
  it('a follow (logs --follow, a trigger that resumed) holds no reply it has shown', async () => {
    const probe = heapProbe();
    let seq = 0;
    // A fake connection: replies as fast as the loop takes them, then the outcome.
    const client = {
      send: () => {},
      paceBy: () => {},
      expectWithin: () => {},
      close: () => {},
      next: (): Promise<Reply | undefined> => {
        seq++;
        if (seq > COUNT)
          return Promise.resolve({ v: 2, type: 'outcome', sessionId: ID, record: RECORD } as Reply);
        return Promise.resolve({
          v: 2,
          type: 'output',
          sessionId: ID,
          line: `line ${seq} ${'x'.repeat(200)}`,
          seq,
          stream: 'stdout',
        } as Reply);
      },
    } as unknown as DaemonClient;
    let shown = 0;
    // Pending for the whole follow, as a trigger's second Ctrl-C is.
    const until = new Promise<void>(() => {});
    const result = await followSession({
      sessionId: ID,
      afterSeq: 0,
      client,
      onOutput: () => probe.onLine(++shown),
      until,
    });
    expect(result.kind).toBe('outcome');
    expect(shown).toBe(COUNT);
    probe.check();
  });

  it('trigger holds no line it has printed', async () => {
    const { path } = await scriptedDaemon((request, socket) => {
      if (request.type !== 'trigger') return;
      socket.write(line({ type: 'accepted', sessionId: ID, queued: false, position: 0 }));
      let seq = 0;
      const more = () => {
        while (seq < COUNT) if (!socket.write(outputLine(++seq))) return void socket.once('drain', more);
        socket.write(line({ type: 'outcome', sessionId: ID, record: RECORD }));
      };
      more();
    });
    const probe = heapProbe();
    // "session ... accepted" is the first line printed: the output's count starts after it.
    const stdout = countingSink((count) => probe.onLine(count - 1));
    const code = await runTrigger(triggerOptions(path), { stdout, stderr: new PassThrough() });
    expect(code).toBe(EXIT.succeeded);
    expect(stdout.lines()).toBe(COUNT + 2);
    probe.check();
  });

  it('logs holds no line it has printed', async () => {
    const { path } = await scriptedDaemon((request, socket) => {
      if (request.type !== 'logs') return;
      let seq = 0;
      const more = () => {
        while (seq < COUNT) if (!socket.write(outputLine(++seq))) return void socket.once('drain', more);
        socket.write(line({ type: 'outcome', sessionId: ID, record: RECORD }));
      };
      more();
    });
    const probe = heapProbe();
    const stdout = countingSink(probe.onLine);
    const context = { ...Cli.defaultContext, stdout, stderr: new PassThrough() };
    const code = await (await buildCli('logs')).run(['logs', ID, '--socket', path], context);
    expect(code).toBe(EXIT.succeeded);
    expect(stdout.lines()).toBe(COUNT);
    probe.check();
  });
});

/** A stdout that takes `highWaterMark` bytes and then nothing until released: a pipe nobody reads. */
function stuckStdout(): Writable & { release: () => void } {
  const held: (() => void)[] = [];
  let released = false;
  const stream = new Writable({
    highWaterMark: 16 * 1024,
    write(_chunk, _encoding, done) {
      if (released) done();
      else held.push(done);
    },
  });
  return Object.assign(stream, {
    release: () => {
      released = true;
      for (const done of held.splice(0)) done();
    },
  });
}

/** A daemon that accepts the trigger (or follows the logs) and floods the output: `bytes` of lines queued. */
async function floodingDaemon(bytes: number): Promise<{ path: string; socket: () => Socket | undefined }> {
  let connection: Socket | undefined;
  const { path } = await scriptedDaemon((request, socket) => {
    if (request.type === 'trigger')
      socket.write(line({ type: 'accepted', sessionId: ID, queued: false, position: 0 }));
    else if (request.type !== 'logs') return;
    connection = socket;
    const lines: string[] = [];
    for (let seq = 1, size = 0; size < bytes; seq++) {
      const text = outputLine(seq);
      lines.push(text);
      size += text.length;
    }
    socket.write(lines.join(''));
  });
  return { path, socket: () => connection };
}

/** What the daemon does to a client that reads nothing for 30 s: `closing` last, then the end. */
function closeAsStalled(socket: Socket): void {
  socket.end(line({ type: 'closing', reason: 'stalled', message: 'this client read nothing for 30s' }));
}

describe('a stdout that does not keep up', () => {
  it('trigger stops reading the daemon until stdout drains, and leaves 8 when the daemon closed it for stalling', async () => {
    const daemon = await floodingDaemon(20 * 1048576);
    const stdout = stuckStdout();
    const stderr = collector();
    const pending = runTrigger(triggerOptions(daemon.path), { stdout, stderr: stderr.stream });
    await sleep(1000);
    // Held back: what stdout buffers is about one read of the socket, and the rest waits in the daemon's queue.
    expect(stdout.writableLength).toBeLessThan(1048576);
    expect(daemon.socket()?.writableLength ?? 0).toBeGreaterThan(10 * 1048576);
    // The daemon gives up on it (`closing`), then the reader goes away (`| sleep 40` ended): the client reads
    // on to the end and says what README says.
    closeAsStalled(daemon.socket() as Socket);
    // As process.stdout does on EPIPE: 'error' and 'close', yet not `destroyed`, and still needing a drain.
    stdout.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    stdout.emit('close');
    expect(stdout.destroyed).toBe(false);
    expect(await within(10_000, pending)).toBe(EXIT.connectionLost);
    expect(stderr.text()).toContain('connection lost; the session goes on (this client stopped reading');
  });

  it('trigger reads on once stdout drains', async () => {
    const daemon = await floodingDaemon(4 * 1048576);
    const stdout = stuckStdout();
    const pending = runTrigger(triggerOptions(daemon.path), { stdout, stderr: new PassThrough() });
    await sleep(300);
    expect(stdout.writableLength).toBeLessThan(1048576);
    stdout.release();
    const socket = daemon.socket() as Socket;
    while (socket.writableLength > 0) await sleep(20);
    socket.write(line({ type: 'outcome', sessionId: ID, record: RECORD }));
    expect(await within(10_000, pending)).toBe(EXIT.succeeded);
  });

  it('logs --follow stops reading the daemon until stdout drains, and leaves 8 when closed for stalling', async () => {
    const daemon = await floodingDaemon(20 * 1048576);
    const stdout = stuckStdout();
    const stderr = collector();
    const context = { ...Cli.defaultContext, stdout, stderr: stderr.stream };
    const pending = (await buildCli('logs')).run(['logs', ID, '--follow', '--socket', daemon.path], context);
    await sleep(1000);
    expect(stdout.writableLength).toBeLessThan(1048576);
    expect(daemon.socket()?.writableLength ?? 0).toBeGreaterThan(10 * 1048576);
    closeAsStalled(daemon.socket() as Socket);
    // The reader reads again (a pager scrolled on): the queued lines, then the end.
    stdout.release();
    expect(await within(10_000, pending)).toBe(EXIT.connectionLost);
    expect(stderr.text()).toContain('connection lost; the session goes on (this client stopped reading');
  });
});

describe('one reply line', () => {
  it('is at most MAX_REPLY_LINE_BYTES: endless bytes without a newline end in bad_reply and a closed connection', async () => {
    let closed = false;
    const { path } = await scriptedDaemon((_request, socket) => {
      socket.on('close', () => {
        closed = true;
      });
      const chunk = Buffer.alloc(1048576, 'x');
      let sent = 0;
      const more = () => {
        while (!closed && sent < MAX_REPLY_LINE_BYTES + 8 * 1048576) {
          sent += chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', more);
        }
      };
      more();
    });
    const client = await DaemonClient.connect(path);
    try {
      const reply = await within(20_000, client.request({ type: 'status' }));
      expect(reply).toMatchObject({ type: 'error', code: 'bad_reply' });
      expect((reply as { message: string }).message).toContain('longer than 64 MiB');
      expect(await client.next()).toBeUndefined();
      for (let i = 0; i < 100 && !closed; i++) await sleep(10);
      expect(closed).toBe(true);
    } finally {
      client.close();
    }
  });

  it('a long line under the bound is read whole', async () => {
    const text = 'y'.repeat(3 * 1048576);
    const { path } = await scriptedDaemon((_request, socket) => {
      socket.write(line({ type: 'output', sessionId: ID, line: text, seq: 1 }));
    });
    const client = await DaemonClient.connect(path);
    try {
      expect(await client.request({ type: 'logs', sessionId: ID })).toMatchObject({
        type: 'output',
        line: text,
      });
    } finally {
      client.close();
    }
  });
});

/** A daemon that answers each request with `replies` and then says nothing (it hangs); `requests` in order. */
function hangingDaemon(replies: (request: Request) => object[] = () => []) {
  return scriptedDaemon((request, socket) => {
    for (const reply of replies(request)) socket.write(line(reply));
  });
}

describe('heartbeats', () => {
  it('wait asks for them, and ends with no_answer when the daemon sends nothing for silenceMs', async () => {
    const daemon = await hangingDaemon();
    const result = await within(5000, waitForSession({ socket: daemon.path, sessionId: ID, silenceMs: 300 }));
    expect(result).toMatchObject({ kind: 'error', reply: { type: 'error', code: 'no_answer' } });
    const message = (result as { reply: { message: string } }).reply.message;
    expect(message).toContain('not even the heartbeat');
    expect(message).toContain(`agentd wait ${ID}`);
    expect(daemon.requests).toEqual([{ v: 2, type: 'wait', sessionId: ID, heartbeat: true }]);
  });

  it('wait: heartbeats keep a quiet session waited for, and the outcome ends it', async () => {
    const { path } = await scriptedDaemon((request, socket) => {
      let beats = 0;
      const timer = setInterval(() => {
        if (++beats <= 10) socket.write(line({ type: 'heartbeat' }));
        else {
          clearInterval(timer);
          socket.write(line({ type: 'outcome', sessionId: ID, record: RECORD }));
        }
      }, 60);
      socket.on('close', () => clearInterval(timer));
      expect(request.heartbeat).toBe(true);
    });
    const result = await within(5000, waitForSession({ socket: path, sessionId: ID, silenceMs: 300 }));
    expect(result).toEqual({ kind: 'outcome', record: RECORD });
  });

  it('wait: a daemon older than heartbeats refuses the field; the wait goes on without them', async () => {
    const daemon = await scriptedDaemon((request, socket) => {
      if (request.heartbeat !== undefined) {
        socket.write(
          line({
            type: 'error',
            code: 'bad_request',
            message: 'invalid request: heartbeat: unknown field; see docs/protocol.md',
            problems: [{ path: 'heartbeat', message: 'unknown field' }],
            retryable: false,
          }),
        );
        return;
      }
      // Quiet for longer than silenceMs: no heartbeats are owed by this daemon.
      setTimeout(() => socket.write(line({ type: 'outcome', sessionId: ID, record: RECORD })), 600);
    });
    const result = await within(5000, waitForSession({ socket: daemon.path, sessionId: ID, silenceMs: 300 }));
    expect(result).toEqual({ kind: 'outcome', record: RECORD });
    expect(daemon.requests.map((r) => r.heartbeat)).toEqual([true, undefined]);
  });

  it('logs --follow ends with no_answer when the daemon sends nothing for silenceMs', async () => {
    const daemon = await hangingDaemon((request) =>
      request.type === 'logs'
        ? [{ type: 'output', sessionId: ID, line: 'one', seq: 1, stream: 'stdout' }]
        : [],
    );
    const lines: string[] = [];
    const result = await within(
      5000,
      followSession({
        socket: daemon.path,
        sessionId: ID,
        afterSeq: 0,
        onOutput: (reply) => lines.push(reply.line),
        silenceMs: 300,
      }),
    );
    expect(result).toMatchObject({ kind: 'error', reply: { code: 'no_answer' } });
    expect((result as { reply: { message: string } }).reply.message).toContain(
      `agentd logs ${ID} --follow --after 1`,
    );
    expect(lines).toEqual(['one']);
    expect(daemon.requests).toEqual([{ v: 2, type: 'logs', sessionId: ID, follow: true, heartbeat: true }]);
  });

  it('trigger, once accepted, leaves 4 (no_answer) when the daemon sends nothing for silenceMs', async () => {
    const daemon = await hangingDaemon((request) =>
      request.type === 'trigger' ? [{ type: 'accepted', sessionId: ID, queued: false, position: 0 }] : [],
    );
    const stdout = collector();
    const stderr = collector();
    const code = await within(
      5000,
      runTrigger(triggerOptions(daemon.path, { json: true, silenceMs: 300 }), {
        stdout: stdout.stream,
        stderr: stderr.stream,
      }),
    );
    expect(code).toBe(EXIT.infrastructure);
    expect(JSON.parse(stdout.text())).toMatchObject({ error: 'no_answer', code: EXIT.infrastructure });
    expect(stderr.text()).toContain(`session ${ID} may still be running: \`agentd wait ${ID}\``);
    expect(daemon.requests[0]).toMatchObject({ type: 'trigger', follow: true, heartbeat: true });
  });

  it('trigger --detach asks for none', async () => {
    const daemon = await hangingDaemon(() => [
      { type: 'accepted', sessionId: ID, queued: false, position: 0 },
    ]);
    const code = await runTrigger(triggerOptions(daemon.path, { detach: true }), {
      stdout: new PassThrough(),
      stderr: new PassThrough(),
    });
    expect(code).toBe(EXIT.succeeded);
    expect(daemon.requests[0]).not.toHaveProperty('heartbeat');
  });
});

describe('Ctrl-C during trigger', () => {
  it('before the daemon answered: says the cancel waits for it; a second leaves (130), saying the trigger may have been accepted', async () => {
    const daemon = await hangingDaemon();
    const stderr = collector();
    const pending = runTrigger(triggerOptions(daemon.path), {
      stdout: new PassThrough(),
      stderr: stderr.stream,
    });
    while (daemon.requests.length === 0) await sleep(5);
    process.emit('SIGINT');
    expect(await within(300, pending)).toBe('still waiting');
    expect(stderr.text()).toBe(
      'agentd: the session is cancelled as soon as the daemon accepts the trigger; press Ctrl-C again to leave without waiting\n',
    );
    process.emit('SIGINT');
    expect(await within(2000, pending)).toBe(EXIT.interrupted);
    expect(stderr.text()).toContain('the trigger may still have been accepted');
    expect(stderr.text()).toContain('`agentd status`');
  });

  it('once accepted: cancels the session and waits for its outcome', async () => {
    const cancelled = { ...RECORD, outcome: 'cancelled' };
    const daemon = await hangingDaemon((request) =>
      request.type === 'trigger'
        ? [{ type: 'accepted', sessionId: ID, queued: false, position: 0 }]
        : [
            { type: 'cancelling', sessionId: ID, wasQueued: false },
            { type: 'outcome', sessionId: ID, record: cancelled },
          ],
    );
    const pending = runTrigger(triggerOptions(daemon.path), {
      stdout: new PassThrough(),
      stderr: new PassThrough(),
    });
    // Accepted once the trigger is in and answered; the Ctrl-C comes after.
    while (daemon.requests.length === 0) await sleep(5);
    await sleep(50);
    process.emit('SIGINT');
    expect(await within(2000, pending)).toBe(EXIT.cancelled);
    expect(daemon.requests.map((r) => r.type)).toEqual(['trigger', 'cancel']);
  });
});
