/**
 * Repeated keys, and mappings with very many keys. The yaml library's own duplicate check compared each key
 * with every key before it in its mapping, and the locator of problems and of env values written as numbers
 * walked the mapping for each key: 40,000 `env:` keys (700 KB) held `validate`, a start or a reload on the
 * daemon's one thread for 17 s (48 s when they were numbers), 4 MiB of them for minutes.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, MAX_LISTED_PROBLEMS } from '../../src/config/load.js';
import { CONFIG_FILE, parseConfigText, problemsOf } from '../helpers/config-problems.js';
import { fastest } from '../helpers/fastest.js';

const AGENT = '  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n';

function accepted(text: string): boolean {
  try {
    parseConfigText(text);
    return true;
  } catch (error) {
    if (error instanceof ConfigError) return false;
    throw error;
  }
}

describe('repeated keys', () => {
  it('are named by their key path, at the repeated key, with the line of the first', () => {
    const error = problemsOf(`agents:\n${AGENT}    env:\n      A: "1"\n      B: "2"\n      A: "3"\n`);
    expect(error.problems).toEqual([
      {
        path: 'agents[0].env.A',
        line: 8,
        column: 7,
        message:
          'Map keys must be unique; "A" appears twice; remove or merge the repeated key (the first is at line 6)',
      },
    ]);
    expect(error.message).toContain(`${CONFIG_FILE}: 1 problem`);
  });

  it('are keys of equal value, as YAML has them, in block and flow mappings alike', () => {
    for (const pair of ['a: x\na: y', '1: x\n0x1: y', '~: x\nnull: y', 'true: x\nTrue: y']) {
      const error = problemsOf(`agents:\n${AGENT}    exit_codes: {}\nx:\n  ${pair.replace('\n', '\n  ')}\n`);
      expect(error.problems.map((p) => p.message).join('\n')).toMatch(/appears twice/);
    }
    expect(problemsOf(`agents:\n${AGENT}    env: {A: "1", A: "2"}\n`).problems[0]).toMatchObject({
      path: 'agents[0].env.A',
      line: 5,
    });
    // Two problems of syntax and duplication are told together, in the order of the file.
    const both = problemsOf(`agents:\n${AGENT}    image: other\n    env: {A: "1"\n`);
    expect(both.problems[0]).toMatchObject({ path: 'agents[0].image', line: 5 });
    expect(both.problems.length).toBeGreaterThan(1);
  });

  it('are not: a key and its quoted number, a repeated merge key, NaN', () => {
    // `1` and `"1"` differ in YAML (they then both reach exit_codes' schema, which says what it wants).
    expect(problemsOf(`agents:\n${AGENT}    exit_codes: {1: failed, "1": failed}\n`).message).not.toMatch(
      /appears twice/,
    );
    expect(
      accepted(
        'agents:\n  - &a {name: demo, image: localhost/agentd-base:bookworm, command: [run]}\n  - <<: *a\n    <<: *a\n    name: demo2\n',
      ),
    ).toBe(true);
    expect(problemsOf(`agents:\n${AGENT}x:\n  .nan: 1\n  .nan: 2\n`).message).not.toMatch(/appears twice/);
  });
});

describe('a mapping with very many keys', () => {
  const lines = (keys: number, line: (i: number) => string) =>
    Array.from({ length: keys }, (_, i) => line(i)).join('');

  it('takes about as long as as many keys in small mappings', () => {
    // The same keys and values, once in one mapping and once in one mapping each: the same work but for
    // the check for repeated keys, which compared each key with every key before it in its mapping.
    const one = `agents:\n${AGENT}x:\n${lines(16_000, (i) => `  K${i}: "v"\n`)}`;
    const many = `agents:\n${AGENT}x:\n${lines(16_000, (i) => `  - K${i}: "v"\n`)}`;
    expect(problemsOf(one).problems).toHaveLength(1); // x: is not a key of agentd.yaml
    const ratio = fastest(() => problemsOf(one)) / fastest(() => problemsOf(many));
    // About 1; it was some 20 (5 s against 0.3 s).
    expect(ratio).toBeLessThan(4);
  }, 120_000);

  it('costs time in proportion to its keys when they are looked up: numbers, unknown keys', () => {
    // An env value written as a number is looked up in the document for its text; each unknown key is a
    // problem placed in it.
    const numbers = (keys: number) =>
      `agents:\n${AGENT}    env:\n${lines(keys, (i) => `      K${i}: ${i}\n`)}`;
    expect(accepted(numbers(8_000))).toBe(true);
    const unknown = (keys: number) => `agents:\n${AGENT}${lines(keys, (i) => `    k${i}: 1\n`)}`;
    expect(problemsOf(unknown(8_000)).message).toContain('8000 problems in the configuration');
    for (const [text, run] of [
      [numbers, accepted],
      [unknown, problemsOf],
    ] as const) {
      const ratio = fastest(() => run(text(8_000))) / fastest(() => run(text(1_000)));
      // 8 times the keys: about 8 times the time; it was some 60 times (each key against those before).
      expect(ratio).toBeLessThan(24);
    }
  }, 300_000);

  it('of repeated keys: the first 200 problems are told, each at its line, and the others counted', () => {
    // All 249,999 of a 4 MiB file were: a reload answered 35 MB and logged one line of 78 MB.
    const error = problemsOf(`agents:\n${AGENT}    env:\n${'      K: "v"\n'.repeat(16_000)}`);
    expect(error.problems).toHaveLength(MAX_LISTED_PROBLEMS + 1);
    expect(error.problems[MAX_LISTED_PROBLEMS - 1]).toMatchObject({
      path: 'agents[0].env.K',
      line: 206,
      column: 7,
    });
    expect(error.problems[MAX_LISTED_PROBLEMS]).toEqual({
      path: '',
      message:
        'and 15799 more problems, not listed; fix these first (is it the right file?), then validate it again',
    });
    expect(error.message).toMatch(/^\/etc\/agentd\/agentd\.yaml: 15999 problems in the configuration\n/);
    expect(error.message.length).toBeLessThan(50_000);
  });
});
