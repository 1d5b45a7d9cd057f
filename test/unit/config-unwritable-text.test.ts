/**
 * Text no value of agentd.yaml can hold: a NUL, written "\0" or "\x00" in double quotes, and a lone
 * surrogate ("\ud800"). validate said valid to a state_dir, a credential file, an image, a command
 * argument or an env value with a NUL; a start then failed "cannot create state dir ...:
 * ERR_INVALID_ARG_VALUE", and doctor failed the image with "Arguments cannot contain null bytes".
 */
import { describe, expect, it } from 'vitest';
import { CONFIG_FILE, parseConfigText, problemsOf } from '../helpers/config-problems.js';

const BASE = [
  'daemon:',
  '  state_dir: /var/lib/agentd',
  'agents:',
  '  - name: demo',
  '    image: localhost/agentd-base:bookworm',
  '    command: ["sh", "-c", "run"]',
  '    env: { LEVEL: info }',
  '    credentials:',
  '      - { name: TOKEN, source: "file:/etc/agentd/token" }',
  '',
].join('\n');

describe('a NUL or a lone surrogate in the configuration', () => {
  it('is accepted nowhere, each told at its key path and line, with the fix', () => {
    expect(parseConfigText(BASE).agents).toHaveLength(1);
    const cases: [string, string, string, number][] = [
      ['/var/lib/agentd', '"/var/lib/age\\0ntd"', 'daemon.state_dir', 2],
      ['localhost/agentd-base:bookworm', '"localhost/agentd-base:bookworm\\x00"', 'agents[0].image', 5],
      ['"run"', '"r\\0un"', 'agents[0].command[2]', 6],
      ['info', '"in\\0fo"', 'agents[0].env.LEVEL', 7],
      ['"file:/etc/agentd/token"', '"file:/etc/agentd/token\\0"', 'agents[0].credentials[0].source', 9],
    ];
    for (const [from, to, path, line] of cases) {
      const error = problemsOf(BASE.replace(from, to));
      expect(error.message.startsWith(`${CONFIG_FILE}: 1 problem in the configuration`)).toBe(true);
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]).toMatchObject({ path, line });
      expect(error.problems[0]?.message).toMatch(/holds a NUL character .*; remove it$/);
    }
  });

  it('in a key is told at the key', () => {
    const error = problemsOf(BASE.replace('{ LEVEL: info }', '{ "LE\\0VEL": info }'));
    expect(error.problems[0]).toMatchObject({ path: 'agents[0].env["LE\\u0000VEL"]', line: 7 });
    expect(error.problems[0]?.message).toMatch(/^the key holds a NUL character/);
  });

  it('of a lone surrogate is told, and a pair of escapes is one character', () => {
    const error = problemsOf(BASE.replace('info', '"in\\ud800fo"'));
    expect(error.problems[0]).toMatchObject({ path: 'agents[0].env.LEVEL', line: 7 });
    expect(error.problems[0]?.message).toContain('lone surrogate');
    const pair = parseConfigText(BASE.replace('info', '"in\\ud83d\\udca5fo"'));
    expect(pair.agents[0]?.env).toEqual({ LEVEL: 'in💥fo' });
  });

  it('through an alias is told where the alias puts it', () => {
    const text = BASE.replace('daemon:', 'x-nul: &nul "a\\0b"\ndaemon:').replace('info', '*nul');
    const problems = problemsOf(text).problems.map((p) => p.path);
    expect(problems).toEqual(['x-nul', 'agents[0].env.LEVEL']);
  });
});
