/**
 * Anchors and aliases: put in place by inlineAliases and counted there, not by the yaml library's toJS,
 * which looked each one up by scanning the document (30,000 aliases, 290 KB: 10 s) and refused 150
 * agents with `<<: *defaults` (more than 100 uses of one anchor) as "a resource exhaustion attack".
 */

import { describe, expect, it, vi } from 'vitest';
import { Alias } from 'yaml';
import { MAX_ALIAS_VALUES, MAX_EXPANDED_BYTES } from '../../src/config/yaml-aliases.js';
import { parseConfigText, problemsOf } from '../helpers/config-problems.js';

const merged = (agents: number) =>
  `agents:\n  - &d {name: a0, image: localhost/agentd-base:bookworm, command: [run], env: {A: "1"}}\n${Array.from(
    { length: agents - 1 },
    (_, i) => `  - {<<: *d, name: a${i + 1}}\n`,
  ).join('')}`;

describe('anchors and aliases', () => {
  it('<<: *defaults works for thousands of agents, and no alias is looked up by the library', () => {
    const resolve = vi.spyOn(Alias.prototype, 'resolve');
    try {
      const settings = parseConfigText(merged(3000));
      expect(settings.agents).toHaveLength(3000);
      expect(settings.agents[2999]).toMatchObject({ name: 'a2999', command: ['run'], env: { A: '1' } });
      expect(resolve).not.toHaveBeenCalled();
    } finally {
      resolve.mockRestore();
    }
  });

  it('refuses aliases that multiply past the bound, at the alias, with what to do', () => {
    const laughs = [`a: &a [${Array(9).fill('"lol"').join(', ')}]`];
    for (const [i, name] of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].entries()) {
      const prev = 'abcdefgh'[i];
      laughs.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    const error = problemsOf(`${laughs.join('\n')}\nagents: *i\n`);
    expect(error.problems).toEqual([
      {
        path: 'g[0]',
        line: 7,
        column: 8,
        message: `the aliases up to this one (*f) stand for more than ${MAX_ALIAS_VALUES} values in all (an alias of anchors with aliases multiplies them); agentd.yaml needs a few, such as <<: *defaults in each agent: is it the right file?`,
      },
    ]);
  });

  it('refuses aliases whose values add up past the bound in bytes, at the alias and its key, with what to do', () => {
    // One 1 MiB argument used by 600 agents (a 1 MB file) loaded, and its agents could not be shown.
    const mib = 1024 * 1024;
    const agents = (n: number) =>
      `agents:\n  - {name: a0, image: x, command: [&big "${'x'.repeat(mib)}"]}\n${Array.from(
        { length: n - 1 },
        (_, i) => `  - {name: a${i + 1}, image: x, command: [*big]}\n`,
      ).join('')}`;
    const error = problemsOf(agents(600));
    expect(error.file).toBe('/etc/agentd/agentd.yaml');
    expect(error.problems).toEqual([
      {
        path: 'agents[15].command[0]',
        line: 17,
        column: 37,
        message: `the aliases up to this one (*big) make the configuration more than ${MAX_EXPANDED_BYTES / mib} MiB of text once expanded (the anchor &big at line 2 stands for 1 MiB, and each alias of it adds that again); agentd reads at most 4 MiB as written and 16 MiB expanded: write a large value once, in the one place that uses it, or shorten it (is it the right file?)`,
      },
    ]);
    // Just under the bound, the agents share the one value.
    const settings = parseConfigText(agents(15));
    expect(settings.agents).toHaveLength(15);
    expect(settings.agents[14]?.command[0]).toHaveLength(mib);
  });

  it('counts the bytes an anchor of aliases stands for, so that nesting them multiplies them', () => {
    // 16 KiB, 64 times in b (1 MiB), b 17 times: past 16 MiB with a file of 20 KiB.
    const text = `a: &a "${'y'.repeat(16 * 1024)}"\nb: &b [${Array(64).fill('*a').join(', ')}]\nagents: [${Array(17).fill('*b').join(', ')}]\n`;
    expect(problemsOf(text).problems).toMatchObject([
      {
        path: 'agents[14]',
        line: 3,
        message: expect.stringContaining('the anchor &b at line 2 stands for 1 MiB'),
      },
    ]);
  });

  it('counts a control character as its JSON escape, as the agents reply carries it', () => {
    // 15 aliases of 1M characters "\x01" were 15 MiB, and the `agents` reply of 90 MB was refused by the CLI.
    const ctl = '\\x01'.repeat(1_000_000); // a file of 4 MB
    const text = `agents:\n  - {name: a0, image: x, command: [&c "${ctl}"]}\n${Array.from(
      { length: 14 },
      (_, i) => `  - {name: a${i + 1}, image: x, command: [*c]}\n`,
    ).join('')}`;
    expect(problemsOf(text).problems).toMatchObject([
      {
        path: 'agents[2].command[0]',
        line: 4,
        message: expect.stringContaining('&c at line 2 stands for 5.7 MiB'),
      },
    ]);
  });

  it('names a merge key in the path as written', () => {
    const text = `agents:\n  - &d {name: a0, image: "${'x'.repeat(1024 * 1024)}", command: [run]}\n${Array.from(
      { length: 15 },
      (_, i) => `  - {<<: *d, name: a${i + 1}}\n`,
    ).join('')}`;
    expect(problemsOf(text).problems).toMatchObject([{ path: 'agents[15]["<<"]', line: 17 }]);
  });

  it('refuses an alias inside its own anchor', () => {
    expect(problemsOf('agents: &a\n  - *a\n').problems).toEqual([
      {
        path: 'agents[0]',
        line: 2,
        column: 5,
        message:
          'the alias *a lies inside the value of its own anchor &a, which makes that value endless; refer to another anchor, or write the value out',
      },
    ]);
  });

  it('places a problem in an aliased value at the alias, as written', () => {
    const placed = problemsOf('x: &n "run"\nagents:\n  - name: a1\n    image: x\n    command: *n\n');
    expect(placed.problems.find((p) => p.path === 'agents[0].command')).toMatchObject({
      line: 5,
      column: 14,
    });
  });
});
