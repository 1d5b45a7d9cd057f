/**
 * Nothing agentd reads or hands on lies inside a read-write mount (load.ts's writableSourceCheck), and no
 * file it reads a value from inside another agent's mount (readableSecretCheck): each
 * mount source, context and secret file was compared with every read-write mount, and 30,664 agents of
 * one read-write mount each (a 4 MiB file) took 55 s more to check than as many without, 35,000 credential
 * files and 17,700 agents of a read-only mount 15 s. The mounts that reach each are asked of an index of
 * their paths now (mounts.ts's PathIndex): the path comparisons are counted here, not timed.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, type ConfigProblem, parseConfig } from '../../src/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-writable-mounts-'));
const shared = join(dir, 'shared');
mkdirSync(join(shared, 'inner'), { recursive: true });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problems(agents: string[]): ConfigProblem[] {
  const text = `daemon:\n  state_dir: ${dir}/state\n  socket: ${dir}/run/agentd.sock\nagents:\n${agents.join('')}`;
  try {
    parseConfig(text, join(dir, 'agentd.yaml'), { HOME: '/home/u' }, 1000);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

function writer(i: number, source = shared): string {
  return `  - {name: a${i}, image: localhost/agentd-base:bookworm, command: [run], mounts: [{source: ${source}, target: /m, read_only: false}]}\n`;
}

describe('read-write mounts of many agents', () => {
  it('are checked with work that grows with their number, not its square', () => {
    const startsWith = vi.spyOn(String.prototype, 'startsWith');
    const count = (n: number) => {
      startsWith.mockClear();
      expect(problems(Array.from({ length: n }, (_, i) => writer(i)))).toEqual([]);
      return startsWith.mock.calls.length;
    };
    const few = count(250);
    const many = count(2000);
    startsWith.mockRestore();
    // 8 times the agents: 8 times the comparisons (far more on the code before, which fails this).
    expect(many / few).toBeLessThan(12);
  });

  it('still name the first mount a path lies inside', () => {
    const found = problems([
      writer(0),
      writer(1, join(shared, 'inner')),
      `  - {name: r, image: localhost/agentd-base:bookworm, command: [run], credentials: [{name: K, source: "file:${shared}/inner/key"}]}\n`,
    ]);
    expect(found.map((p) => [p.path, p.message])).toEqual([
      [
        'agents[1].mounts[0].source',
        expect.stringContaining(`"${shared}/inner" lies inside "${shared}", which agent a0 may write to`),
      ],
      [
        'agents[2].credentials[0].source',
        expect.stringContaining(`"${shared}/inner/key" lies inside "${shared}", which agent a0 may write to`),
      ],
    ]);
  });
});

function reader(i: number, source = shared): string {
  return `  - {name: r${i}, image: localhost/agentd-base:bookworm, command: [run], mounts: [{source: ${source}, target: /m}]}\n`;
}

function holder(files: string[], name = 'holder'): string {
  return `  - name: ${name}\n    image: localhost/agentd-base:bookworm\n    command: [run]\n    credentials:\n${files.map((f, i) => `      - {name: K${i}, source: "file:${f}"}\n`).join('')}`;
}

describe('credential files and the read-only mounts of many agents', () => {
  it('are checked with work that grows with their number, not its product', () => {
    const startsWith = vi.spyOn(String.prototype, 'startsWith');
    const count = (n: number) => {
      startsWith.mockClear();
      const files = Array.from({ length: n }, (_, i) => `/nonexistent/k${i}`);
      expect(problems([holder(files), ...Array.from({ length: n }, (_, i) => reader(i))])).toEqual([]);
      return startsWith.mock.calls.length;
    };
    const few = count(250);
    const many = count(2000);
    startsWith.mockRestore();
    expect(many / few).toBeLessThan(12);
  });

  it('still name every agent whose mount shows a file, in their order, but not the agent whose credential it is', () => {
    const key = join(shared, 'inner', 'key');
    const found = problems([
      reader(0, join(shared, 'inner')),
      holder([key]),
      reader(1),
      holder([key], 'own'),
      `  - {name: own-reader, image: localhost/agentd-base:bookworm, command: [run], mounts: [{source: ${shared}, target: /m}], credentials: [{name: K, source: "file:${key}"}]}\n`,
    ]);
    expect(found.map((p) => [p.path, p.message])).toEqual([
      [
        'agents[1].credentials[0].source',
        expect.stringContaining('which agents[0].mounts[0] shows to agent r0'),
      ],
      [
        'agents[1].credentials[0].source',
        expect.stringContaining('which agents[2].mounts[0] shows to agent r1'),
      ],
      [
        'agents[3].credentials[0].source',
        expect.stringContaining('which agents[0].mounts[0] shows to agent r0'),
      ],
      [
        'agents[3].credentials[0].source',
        expect.stringContaining('which agents[2].mounts[0] shows to agent r1'),
      ],
      // own-reader mounts the key too, and is given it: neither its own nor the others' is a problem there.
      [
        'agents[4].credentials[0].source',
        expect.stringContaining('which agents[0].mounts[0] shows to agent r0'),
      ],
      [
        'agents[4].credentials[0].source',
        expect.stringContaining('which agents[2].mounts[0] shows to agent r1'),
      ],
    ]);
  });
});
