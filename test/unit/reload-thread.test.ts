/**
 * A reload's parse in a thread of its own (src/daemon/reload-thread.ts): what the thread hands back is
 * made again into the same settings and the same errors as the loader's in this thread; the running
 * definitions of unchanged agents are kept, not copied back; a thread that dies, runs out of its memory
 * or is ended by a stop gives a refusal, and nothing of it is left. The thread's module itself is dist's
 * (reload-worker.js, two lines over loadForReload); these tests give the loader small ones of their own,
 * and test/e2e/reload-large.test.ts runs the real one in a daemon.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Actor } from 'xstate';
import type { ServiceNotifier } from '../../src/adapters/sd-notify.js';
import { ConfigError, loadConfig, MAX_LISTED_PROBLEMS } from '../../src/config/load.js';
import type { Settings } from '../../src/config/types.js';
import { createReloader } from '../../src/daemon/reload.js';
import {
  AGENTS_PER_STEP,
  createThreadedLoader,
  loadForReload,
  type ReloadAnswer,
  rebuiltError,
  settingsOf,
} from '../../src/daemon/reload-thread.js';
import { AgentdError } from '../../src/errors.js';
import type { daemonMachine } from '../../src/machines/daemon.machine.js';
import { makeTempDir } from '../helpers/resources.js';

/** A thread's module as a data: URL (it imports nothing of agentd's). */
function workerOf(source: string): URL {
  return new URL(`data:text/javascript,${encodeURIComponent(source)}`);
}

function configText(dir: string, agents: string[]): string {
  return `daemon:\n  socket: ${dir}/agentd.sock\n  state_dir: ${dir}/state\nagents:\n${agents.join('')}`;
}

function agent(name: string, command: string): string {
  return `  - name: ${name}\n    image: localhost/x:1\n    command: [sh, -c, '${command}']\n    env: {A: "1"}\n`;
}

/** The agents of an answer as the thread gives them: a running one's index, or a new definition's name. */
function agentsOf(answer: ReloadAnswer): (number | string)[] {
  if (!('agents' in answer)) throw new Error('not loaded');
  return answer.agents
    .split('\n')
    .map((line) => (line.startsWith('{') ? JSON.parse(line).name : Number(line)));
}

/** As the thread's answer crosses to this one: postMessage's structured clone. */
async function throughThread(file: string, running: Settings['agents']): Promise<ReloadAnswer> {
  return structuredClone(await loadForReload({ file, running }));
}

