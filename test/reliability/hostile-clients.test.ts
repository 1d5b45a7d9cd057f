/**
 * Hostile clients on the daemon's socket: random bytes, over-long lines, deep nesting, wrong types,
 * unknown messages, thousands of dropped connections, stalled half lines, a seeded fuzzer and a flood
 * past the connection cap. Throughout, a well-behaved client asks for `status` and must be answered
 * promptly; after it all the daemon answers `hello` and its memory stayed bounded. One client pipelining
 * thousands of triggers must not keep the others waiting for it either.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES } from '../../src/constants.js';
import { MAX_STREAMS_PER_CONNECTION } from '../../src/protocol/streams.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { startGitServer } from '../helpers/git-server.js';
import { Fuzzer, isEffective } from './fuzz.js';
import { afterEachTest, agent, recordFigures } from './harness.js';

const SEED = 0x5eed_a6e7;
const FUZZ_MS = 12_000;

const daemons: TestDaemon[] = [];
const figures: Record<string, number> & { objectsLeftBehind: number } = { objectsLeftBehind: 0 };

afterAll(() => recordFigures('hostile-clients', { ...figures, fuzzSeed: SEED }));
afterEach(() => afterEachTest(figures, daemons));

function rssKb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? Number.NaN);
}

/** A connection that collects reply lines and can wait for one that matches. */
class Client {
  readonly socket: Socket;
  closed = false;
  /** The last reply received, consumed by waitFor or not: what the daemon said last before a close. */
  lastReply: Record<string, unknown> | undefined;
  private buffer = '';
  private readonly replies: Record<string, unknown>[] = [];
  private waiter: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('utf8');
      for (let nl = this.buffer.indexOf('\n'); nl !== -1; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        let reply: Record<string, unknown>;
        try {
          reply = JSON.parse(line) as Record<string, unknown>;
        } catch {
          reply = { type: 'unparseable', line };
        }
        this.replies.push(reply);
        this.lastReply = reply;
        // Keep memory flat on long fuzz runs.
        if (this.replies.length > 200) this.replies.splice(0, 100);
      }
      this.waiter?.();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  static open(path: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new Client(socket)));
      socket.once('error', reject);
    });
  }

  write(data: Buffer | string): void {
    if (!this.closed) this.socket.write(data);
  }

  /** The first reply (already received or still to come) that matches; undefined on close or timeout. */
  async waitFor(match: (reply: Record<string, unknown>) => boolean, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.replies.findIndex(match);
      if (index !== -1) return this.replies.splice(0, index + 1).at(-1);
      if (this.closed || Date.now() > deadline) return undefined;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, Math.max(0, deadline - Date.now())).unref();
      });
      this.waiter = undefined;
    }
  }

  /** Sends a request with an id and waits for the reply carrying it. */
  async ask(message: Record<string, unknown>, timeoutMs = 5000) {
    const id = `ask-${Math.random().toString(16).slice(2)}`;
    this.write(`${JSON.stringify({ v: 1, id, ...message })}\n`);
    return this.waitFor((r) => r.id === id, timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Whether the daemon closing a connection after a fuzz input is what docs/protocol.md (Limits) says it
 * does. Of its limits, one closes a connection at once: unfinished lines of all connections together past
 * 64 MiB, answered with one `busy` error without an `id`, the last message. The others do not apply or do
 * not close: a line over the 16 MiB maximum gets `line_too_long` and the connection stays usable (no fuzz
 * input comes near it: the largest are about 70 KB); a half-written line is closed after 30 s, but every
 * input ends with its `\n`; an idle connection is ended after 60 s, but this one sends a request at
 * least every 10 s; a client that stops reading is closed, but this one reads all along; the
 * open-stream limit answers `busy` and keeps the connection.
 */
function documentedClose(lastReply: Record<string, unknown> | undefined): boolean {
  return lastReply?.type === 'error' && lastReply.code === 'busy' && lastReply.id === undefined;
}

/** A fuzz input as a finding: its number in the seed's sequence, its size and its start, to replay it. */
function describeInput(n: number, input: Buffer): string {
  return `input #${n} (${input.length} bytes; base64 of the first 200: ${input.subarray(0, 200).toString('base64')})`;
}

/** A well-behaved client asking `status` on a fresh connection every 250 ms; records how it fared. */
function startProbe(path: string) {
  const latencies: number[] = [];
  const failures: string[] = [];
  let paused = false;
  let running = true;
  const loop = (async () => {
    while (running) {
      if (!paused) {
        const started = performance.now();
        try {
          const client = await Client.open(path);
          const reply = await client.ask({ type: 'status' }, 5000);
          client.close();
          if (reply?.type === 'status') latencies.push(performance.now() - started);
          else failures.push(`status got ${JSON.stringify(reply)}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
      await sleep(250);
    }
  })();
  return {
    latencies,
    failures,
    pause: (value: boolean) => {
      paused = value;
    },
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

describe('hostile clients', () => {
  it('keep the daemon up, responsive and bounded in memory', { timeout: 120_000 }, async () => {
    const d = await startDaemon({
      agents: [agent('reliability-target', 'git://127.0.0.1:9/none.git', ['true'])],
    });
    daemons.push(d);
    const path = d.socketPath;
    const rssBefore = rssKb(d.pid);
    const probe = startProbe(path);

    // 50 clients send half a request and stall: the daemon drops them after its 30 s partial-line timeout.
    const stallStarted = Date.now();
    const stallers = await Promise.all(Array.from({ length: 50 }, () => Client.open(path)));
    for (const s of stallers) s.write('{"v":1,"type":"hel');

    // Named attacks, each answered with an error on a connection that keeps working.
    const attacker = await Client.open(path);
    const attacks: [string, Buffer | string, string][] = [
      ['random bytes', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x80, 0x7b]), 'bad_json'],
      ['wrong types', '{"v":1,"type":"trigger","agent":42,"follow":"yes"}', 'bad_request'],
      ['unknown type', '{"v":1,"type":"reboot"}', 'bad_request'],
      ['wrong version', '{"v":3,"type":"hello"}', 'unsupported_version'],
      ['not an object', '[1,2,3]', 'bad_request'],
      // Refused for its depth before it is parsed (src/protocol/json-keys.ts), closed or not.
      ['deep arrays, unclosed', '['.repeat(100_000), 'bad_request'],
      ['deep arrays, closed', `${'['.repeat(100_000)}${']'.repeat(100_000)}`, 'bad_request'],
      [
        'deep objects',
        `{"v":1,"type":"hello","client":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`,
        'bad_request',
      ],
      ['line over the limit', 'x'.repeat(MAX_LINE_BYTES + 10), 'line_too_long'],
      [
        'line over the limit in pieces',
        `${'{"v":1,"type":"hello","client":"'}${'y'.repeat(2 * MAX_LINE_BYTES)}"}`,
        'line_too_long',
      ],
    ];
    for (const [name, payload, code] of attacks) {
      if (name.endsWith('in pieces')) {
        const data = Buffer.from(payload);
        for (let i = 0; i < data.length; i += 64 * 1024) attacker.write(data.subarray(i, i + 64 * 1024));
        attacker.write('\n');
      } else {
        attacker.write(payload);
        attacker.write('\n');
      }
      const reply = await attacker.waitFor((r) => r.type === 'error', 10_000);
      expect(reply, name).toMatchObject({ type: 'error', code });
      expect((await attacker.ask({ type: 'hello' }))?.type, `hello after ${name}`).toBe('hello');
    }
    attacker.close();
    let inputs = attacks.length + stallers.length;

    // Thousands of connections opened and dropped, some after writing part of a line. A connect
    // completes once the kernel queued it, so each batch ends with a round trip: the flood must not
    // outrun the listen backlog (connect would fail with EAGAIN for everyone, which is the kernel's
    // doing, not the daemon's).
    const churn = 3000;
    for (let done = 0; done < churn; done += 50) {
      if (done > 0) {
        const sync = await Client.open(path);
        expect((await sync.ask({ type: 'hello' }, 10_000))?.type).toBe('hello');
        sync.close();
      }
      await Promise.all(
        Array.from(
          { length: 50 },
          (_, i) =>
            new Promise<void>((resolve) => {
              const socket = connect(path);
              socket.on('error', () => resolve());
              socket.on('connect', () => {
                if ((done + i) % 3 === 0) socket.write('{"v":1,"ty');
                if ((done + i) % 3 === 1) socket.write('{"v":1,"type":"status"}\n');
                socket.destroy();
                resolve();
              });
            }),
        ),
      );
    }
    inputs += churn;

    // The seeded fuzzer: 8 connections, each input followed by a hello that must be answered, on the
    // same connection: the daemon closes one only for a reason docs/protocol.md gives (documentedClose).
    const fuzzer = new Fuzzer(SEED);
    let drawn = 0;
    let tried = 0;
    let skipped = 0;
    let reconnects = 0;
    let documentedCloses = 0;
    const unanswered: string[] = [];
    const closedBy: string[] = [];
    const fuzzUntil = Date.now() + FUZZ_MS;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        let client = await Client.open(path);
        /** The input last written on this connection, for a close noticed only after its hello. */
        let previous = 'no input yet';
        const reopen = async () => {
          client.close();
          client = await Client.open(path);
          reconnects++;
        };
        while (Date.now() < fuzzUntil) {
          if (client.closed) {
            // Closed after the hello that followed the previous input was answered.
            if (documentedClose(client.lastReply)) documentedCloses++;
            else
              closedBy.push(
                `after ${previous} and its hello: last reply ${JSON.stringify(client.lastReply)}`,
              );
            await reopen();
          }
          const n = drawn++;
          const input = fuzzer.next();
          if (isEffective(input)) {
            skipped++;
            continue;
          }
          previous = describeInput(n, input);
          client.write(input);
          client.write('\n');
          tried++;
          const reply = await client.ask({ type: 'hello' }, 10_000);
          if (reply?.type !== 'hello') {
            if (!client.closed) unanswered.push(previous);
            else if (documentedClose(client.lastReply)) documentedCloses++;
            else closedBy.push(`${previous}: last reply ${JSON.stringify(client.lastReply)?.slice(0, 300)}`);
            await reopen();
          }
        }
        client.close();
      }),
    );
    inputs += tried;
    expect(unanswered, 'fuzz inputs after which a live connection stopped answering').toEqual([]);
    expect(
      closedBy,
      'fuzz inputs after which the daemon closed the connection, which docs/protocol.md does not say it does',
    ).toEqual([]);
    expect(reconnects, 'every reconnect is for a documented close').toBe(documentedCloses);
    expect(tried).toBeGreaterThan(1000);

    // More connections than the cap: the extra ones are told `busy`, and service resumes after.
    probe.pause(true);
    await sleep(300);
    const stillStalled = stallers.filter((s) => !s.closed).length;
    const flood = await Promise.all(
      Array.from({ length: 320 }, () => Client.open(path).catch(() => undefined)),
    );
    const busy = await Promise.all(
      flood.map((c) => c?.waitFor((r) => r.code === 'busy', 2000).then((r) => r !== undefined) ?? false),
    );
    const refused = busy.filter(Boolean).length;
    expect(refused, 'connections past the cap of 256 refused as busy').toBeGreaterThanOrEqual(
      320 + stillStalled - 256 - 2,
    );
    for (const c of flood) c?.close();
    inputs += flood.length;
    await sleep(300);
    probe.pause(false);

    // The stalled half lines are dropped by the daemon, not kept forever.
    const stalledFor = await Promise.all(
      stallers.map(async (s) => {
        const reply = await s.waitFor(() => false, Math.max(0, stallStarted + 45_000 - Date.now()));
        expect(reply).toBeUndefined();
        return s.closed ? Date.now() - stallStarted : Number.POSITIVE_INFINITY;
      }),
    );
    expect(Math.max(...stalledFor), 'stalled clients disconnected after ~30 s').toBeLessThan(45_000);
    expect(Math.min(...stalledFor)).toBeGreaterThanOrEqual(29_000);

    await probe.stop();
    const final = await Client.open(path);
    const hello = await final.ask({ type: 'hello' });
    final.close();
    expect(hello).toMatchObject({ type: 'hello', state: 'ready', pid: d.pid });
    expect(d.running).toBe(true);
    const rssAfter = rssKb(d.pid);
    const maxLatency = Math.max(...probe.latencies);
    expect(probe.failures, 'the well-behaved client was always answered').toEqual([]);
    expect(probe.latencies.length).toBeGreaterThan(20);
    expect(maxLatency, 'status latency during the attack (ms)').toBeLessThan(2000);
    expect(rssAfter - rssBefore, 'RSS growth in kB').toBeLessThan(100 * 1024);
    Object.assign(figures, {
      fuzzInputsTried: tried,
      fuzzInputsSkippedAsEffective: skipped,
      fuzzReconnects: reconnects,
      fuzzDocumentedCloses: documentedCloses,
      hostileInputsTotal: inputs,
      connectionsChurned: churn,
      refusedBusy: refused,
      statusProbes: probe.latencies.length,
      statusMaxLatencyMs: Math.round(maxLatency),
      rssBeforeKb: rssBefore,
      rssAfterKb: rssAfter,
    });
    expect(await d.stop()).toBe(0);
  });

  it('pipelining thousands of triggers on one connection keeps other clients served, each accepted one recorded once', {
    timeout: 420_000,
  }, async () => {
    const d = await startDaemon({
      agents: [agent('reliability-flood', 'git://127.0.0.1:9/none.git', ['true'])],
    });
    daemons.push(d);
    const path = d.socketPath;
    // Nothing runs: the only host is drained, so every trigger is accepted into the queue (its record
    // written durably first, the work each request does synchronously).
    const control = await Client.open(path);
    expect(await control.ask({ v: 2, type: 'drain', host: 'local' })).toMatchObject({
      type: 'drained',
      drained: true,
    });
    const statusLatency = async () => {
      const started = performance.now();
      const reply = await control.ask({ type: 'status' }, 30_000);
      expect(reply?.type).toBe('status');
      return performance.now() - started;
    };
    // Idle: a status every 10 ms, nothing else asked; the median.
    const idleStatus = async () => {
      const latencies: number[] = [];
      for (let i = 0; i < 30; i++) {
        latencies.push(await statusLatency());
        await sleep(10);
      }
      return latencies.sort((a, b) => a - b)[Math.floor(latencies.length / 2)] as number;
    };
    const idleEmptyMs = await idleStatus();

    // 3,000 triggers in one write: before, handled in one go (~1.5 ms each) while nobody else was.
    const triggers = 3000;
    const flooder = connect(path);
    await new Promise((resolve) => flooder.once('connect', resolve));
    const replies = new Map<string, Record<string, unknown>[]>();
    let replyCount = 0;
    let pending = '';
    flooder.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        const reply = JSON.parse(pending.slice(0, nl)) as Record<string, unknown>;
        pending = pending.slice(nl + 1);
        const id = String(reply.id);
        replies.set(id, [...(replies.get(id) ?? []), reply]);
        replyCount++;
      }
    });
    flooder.write(
      Array.from(
        { length: triggers },
        (_, i) => `${JSON.stringify({ v: 2, id: `f${i}`, type: 'trigger', agent: 'reliability-flood' })}\n`,
      ).join(''),
    );
    const flooded = performance.now();
    const during: number[] = [];
    // 13 s on an idle machine; over 60 s once beside other test files and a daemon's benchmarks (load 12):
    // the durable record each trigger writes first waits for a disk and a CPU shared with them.
    while (replyCount < triggers && performance.now() - flooded < 120_000) {
      during.push(await statusLatency());
      await sleep(20);
    }
    const floodMs = performance.now() - flooded;
    expect(replyCount, 'replies to the pipelined triggers').toBe(triggers);
    flooder.destroy();
    // The status reply lists every queued session: idle again with all of them queued, it costs the most.
    const idleMs = await idleStatus();
    const worstMs = Math.max(...during);
    const sorted = [...during].sort((a, b) => a - b);
    console.log(
      `status: idle median ${idleEmptyMs.toFixed(2)} ms (empty queue), ${idleMs.toFixed(2)} ms (${triggers} queued); ${during.length} during the flood of ${triggers} triggers (${Math.round(floodMs)} ms): median ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)} ms, p90 ${sorted[Math.floor(sorted.length * 0.9)]?.toFixed(1)} ms, worst ${worstMs.toFixed(1)} ms`,
    );
    // Asked all along the flood, and never held for it: before, the first waited for all of it. The 95th
    // percentile against idle: on a loaded CI machine (other test files' containers on the same two
    // cores) one status in a few hundred can wait for a CPU, the daemon or not (one waited 112 times the
    // idle median, ~1 s); so the worst is bounded against what being held for the flood would cost.
    const p95Ms = sorted[Math.floor(sorted.length * 0.95)] as number;
    expect(p95Ms / idleMs, 'p95 status latency during the flood / idle').toBeLessThan(25);
    expect(worstMs / floodMs, 'worst status latency during the flood / the flood').toBeLessThan(0.3);
    expect(during.length, 'status asked during the flood').toBeGreaterThan(10);

    // Every trigger answered once; every accepted one has exactly one record.
    const accepted: string[] = [];
    for (let i = 0; i < triggers; i++) {
      const answers = replies.get(`f${i}`) ?? [];
      expect(answers, `replies to f${i}`).toHaveLength(1);
      if (answers[0]?.type === 'accepted') accepted.push(String(answers[0].sessionId));
    }
    expect(accepted.length, 'triggers accepted').toBe(triggers);
    expect(new Set(accepted).size).toBe(accepted.length);
    const recorded = new Map<string, number>();
    for (const record of d.records()) recorded.set(record.id, (recorded.get(record.id) ?? 0) + 1);
    expect(
      accepted.filter((id) => recorded.get(id) !== 1),
      'accepted without exactly one record',
    ).toEqual([]);
    expect(recorded.size).toBe(accepted.length);

    expect(await control.ask({ type: 'hello' })).toMatchObject({ type: 'hello', state: 'ready', pid: d.pid });
    control.close();
    Object.assign(figures, {
      floodTriggers: triggers,
      floodStatusIdleMs: Math.round(idleMs * 10) / 10,
      floodStatusWorstMs: Math.round(worstMs),
    });
    // The stop ends the 3,000 queued sessions `cancelled`, each with its durable record: 7 s on an idle
    // machine, and over the helper's 60 s (then killed: null) once beside other test files at load 15.
    expect(await d.stop('SIGTERM', 240_000)).toBe(0);
  });

  it('hold the daemon to little per connection: unread replies and open waits are bounded', {
    timeout: 120_000,
  }, async () => {
    const git = await startGitServer();
    try {
      const d = await startDaemon({ agents: [agent('reliability-long', git.url(), ['sleep', '6'])] });
      daemons.push(d);
      const path = d.socketPath;
      const rssBefore = rssKb(d.pid);
      const probe = startProbe(path);
      const trigger = await Client.open(path);
      const accepted = await trigger.ask({ type: 'trigger', agent: 'reliability-long' }, 10_000);
      const sessionId = String(accepted?.sessionId);
      expect(accepted).toMatchObject({ type: 'accepted' });

      // 3,000 status requests of version 2 in one write, and nothing read: the daemon answers what the
      // buffers hold and reads no further (each answer queued meant 15 MB, and closing it recursed).
      const deaf = await Client.open(path);
      deaf.socket.pause();
      deaf.write(Array.from({ length: 3000 }, (_, i) => `{"v":2,"id":"s${i}","type":"status"}\n`).join(''));

      // 20,000 waits for the running session on one connection: the first 64 wait, the rest are busy.
      const waits = 20_000;
      const waiter = connect(path);
      let received = '';
      waiter.on('data', (chunk: Buffer) => {
        received += chunk.toString('utf8');
      });
      await new Promise((resolve) => waiter.once('connect', resolve));
      waiter.write(
        Array.from(
          { length: waits },
          (_, i) => `${JSON.stringify({ v: 2, id: `w${i}`, type: 'wait', sessionId })}\n`,
        ).join(''),
      );
      const count = (text: string) => received.split(text).length - 1;
      const deadline = Date.now() + 20_000;
      while (count('"code":"busy"') < waits - MAX_STREAMS_PER_CONNECTION && Date.now() < deadline)
        await sleep(100);
      expect(count('"code":"busy"')).toBe(waits - MAX_STREAMS_PER_CONNECTION);
      const rssDuring = rssKb(d.pid);

      // The session ends: each open wait gets its one outcome.
      while (count('"type":"outcome"') < MAX_STREAMS_PER_CONNECTION && Date.now() < deadline + 30_000)
        await sleep(100);
      expect(count('"type":"outcome"')).toBe(MAX_STREAMS_PER_CONNECTION);
      expect(received).toContain('"outcome":"succeeded"');
      expect(count('"outcome":"failed"') + count('"outcome":"error"')).toBe(0);
      waiter.destroy();
      deaf.close();
      trigger.close();

      await probe.stop();
      const final = await Client.open(path);
      const hello = await final.ask({ type: 'hello' });
      final.close();
      expect(hello).toMatchObject({ type: 'hello', state: 'ready', pid: d.pid });
      expect(probe.failures, 'the well-behaved client was always answered').toEqual([]);
      expect(Math.max(...probe.latencies), 'status latency during the attack (ms)').toBeLessThan(2000);
      expect(rssDuring - rssBefore, 'RSS growth in kB').toBeLessThan(50 * 1024);
      Object.assign(figures, {
        waitsRefusedBusy: waits - MAX_STREAMS_PER_CONNECTION,
        rssDuringWaitFloodKb: rssDuring,
      });
      expect(await d.stop()).toBe(0);
    } finally {
      await git.stop();
    }
  });
});
