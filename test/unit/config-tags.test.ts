/**
 * A YAML tag agentd does not take is refused at its key: the yaml library dropped `!env`, `!foo` and the
 * like in silence and kept the text under them, so `repo_token: !env GITHUB_TOKEN` was the literal
 * GITHUB_TOKEN and `image: !foo x` was x; `!!binary` became bytes, refused as "not a mapping".
 */
import { describe, expect, it } from 'vitest';
import { CONFIG_FILE, parseConfigText, problemsOf } from '../helpers/config-problems.js';

const agent = (extra: string) => `agents:\n  - name: a\n    image: x\n    command: [x]\n${extra}`;

describe('YAML tags in agentd.yaml', () => {
  it('refuses !env, a custom tag and !!binary at the file, line and key, naming the credential source syntax', () => {
    const error = problemsOf(
      agent(
        '    repo_token: !env GITHUB_TOKEN\n' +
          '    env:\n      X: !!binary aGVsbG8=\n      Y: !foo bar\n' +
          '    credentials:\n      - name: T\n        source: !env T\n',
      ),
    );
    expect(error.message).toContain(`${CONFIG_FILE}: 4 problems`);
    expect(error.problems.map((p) => [p.path, p.line])).toEqual([
      ['agents[0].repo_token', 5],
      ['agents[0].env.X', 7],
      ['agents[0].env.Y', 8],
      ['agents[0].credentials[0].source', 11],
    ]);
    expect(error.problems[0]?.message).toMatch(/^the YAML tag !env is not supported/);
    expect(error.problems[0]?.message).toContain('env:NAME');
    expect(error.problems[0]?.message).toContain('file:/absolute/path');
    expect(error.problems[1]?.message).toMatch(/^the YAML tag !!binary is not supported/);
    expect(error.problems[2]?.message).toMatch(/^the YAML tag !foo is not supported/);
  });

  it('refuses a tag on a key, and one under an anchor once, where the anchor is', () => {
    const error = problemsOf(
      `${agent('    repo_token: &t !env GITHUB_TOKEN\n')}  - name: b\n    image: x\n    command: [x]\n    repo_token: *t\n    ? !foo k\n    : 1\n`,
    );
    expect(error.problems.map((p) => p.path)).toEqual(['agents[0].repo_token', 'agents[1].k']);
  });

  it("takes the core schema's tags and the non-specific !", () => {
    const settings = parseConfigText(
      'agents:\n  - name: a\n    image: !!str x\n    command: [! "true", !!str 5]\n    env: { N: !!int "5", B: !!bool true }\n',
    );
    expect(settings.agents[0]?.command).toEqual(['true', '5']);
  });
});
