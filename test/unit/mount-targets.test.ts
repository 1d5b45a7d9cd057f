/**
 * An agent's mount and cache targets may not overlap (schema.ts's targetCheck). Each target was compared
 * with every one before it: one agent of 61,786 mounts (a 4 MiB file) took 118 s to check, in `validate`,
 * `start` and a reload's thread. The first overlapping target is found through a tree of the targets'
 * parts now (mounts.ts's firstOverlaps): the path comparisons are counted here, not timed, and the answers
 * compared with the pairwise rule.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, type ConfigProblem, parseConfig } from '../../src/config/index.js';
import { firstOverlaps, isInside, overlaps, PathIndex } from '../../src/config/mounts.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-mount-targets-'));
const source = join(dir, 'source');
mkdirSync(source);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problems(mounts: string[]): ConfigProblem[] {
  const text = `daemon:\n  state_dir: ${dir}/state\n  socket: ${dir}/run/agentd.sock\nagents:\n  - name: a\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n    mounts:\n${mounts.map((target) => `      - {source: ${source}, target: ${target}}\n`).join('')}`;
  try {
    parseConfig(text, join(dir, 'agentd.yaml'), { HOME: '/home/u' }, 1000);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe("an agent's mount targets", () => {
  it('are checked with work that grows with their number, not its square', () => {
    const startsWith = vi.spyOn(String.prototype, 'startsWith');
    const count = (n: number) => {
      startsWith.mockClear();
      expect(problems(Array.from({ length: n }, (_, i) => `/m${i}`))).toEqual([]);
      return startsWith.mock.calls.length;
    };
    const few = count(250);
    const many = count(2000);
    startsWith.mockRestore();
    // 8 times the targets: 8 times the comparisons (64 times on the code before, which fails this).
    expect(many / few).toBeLessThan(12);
  });

  it('still name the first target each overlaps', () => {
    const found = problems(['/a/b', '/c', '/a', '/c/d/e', '/c/d', '/f']);
    expect(found.map((p) => [p.path, p.message])).toEqual([
      ['agents[0].mounts[2].target', expect.stringContaining('"/a" overlaps mounts[0] ("/a/b")')],
      ['agents[0].mounts[3].target', expect.stringContaining('"/c/d/e" overlaps mounts[1] ("/c")')],
      ['agents[0].mounts[4].target', expect.stringContaining('"/c/d" overlaps mounts[1] ("/c")')],
    ]);
  });
});

describe('firstOverlaps', () => {
  it('is the first path before each that overlaps it, as comparing each pair says', () => {
    const parts = ['', 'a', 'b', 'ab'];
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const path = () => {
      const kind = random(10);
      if (kind === 0) return '/';
      if (kind === 1) return '';
      const length = 1 + random(4);
      const body = Array.from({ length }, () => parts[random(parts.length)]).join('/');
      return kind === 2 ? body : `/${body}`;
    };
    for (let round = 0; round < 300; round++) {
      const paths = Array.from({ length: 1 + random(8) }, path);
      const pairwise = paths.map((p, k) => {
        const at = paths.slice(0, k).findIndex((t) => overlaps(t, p));
        return at === -1 ? undefined : at;
      });
      expect(firstOverlaps(paths), JSON.stringify(paths)).toEqual(pairwise);
    }
  });
});

describe('PathIndex', () => {
  it('is the first path added that holds the one asked (or is it, with orSame), and all of them, as isInside says', () => {
    const parts = ['', 'a', 'b', 'ab'];
    let seed = 11;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const path = () => {
      const kind = random(10);
      if (kind === 0) return '/';
      if (kind === 1) return '';
      const body = Array.from({ length: 1 + random(4) }, () => parts[random(parts.length)]).join('/');
      return kind === 2 ? body : `/${body}`;
    };
    for (let round = 0; round < 300; round++) {
      const added = Array.from({ length: 1 + random(8) }, path);
      const index = new PathIndex();
      added.forEach((p, i) => {
        index.add(p, i);
      });
      for (let ask = 0; ask < 5; ask++) {
        const asked = path();
        for (const orSame of [false, true]) {
          const at = added.findIndex((p) => isInside(asked, p) || (orSame && asked === p));
          expect(index.firstHolding(asked, orSame), JSON.stringify([added, asked, orSame])).toBe(
            at === -1 ? undefined : at,
          );
          const all = added.flatMap((p, i) => (isInside(asked, p) || (orSame && asked === p) ? [i] : []));
          expect(
            index.allHolding(asked, orSame).sort((a, b) => a - b),
            JSON.stringify([added, asked, orSame]),
          ).toEqual(all);
        }
      }
    }
  });
});
