/**
 * A number in agentd.yaml written otherwise than in plain decimal is refused at its key with what it was
 * read as: YAML 1.2 took `max_sessions: 0x4`, `0o10`, `1e3`, `+4` and `.5`, and read `010` as 10 where
 * YAML 1.1 tools read 8, all without a word. Text mappings (env, labels) keep what was written.
 */
import { describe, expect, it } from 'vitest';
import { CONFIG_FILE, parseConfigText, problemsOf } from '../helpers/config-problems.js';

const agent = (extra: string) => `agents:\n  - name: a\n    image: x\n    command: [x]\n${extra}`;

describe('numbers in agentd.yaml', () => {
  it('refuses hexadecimal, octal, an exponent, a leading zero, a sign and a bare fraction at their keys', () => {
    const error = problemsOf(
      `daemon:\n  max_sessions: 0x4\n  history: 0o10\n  log_max_bytes: 1e6\n${agent(
        '    max_concurrent: 010\n    resources:\n      pids: +4096\n      cpus: .5\n',
      )}`,
    );
    expect(error.message).toContain(`${CONFIG_FILE}: 6 problems`);
    expect(error.problems.map((p) => [p.path, p.line, p.message])).toEqual([
      [
        'daemon.max_sessions',
        2,
        '0x4 is hexadecimal; agentd read it as 4, and takes numbers in plain decimal digits: write 4, or quote the value for text',
      ],
      ['daemon.history', 3, expect.stringMatching(/^0o10 is octal; agentd read it as 8, .*: write 8,/)],
      [
        'daemon.log_max_bytes',
        4,
        expect.stringMatching(/^1e6 has an exponent; agentd read it as 1000000, .*: write 1000000,/),
      ],
      [
        'agents[0].max_concurrent',
        9,
        expect.stringMatching(
          /^010 has a leading zero, which YAML 1.1 tools read as octal; agentd read it as 10, .*write 10,/,
        ),
      ],
      [
        'agents[0].resources.pids',
        11,
        expect.stringMatching(/^\+4096 is not in plain decimal; agentd read it as 4096,/),
      ],
      [
        'agents[0].resources.cpus',
        12,
        expect.stringMatching(/^\.5 is not in plain decimal; agentd read it as 0\.5,.*write 0\.5,/),
      ],
    ]);
  });

  it('takes plain decimal, a quoted or tagged number, and keeps env values and labels as written', () => {
    const settings = parseConfigText(
      `daemon:\n  max_sessions: 12\n  history: !!int 0x10\n${agent(
        '    resources:\n      cpus: 1.5\n    env:\n      MODE: 0755\n      N: 1e3\n      H: 0x1F\n',
      )}`,
    );
    expect(settings.daemon.maxSessions).toBe(12);
    expect(settings.daemon.historyLimit).toBe(16);
    expect(settings.agents[0]?.env).toEqual({ MODE: '0755', N: '1e3', H: '0x1F' });
  });
});
