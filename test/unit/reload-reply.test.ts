/**
 * A reload's reply (src/daemon/reload.ts, docs/protocol.md `reload`) names at most the first 20 agents in
 * force and of each change, in the file's order, and says how many there are in `counts`: it named every
 * one, 921 KB for a 4 MiB file of 52,000 one-line agents that all changed and 460 KB when none had, sent
 * whole to `agentd reload --json` and `POST /v1/reload`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Actor } from 'xstate';
import type { ServiceNotifier } from '../../src/adapters/sd-notify.js';
import { listedChanges, MAX_NAMED_AGENTS } from '../../src/config/diff.js';
import { loadConfig } from '../../src/config/load.js';
import type { AgentConfig } from '../../src/config/types.js';
import { createReloader } from '../../src/daemon/reload.js';
import type { daemonMachine } from '../../src/machines/daemon.machine.js';
import { makeTempDir } from '../helpers/resources.js';

function configText(dir: string, agents: { name: string; word: string }[]): string {
  const lines = agents.map(
    ({ name, word }) => `  - {name: ${name}, image: localhost/x:1, command: [echo, ${word}]}\n`,
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

describe("a reload's reply", () => {
  it('names the first 20 agents in force and of each change, and counts them all', async () => {
    const dir = makeTempDir('agentd-unit-reload-reply-');
    const file = join(dir, 'agentd.yaml');
    const names = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `a${from + i}`);
    // 100 agents; then a0..a29 removed, a30..a79 changed, a80..a99 as they were, b0..b59 added.
    writeFileSync(
      file,
      configText(
        dir,
        names(0, 100).map((name) => ({ name, word: 'one' })),
      ),
    );
    const started = await loadConfig({ flag: file });
    writeFileSync(
      file,
      configText(dir, [
        ...names(30, 80).map((name) => ({ name, word: 'two' })),
        ...names(80, 100).map((name) => ({ name, word: 'one' })),
        ...Array.from({ length: 60 }, (_, i) => ({ name: `b${i}`, word: 'new' })),
      ]),
    );
    const lines: Record<string, unknown>[] = [];
    const reload = createReloader({
      started,
      actor: fakeActor(started.agents),
      log: pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) }),
      notify: { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier,
    });
    const reply = await reload('request');
    expect(reply).toMatchObject({
      type: 'reloaded',
      agents: names(30, 50),
      added: Array.from({ length: 20 }, (_, i) => `b${i}`),
      changed: names(30, 50),
      removed: names(0, 20),
      counts: { agents: 130, added: 60, changed: 50, removed: 30 },
    });
    expect(reply.message).toContain('changed a30, a31');
    expect(reply.message).toContain('a49 and 30 more');
    // The log line names as many.
    const logged = lines.find((line) => line.event === 'daemon.reloaded');
    expect(logged).toMatchObject({
      agents: 130,
      added: (reply as { added: string[] }).added,
      counts: { added: 60, changed: 50, removed: 30 },
    });
    // Whatever the file holds, the reply stays small: every list at 20.
    expect(JSON.stringify(reply).length).toBeLessThan(2_000);
  });

  it('lists every name when there are 20 or fewer', () => {
    const listed = listedChanges(['a', 'b', 'c'], { added: ['c'], changed: [], removed: ['z'] });
    expect(listed).toEqual({
      agents: ['a', 'b', 'c'],
      added: ['c'],
      changed: [],
      removed: ['z'],
      counts: { agents: 3, added: 1, changed: 0, removed: 1 },
    });
    const many = Array.from({ length: 75_000 }, (_, i) => `agent-${i}`);
    const big = listedChanges(many, { added: many, changed: [], removed: [] });
    expect(big.agents).toHaveLength(MAX_NAMED_AGENTS);
    expect(big.added.at(-1)).toBe(`agent-${MAX_NAMED_AGENTS - 1}`);
    expect(big.counts).toEqual({ agents: 75_000, added: 75_000, changed: 0, removed: 0 });
  });

  it('a reload a stop ended says the daemon is shutting down, at info, not that it keeps running with its configuration', async () => {
    const dir = makeTempDir('agentd-unit-reload-reply-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(file, configText(dir, [{ name: 'a', word: 'one' }]));
    const started = await loadConfig({ flag: file });
    const actor = fakeActor(started.agents);
    const snapshot = actor.getSnapshot();
    // Draining: the stop closed the reload's loader (reload-thread.ts).
    (actor as unknown as { getSnapshot: () => unknown }).getSnapshot = () => ({
      ...snapshot,
      matches: (state: string) => state === 'shutdown',
    });
    const lines: Record<string, unknown>[] = [];
    const reload = createReloader({
      started,
      actor,
      log: pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) }),
      notify: { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier,
      load: async () => {
        throw new Error('the daemon is stopping: the file was not read to the end and nothing changed');
      },
    });
    const reply = await reload('request');
    expect(reply.type).toBe('reload_failed');
    // Before: "...nothing changed\nThe daemon keeps running with the configuration it had.", logged at error.
    expect(reply.message).not.toContain('keeps running');
    expect(reply.message).toBe(
      `the daemon is stopping: the file was not read to the end and nothing changed; the daemon is shutting down: its next start reads ${file}`,
    );
    expect(lines.find((line) => line.event === 'daemon.reload_failed')).toMatchObject({
      level: 30,
      stopping: true,
    });
  });
});
