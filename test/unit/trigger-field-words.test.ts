/**
 * A trigger's text fields out of their bounds (src/sessions/check-trigger.ts) are refused in words that
 * say what to give, wherever the trigger comes from (`agentd trigger`, `send`, the socket, the HTTP API):
 * `agentd trigger ""` said "invalid request: agent: Too small: expected string to have >=1 characters".
 * So do `history --agent` and `hosts drain`/`undrain` with a name no agent or host can have.
 */
import { describe, expect, it } from 'vitest';
import { check } from '../../src/protocol/dispatch.js';

function problems(fields: Record<string, string>) {
  const result = check(JSON.stringify({ v: 2, type: 'trigger', agent: 'demo', ...fields }));
  if (result.ok) throw new Error(`${JSON.stringify(fields)} was accepted`);
  return result.problems;
}

describe('a trigger field out of its bounds', () => {
  it.each([
    ['agent', '', "is empty; name one of the daemon's agents (agentd agents lists them)"],
    [
      'agent',
      'a'.repeat(70),
      "has 70 characters, more than any agent's name (at most 32); agentd agents lists them",
    ],
    ['repo', '', "is empty; give a repository URL, or leave it out for the agent's repo"],
    ['repo', `https://h/${'x'.repeat(2100)}`, 'has 2110 characters; a repository URL has at most 2048'],
    ['timeout', '', "is empty; give a duration like 90s, 10m or 2h, or leave it out for the agent's timeout"],
    ['timeout', `${'1'.repeat(40)}s`, 'has 41 characters; a duration like 90s, 10m or 2h has at most 32'],
    ['workUnit', '', 'is empty; a work unit is 1 to 256 characters, or leave it out'],
    ['workUnit', 'w'.repeat(300), 'has 300 characters; a work unit is 1 to 256 characters'],
  ])('%s %j: %s', (field, value, message) => {
    expect(problems({ [field]: value })).toEqual([{ path: field, message }]);
  });

  it('never in zod words, also in an injected event (agentd send)', () => {
    const result = check(
      JSON.stringify({ v: 2, type: 'event', event: { type: 'trigger', agent: '', repo: '' } }),
    );
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.problems.map((p) => p.path)).toEqual(['event.agent', 'event.repo']);
      for (const problem of result.problems) expect(problem.message).not.toMatch(/Too (small|big)/);
    }
  });

  it.each([
    ['history', 'agent', '', 'is empty; name an agent, or leave it out for every agent'],
    ['history', 'agent', 'a'.repeat(70), "has 70 characters, more than any agent's name (at most 32)"],
    ['drain', 'host', '', "is empty; name one of the daemon's hosts (agentd hosts lists them)"],
    [
      'undrain',
      'host',
      'h'.repeat(300),
      "has 300 characters, more than any host's name (at most 32); agentd hosts lists them",
    ],
  ])('%s %s %j: %s', (type, field, value, message) => {
    const result = check(JSON.stringify({ v: 2, type, [field]: value }));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems).toEqual([{ path: field, message }]);
  });
});
