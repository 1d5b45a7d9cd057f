/**
 * Anchors and aliases: put in place by inlineAliases and counted there, not by the yaml library's toJS,
 * which looked each one up by scanning the document (30,000 aliases, 290 KB: 10 s) and refused 150
 * agents with `<<: *defaults` (more than 100 uses of one anchor) as "a resource exhaustion attack".
 */

import { describe, expect, it, vi } from 'vitest';
import { Alias } from 'yaml';
import { MAX_ALIAS_VALUES } from '../../src/config/yaml-aliases.js';
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
        path: '',
        line: 7,
        column: 8,
        message: `the aliases up to this one (*f) stand for more than ${MAX_ALIAS_VALUES} values in all (an alias of anchors with aliases multiplies them); agentd.yaml needs a few, such as <<: *defaults in each agent: is it the right file?`,
      },
    ]);
  });

  it('refuses an alias inside its own anchor', () => {
    expect(problemsOf('agents: &a\n  - *a\n').problems).toEqual([
      {
        path: '',
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
