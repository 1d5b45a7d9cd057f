/**
 * What a daemon keeps of the configuration it started with once a reload replaced it: the reloader's
 * `started` (src/daemon/reload.ts) and the settings held by the start (src/daemon/agents-in-force.ts)
 * kept every definition of the start for the daemon's life. Measured with bench/reload-memory.mjs's file
 * of 52,401 one-line agents: a heap snapshot after a reload that changed them all had 120 MB alive (68 MB
 * once released), the start's agents held by the reloader's `started`, supervise's `settings`, the frames
 * of runStart and runDaemon, and the daemon machine's input (XState keeps it). test/e2e/reload-memory.test.ts
 * looks for them in a real daemon's heap.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Actor } from 'xstate';
import type { ServiceNotifier } from '../../src/adapters/sd-notify.js';
import { loadConfig } from '../../src/config/load.js';
import type { AgentConfig } from '../../src/config/types.js';
import { agentsInForce } from '../../src/daemon/agents-in-force.js';
import { createReloader } from '../../src/daemon/reload.js';
import type { daemonMachine } from '../../src/machines/daemon.machine.js';
import { makeTempDir } from '../helpers/resources.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Collects garbage once the current job is over (a WeakRef read in it keeps its target until then). */
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
  }
}

function configText(dir: string, word: string): string {
  const lines = Array.from(
    { length: 50 },
    (_, i) => `  - {name: a${i}, image: localhost/x:1, command: [echo, ${word}]}\n`,
  );
  return `daemon:\n  socket: ${dir}/agentd.sock\n  state_dir: ${dir}/state\nagents:\n${lines.join('')}`;
}

/** The daemon machine as the reloader sees it: its agents, and `reload.applied` to each `reload`. */
function fakeActor(agents: AgentConfig[]): Actor<typeof daemonMachine> {
  const listeners = new Map<string, (answer: unknown) => void>();
  let current = agents;
  return {
    getSnapshot: () => ({
      status: 'active',
      context: { agents: current, maxSessions: 1, sessions: {}, queue: [] },
      matches: () => false,
    }),
    on: (type: string, listener: (answer: unknown) => void) => {
      listeners.set(type, listener);
      return { unsubscribe: () => listeners.delete(type) };
    },
    send: (event: { type: string; requestId: string; agents: AgentConfig[]; maxSessions: number }) => {
      current = event.agents;
      listeners.get('reload.applied')?.({
        type: 'reload.applied',
        requestId: event.requestId,
        agents: event.agents.map((a) => a.name),
        maxSessions: event.maxSessions,
      });
    },
  } as unknown as Actor<typeof daemonMachine>;
}

/** A reloader on a file's settings, after a reload that changed every agent; the start's agents by a WeakRef. */
async function reloaded(): Promise<{ reload: ReturnType<typeof createReloader>; start: WeakRef<object> }> {
  const dir = makeTempDir('agentd-unit-reload-retention-');
  const file = join(dir, 'agentd.yaml');
  writeFileSync(file, configText(dir, 'one'));
  const started = await loadConfig({ flag: file });
  const start = new WeakRef(started.agents);
  const reload = createReloader({
    started,
    actor: fakeActor(started.agents),
    log: pino({ level: 'silent' }),
    notify: { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier,
  });
  writeFileSync(file, configText(dir, 'two'));
  const reply = await reload('request');
  if (reply.type !== 'reloaded') throw new Error(`reload: ${reply.message}`);
  return { reload, start };
}

describe('the configuration a daemon started with, once a reload replaced it', () => {
  it('is not held by the reloader', async () => {
    const { reload, start } = await reloaded();
    await collect();
    expect(start.deref() === undefined, "the start's agents, after the reload").toBe(true);
    // The reloader is still there (and reloads again): what it holds is what a daemon keeps.
    expect(typeof reload).toBe('function');
  });

  it('is collected once after a reload that changed agents, not after one that changed none or failed', async () => {
    const dir = makeTempDir('agentd-unit-reload-retention-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(file, configText(dir, 'one'));
    const started = await loadConfig({ flag: file });
    let collected = 0;
    const reload = createReloader({
      started,
      actor: fakeActor(started.agents),
      log: pino({ level: 'silent' }),
      notify: { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier,
      collect: () => collected++,
    });
    expect((await reload('request')).type).toBe('reloaded');
    expect(collected).toBe(0);
    writeFileSync(file, configText(dir, 'two'));
    // A burst answered by one reload: one collection.
    const answers = await Promise.all([reload('request'), reload('SIGHUP'), reload('request')]);
    expect(answers.map((a) => a.type)).toEqual(['reloaded', 'reloaded', 'reloaded']);
    expect(collected).toBe(1);
    writeFileSync(file, 'agents: [');
    expect((await reload('request')).type).toBe('reload_failed');
    expect(collected).toBe(1);
  });

  it('is not held by the settings and input the start keeps: they read the agents in force', async () => {
    let current = [{ name: 'started' }] as AgentConfig[];
    const settings = { file: '/etc/agentd/agentd.yaml', agents: current };
    const input = { agents: current, maxSessions: 1 };
    const start = new WeakRef(current);
    agentsInForce([settings, input], () => current);
    current = [{ name: 'reloaded' }] as AgentConfig[];
    await collect();
    expect(start.deref() === undefined, "the start's agents, after the reload").toBe(true);
    expect(settings.agents.map((a) => a.name)).toEqual(['reloaded']);
    expect(input.agents.map((a) => a.name)).toEqual(['reloaded']);
    expect(Object.keys(settings)).toEqual(['file', 'agents']);
  });
});