describe("a reload's parse, as its thread hands it back", () => {
  it('is the loader’s settings, with the running definitions of the agents the file leaves as they are', async () => {
    const dir = makeTempDir('agentd-unit-reload-thread-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(file, configText(dir, [agent('a', 'echo a'), agent('b', 'echo b'), agent('c', 'echo c')]));
    const running = (await loadConfig({ flag: file })).agents;
    writeFileSync(file, configText(dir, [agent('c', 'echo c'), agent('b', 'echo B'), agent('d', 'echo d')]));
    const answer = await throughThread(file, running);
    // Only what changed crosses: c is the running one's index.
    expect(agentsOf(answer)).toEqual([2, 'b', 'd']);
    const next = await settingsOf(answer, running);
    expect(next).toEqual(await loadConfig({ flag: file }));
    expect(next.agents[0]).toBe(running[2]);
    expect(next.agents[1]).not.toBe(running[1]);
    // The next reload's thread is given the fingerprints this one made, not the definitions: the same answer.
    if (!('settings' in answer)) throw new Error('not loaded');
    const fromFingerprints = structuredClone(await loadForReload({ file, running: answer.fingerprints }));
    expect(fromFingerprints).toEqual(structuredClone(await loadForReload({ file, running: next.agents })));
    expect(agentsOf(fromFingerprints)).toEqual([0, 1, 2]);
    writeFileSync(file, configText(dir, [agent('c', 'echo c'), agent('b', 'echo b'), agent('d', 'echo d')]));
    const changed = structuredClone(await loadForReload({ file, running: answer.fingerprints }));
    expect(agentsOf(changed)).toEqual([0, 'b', 2]);
  });

  it('crosses as a few strings however many agents the file has, made into agents a step at a time', async () => {
    /** The objects, arrays and their items a structured clone copies one by one. */
    const items = (value: unknown): number => {
      if (value === null || typeof value !== 'object') return 1;
      return 1 + Object.values(value).reduce((sum: number, v) => sum + items(v), 0);
    };
    const many = (n: number) =>
      ({
        file: '/x.yaml',
        daemon: { maxSessions: 4 },
        hosts: [],
        agents: Array.from({ length: n }, (_, i) => ({ name: `agent-${i}`, image: 'x', command: ['true'] })),
      }) as unknown as Settings;
    const answerFor = (n: number, running: Settings['agents'] = []) =>
      loadForReload({ file: '/x.yaml', running }, async () => many(n));
    // 75,000 agents crossed as 75,000 objects (and 150,000 fingerprints): 1.8 s of the daemon's thread.
    const small = items(await answerFor(10));
    expect(items(await answerFor(5_000))).toBe(small);
    expect(small).toBeLessThan(20);
    // The daemon's thread makes them AGENTS_PER_STEP at a time, letting its loop turn in between.
    let pauses = 0;
    const running = many(1_000).agents;
    const settings = await settingsOf(await answerFor(2_000, running), running, async () => {
      pauses++;
    });
    expect(pauses).toBe(Math.ceil(2_000 / AGENTS_PER_STEP) - 1);
    expect(settings).toEqual(many(2_000));
    // The agents the file left as they run are the running definitions, not copies.
    expect(settings.agents[999]).toBe(running[999]);
    expect(settings.agents[1_000]).not.toBe(undefined);
  });

  it('gives the same errors: every problem with its line, the count past those listed, the file that is gone', async () => {
    const dir = makeTempDir('agentd-unit-reload-thread-');
    const file = join(dir, 'agentd.yaml');
    const inThread = async () =>
      loadConfig({ flag: file }).then(
        () => undefined,
        (error: unknown) => error,
      );
    // More problems than are listed: each agent without image and command.
    writeFileSync(
      file,
      configText(
        dir,
        Array.from({ length: MAX_LISTED_PROBLEMS + 40 }, (_, i) => `  - name: a${i}\n    network: nowhere\n`),
      ),
    );
    const invalid = (await inThread()) as ConfigError;
    expect(invalid).toBeInstanceOf(ConfigError);
    expect(invalid.total).toBeGreaterThan(MAX_LISTED_PROBLEMS);
    const answer = await throughThread(file, []);
    const rebuilt = (await (async () => {
      try {
        await settingsOf(answer, []);
      } catch (error) {
        return error;
      }
    })()) as ConfigError;
    expect(rebuilt).toBeInstanceOf(ConfigError);
    expect(rebuilt.message).toBe(invalid.message);
    expect(rebuilt.problems).toEqual(invalid.problems);
    expect(rebuilt.problems).toHaveLength(MAX_LISTED_PROBLEMS + 1);
    expect(rebuilt.total).toBe(invalid.total);
    expect(rebuilt.file).toBe(file);
    // A few problems: all of them, with line and column.
    writeFileSync(file, configText(dir, [agent('a', 'x'), '  - name: b\n    image: 3\n']));
    const few = (await inThread()) as ConfigError;
    const again = rebuiltError(
      (structuredClone(await loadForReload({ file, running: [] })) as { error: never }).error,
    ) as ConfigError;
    expect(again.message).toBe(few.message);
    expect(again.problems).toEqual(few.problems);
    expect(again.problems[0]?.line).toBeGreaterThan(0);
    // Gone: reload.ts tells it by its operation.
    rmSync(file);
    const gone = (await inThread()) as AgentdError;
    const goneAgain = rebuiltError(
      (structuredClone(await loadForReload({ file, running: [] })) as { error: never }).error,
    ) as AgentdError;
    expect(goneAgain).toBeInstanceOf(AgentdError);
    expect([goneAgain.code, goneAgain.operation, goneAgain.message]).toEqual([
      gone.code,
      gone.operation,
      gone.message,
    ]);
  });
});

describe("a reload's thread", () => {
  const file = '/etc/agentd/agentd.yaml';

  it('leaves the event loop free while it works, and hands its answer back', async () => {
    // The thread holds its own loop for a while, as a large file's parse does.
    const busy = workerOf(`
      import { parentPort, workerData } from 'node:worker_threads';
      let n = 0;
      for (let i = 0; i < 3e8; i++) n = (n + i) % 7;
      parentPort.postMessage({
        settings: { file: workerData.file, daemon: {}, hosts: [] },
        agents: '0\\n{"name":"b"}',
        fingerprints: { names: 'a\\nb', digests: 'x\\ny' },
      });
    `);
    const loader = createThreadedLoader({ worker: busy });
    let turns = 0;
    let counting = true;
    const count = () => {
      if (!counting) return;
      turns++;
      setTimeout(count, 1);
    };
    count();
    const running = [{ name: 'a' }] as Settings['agents'];
    const settings = await loader.load(file, running);
    counting = false;
    expect(settings.agents[0]).toBe(running[0]);
    expect(settings.agents[1]).toEqual({ name: 'b' });
    // Timers ran all along (in this thread, the loop would have turned once).
    expect(turns).toBeGreaterThan(20);
    await loader.close();
  });

  it('is given the fingerprints of the agents the last one applied, and the definitions of others', async () => {
    // Says what it was given, in the daemon settings it hands back.
    const echo = workerOf(`
      import { parentPort, workerData } from 'node:worker_threads';
      const given = Array.isArray(workerData.running) ? 'definitions' : 'fingerprints';
      parentPort.postMessage({
        settings: { file: workerData.file, daemon: { given }, hosts: [] },
        agents: '{"name":"a"}',
        fingerprints: { names: 'a', digests: 'd' },
      });
    `);
    const loader = createThreadedLoader({ worker: echo });
    const given = async (running: Settings['agents']) => {
      const settings = await loader.load(file, running);
      return [(settings.daemon as unknown as { given: string }).given, settings.agents] as const;
    };
    const [first, applied] = await given([{ name: 'a' }] as Settings['agents']);
    expect(first).toBe('definitions');
    expect((await given(applied))[0]).toBe('fingerprints');
    expect((await given([...applied]))[0]).toBe('definitions');
    await loader.close();
  });

  it('that runs out of its memory bound is a refusal that says so', async () => {
    const hungry = workerOf(`
      const kept = [];
      for (;;) kept.push(new Array(1e5).fill(Math.random()));
    `);
    const loader = createThreadedLoader({ worker: hungry, heapMb: 16 });
    await expect(loader.load(file, [])).rejects.toThrow(
      `reading ${file} took more than the 16 MB of memory a reload may use`,
    );
    await loader.close();
  });

  it('that fails or ends without an answer is a refusal, and the next reload has a thread of its own', async () => {
    const failing = createThreadedLoader({ worker: workerOf(`throw new Error('broken module');`) });
    await expect(failing.load(file, [])).rejects.toThrow("the reload's thread failed: broken module");
    await expect(failing.load(file, [])).rejects.toThrow("the reload's thread failed: broken module");
    const ending = createThreadedLoader({ worker: workerOf('process.exit(3);') });
    await expect(ending.load(file, [])).rejects.toThrow(
      "the reload's thread ended (exit code 3) without an answer",
    );
    await Promise.all([failing.close(), ending.close()]);
  });

  it('that takes longer than its time limit is ended and refused, and the next reload has a thread of its own', async () => {
    const dir = makeTempDir('agentd-unit-reload-thread-');
    const beat = join(dir, 'beat');
    const quick = join(dir, 'quick');
    writeFileSync(beat, '');
    // Never answers for the file "beat" (says it is alive there, as a check that never ends); answers at
    // once for any other.
    const sometimes = workerOf(`
      import { appendFileSync } from 'node:fs';
      import { parentPort, workerData } from 'node:worker_threads';
      if (workerData.file.endsWith('beat')) setInterval(() => appendFileSync(workerData.file, '.'), 2);
      else parentPort.postMessage({
        settings: { file: workerData.file, daemon: {}, hosts: [] },
        agents: '{"name":"a"}',
        fingerprints: { names: 'a', digests: 'd' },
      });
    `);
    const loader = createThreadedLoader({ worker: sometimes, timeLimitMs: 3000 });
    const error = await loader.load(beat, []).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(AgentdError);
    expect((error as AgentdError).message).toBe(
      `reading and checking ${beat} took more than the 3 s a reload may take, and was ended; make it smaller (an agent of thousands of mounts takes minutes to check; agentd validate --config ${beat} shows how long), or restart the daemon to load it (a start has no such limit)`,
    );
    expect((error as AgentdError).operation).toBe('reload configuration');
    // The thread was ended: it writes no more.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const size = readFileSync(beat).length;
    expect(size).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(readFileSync(beat).length).toBe(size);
    // The next reload is not held behind it.
    expect((await loader.load(quick, [])).agents).toEqual([{ name: 'a' }]);
    await loader.close();
  });

  it('that takes longer than its time limit is told as a reload that changed nothing, and the next one applies', async () => {
    const dir = makeTempDir('agentd-unit-reload-thread-');
    const slow = join(dir, 'slow');
    const endless = workerOf(`
      import { parentPort, workerData } from 'node:worker_threads';
      if (workerData.file.endsWith('slow')) setInterval(() => {}, 1000);
      else parentPort.postMessage({ error: { message: 'answered' } });
    `);
    const loader = createThreadedLoader({ worker: endless, timeLimitMs: 3000 });
    let file = slow;
    const actor = {
      getSnapshot: () => ({
        context: { agents: [], maxSessions: 1, sessions: {}, queue: [] },
        matches: () => false,
      }),
    } as unknown as Actor<typeof daemonMachine>;
    const reload = createReloader({
      started: { file: slow } as Settings,
      actor,
      log: pino({ level: 'silent' }),
      notify: { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier,
      load: (_, running) => loader.load(file, running),
    });
    const first = await reload('request');
    expect(first.type).toBe('reload_failed');
    expect(first.message).toMatch(
      /took more than the 3 s a reload may take, and was ended; .*\nThe daemon keeps running with the configuration it had\.$/,
    );
    file = join(dir, 'other');
    expect((await reload('request')).message).toMatch(/^answered\n/);
    await loader.close();
  });

  it('is ended by a stop: its reload is refused, and so is one asked for after', async () => {
    const dir = makeTempDir('agentd-unit-reload-thread-');
    const beat = join(dir, 'beat');
    writeFileSync(beat, '');
    // Never answers; says it is alive in the file it was given.
    const endless = workerOf(`
      import { appendFileSync } from 'node:fs';
      import { workerData } from 'node:worker_threads';
      setInterval(() => appendFileSync(workerData.file, '.'), 2);
    `);
    const loader = createThreadedLoader({ worker: endless });
    const load = loader.load(beat, []);
    while (statSync(beat).size < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    await loader.close();
    await expect(load).rejects.toThrow(
      'the daemon is stopping: the file was not read to the end and nothing changed',
    );
    const size = readFileSync(beat).length;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(readFileSync(beat).length).toBe(size);
    await expect(loader.load(beat, [])).rejects.toThrow('the daemon is stopping');
  });

  it('refused is told as a reload that changed nothing', async () => {
    const loader = createThreadedLoader({ worker: workerOf('process.exit(0);') });
    await loader.close();
    const actor = {
      getSnapshot: () => ({
        context: { agents: [], maxSessions: 1, sessions: {}, queue: [] },
        matches: () => false,
      }),
    } as unknown as Actor<typeof daemonMachine>;
    const reload = createReloader({
      started: { file } as Settings,
      actor,
      log: pino({ level: 'silent' }),
      notify: { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier,
      load: loader.load,
    });
    const answer = await reload('SIGHUP');
    expect(answer.type).toBe('reload_failed');
    expect(answer.message).toMatch(
      /the daemon is stopping.*\nThe daemon keeps running with the configuration it had\.$/,
    );
  });
});
