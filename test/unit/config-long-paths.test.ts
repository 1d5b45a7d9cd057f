/**
 * A path the loader compares with the mounts (a credential's `file:`, a mount source) is resolved from
 * its deepest ancestor that exists (load.ts's resolvedPath). That ancestor was found by trying each one
 * from the deepest, each try costing the path's length: a `file:` path of 40,000 parts (a 120 KB file)
 * held `validate`, `start` and a reload's thread for 100 s, and one of a few MB would for days. It is
 * found by halving now: the realpath calls are counted, not timed.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, type ConfigProblem, parseConfig } from '../../src/config/index.js';

const calls = vi.hoisted(() => ({ realpath: 0 }));

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  return {
    ...actual,
    realpathSync: ((...args: Parameters<typeof actual.realpathSync>) => {
      calls.realpath++;
      return actual.realpathSync(...args);
    }) as typeof actual.realpathSync,
  };
});

const dir = mkdtempSync(join(tmpdir(), 'agentd-long-paths-'));
const scratch = join(dir, 'scratch');
const state = join(dir, 'state');
mkdirSync(scratch);
mkdirSync(state);
// A link to the read-write mount's directory: a path through it lies inside the mount.
symlinkSync(scratch, join(dir, 'via'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FILE = join(dir, 'agentd.yaml');
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

function config(credential: string): string {
  return `daemon:\n  state_dir: ${state}\n  socket: ${dir}/run/agentd.sock\nagents:\n  - name: writer\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n    mounts:\n      - {source: ${scratch}, target: /scratch, read_only: false}\n    credentials:\n      - {name: API_KEY, source: "file:${credential}"}\n`;
}

function problems(text: string): ConfigProblem[] {
  try {
    parseConfig(text, FILE, ENV, 1000);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

/** `parts` directories that do not exist, under `base`. */
function deep(base: string, parts: number): string {
  return `${base}${'/d'.repeat(parts)}/token`;
}

describe("a path's deepest existing ancestor", () => {
  it('is found with a few realpath calls however many parts the path has', () => {
    const count = (parts: number) => {
      calls.realpath = 0;
      expect(problems(config(deep('/nonexistent', parts)))).toEqual([]);
      return calls.realpath;
    };
    const few = count(10);
    const many = count(4000);
    // Trying each ancestor: some 4,000 more. Halving: a dozen more.
    expect(many - few).toBeLessThan(40);
  });

  it('is still found through a link: a deep file under a link to a read-write mount lies inside it', () => {
    const found = problems(config(deep(join(dir, 'via'), 3000)));
    expect(found.map((p) => p.path)).toEqual(['agents[0].credentials[0].source']);
    expect(found[0]?.message).toContain(`lies inside "${scratch}", which agent writer may write to`);
    // And one beside it (the link's directory, not the mount) does not.
    expect(problems(config(deep(join(dir, 'beside'), 3000)))).toEqual([]);
  });
});
