/**
 * A problem repeats what the file says (a name, a path, a key), cut to a bounded length: an anchor of
 * 3.5 MB used as 99 agents' names made 700 MB of problems, which `validate` and a reload failed to build
 * ("Invalid string length", naming neither the file nor a key) after taking 800 MB; an unknown key of 1 MB
 * was compared with each allowed key for a "did you mean", 5 s of the daemon's one thread.
 */
import { describe, expect, it } from 'vitest';
import { MAX_SHOWN_CHARS } from '../../src/config/quoted.js';
import { CONFIG_FILE, problemsOf } from '../helpers/config-problems.js';
import { fastest } from '../helpers/fastest.js';

describe('what a problem repeats of the file', () => {
  it('is cut, with its length: a long value used many times', () => {
    // 99 uses of 150,000 characters: under what aliases may expand the file to (16 MiB), so it loads.
    const big = 'X'.repeat(150_000);
    const agents = Array.from({ length: 99 }, () => '  - {name: *a, image: x, command: [x]}\n').join('');
    const error = problemsOf(`x: &a "${big}"\nagents:\n${agents}`);
    expect(error.message.length).toBeLessThan(200_000);
    expect(error.message).toContain(`${CONFIG_FILE}: `);
    const name = error.problems.find((p) => p.path === 'agents[0].name');
    expect(name?.message).toBe(
      `"${'X'.repeat(MAX_SHOWN_CHARS)}"… (150000 characters) is not a valid agent name; use lowercase letters, digits, _ and -, starting with a letter or _ (it becomes the user name inside the container)`,
    );
  }, 60_000);

  it('is cut in a key path and an unknown key, whose "did you mean" costs no more than a value', () => {
    const big = 'k'.repeat(1_000_000);
    const agent = '  - name: a\n    image: x\n    command: [x]\n';
    const asKey = `agents:\n${agent}    ? "${big}"\n    : 1\n`;
    const asValue = `agents:\n${agent}    env: {K: "${big}"}\n    zz: 1\n`;
    const problem = problemsOf(asKey).problems[0];
    expect(problem?.path).toBe(`agents[0]["${'k'.repeat(MAX_SHOWN_CHARS)}"… (1000000 characters)]`);
    expect(problem?.message).toMatch(/^unknown key "k+"… \(1000000 characters\); allowed keys are name, /);
    expect(problem?.message.length).toBeLessThan(1000);
    // About 1; it was some 50 (5 s against 0.1 s).
    expect(fastest(() => problemsOf(asKey)) / fastest(() => problemsOf(asValue))).toBeLessThan(5);
  }, 120_000);

  it('is whole when short', () => {
    const error = problemsOf('agents:\n  - name: Reviewer\n    image: x\n    command: [x]\n');
    expect(error.problems[0]?.message).toMatch(/^"Reviewer" is not a valid agent name/);
  });
});
