/**
 * A configuration that nests deeper than agentd.yaml ever does is refused before the yaml library builds
 * it: 4 MiB of `agents: [[[[…` held the event loop for 29 s and took 1.8 GB (a reload does that on the
 * daemon's one thread), then failed with 785 "Maximum call stack size exceeded" problems.
 */

import { describe, expect, it, vi } from 'vitest';
import { Lexer } from 'yaml';
import { MAX_CONFIG_BYTES } from '../../src/config/config-file.js';
import { MAX_YAML_DEPTH } from '../../src/config/yaml-depth.js';
import { CONFIG_FILE, parseConfigText, problemsOf } from '../helpers/config-problems.js';

describe('a configuration nested too deep', () => {
  it('is refused with one problem naming the file, the place and the limit', () => {
    const error = problemsOf(`agents:\n  - name: a\n    env: ${'['.repeat(5000)}\n`);
    expect(error.problems).toEqual([
      {
        path: '',
        line: 3,
        // The 61st `[`: the document, the agents list, the agent and its env are the first 4 levels.
        column: 9 + (MAX_YAML_DEPTH - 3),
        message: `the YAML nests deeper than ${MAX_YAML_DEPTH} levels here (agentd.yaml needs a handful; see examples/agentd.yaml); is it the right file?`,
      },
    ]);
    expect(error.message).toContain(CONFIG_FILE);
  });

  it('at the size limit, flow or block, is refused at once and with little memory', () => {
    for (const text of [
      `agents: ${'['.repeat(MAX_CONFIG_BYTES - 9)}\n`,
      `${'- '.repeat(MAX_CONFIG_BYTES / 2 - 2)}1\n`,
    ]) {
      const heap = process.memoryUsage().heapUsed;
      const started = Date.now();
      const error = problemsOf(text);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(process.memoryUsage().heapUsed - heap).toBeLessThan(200 * 1024 * 1024);
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]?.message).toMatch(/nests deeper than/);
    }
  }, 60_000);

  it('takes what agentd.yaml needs: anchors, merges and nested maps', () => {
    const settings = parseConfigText(
      'agents:\n  - &a {name: a, image: localhost/agentd-base:bookworm, command: [run], env: {A: "1"}}\n  - {<<: *a, name: b}\n',
    );
    expect(settings.agents.map((a) => a.name)).toEqual(['a', 'b']);
  });

  it('reads the text once: the tokens of the depth check are the ones composed', () => {
    // Lexing and parsing the text a second time (parseDocument) was a third of the CPU of a 4 MiB file.
    const lex = vi.spyOn(Lexer.prototype, 'lex');
    try {
      const settings = parseConfigText(
        'agents:\n  - {name: a, image: localhost/agentd-base:bookworm, command: [run]}\n',
      );
      expect(settings.agents).toHaveLength(1);
      expect(lex).toHaveBeenCalledTimes(1);
    } finally {
      lex.mockRestore();
    }
  });

  it('says that a second document is one too many, at its line', () => {
    const error = problemsOf('agents:\n  - name: a\n---\nagents: []\n');
    expect(error.problems).toEqual([
      {
        path: '',
        line: 3,
        column: 1,
        message: expect.stringMatching(
          /^the file holds more than one YAML document \(a --- or \.\.\. line between them\); agentd\.yaml is one document; /,
        ),
      },
    ]);
  });
});
