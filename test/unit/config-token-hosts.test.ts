/**
 * An agent's repo_token_hosts, listed by the thousand (a generated file): each origin was compared with
 * every one before it, and 50,000 of them (1.3 MB) held `validate`, a start or a reload for 70 s.
 */
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../helpers/config-problems.js';
import { fastest } from '../helpers/fastest.js';

function config(origins: number): string {
  let text =
    'agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n' +
    '    repo: https://git.example.com/org/app.git\n    repo_token: env:REPO_TOKEN\n    repo_token_hosts:\n';
  for (let i = 0; i < origins; i++) text += `      - https://mirror${i}.example.com\n`;
  // One listed twice, and the repo's own origin again: each origin is kept once, in the order written.
  return `${text}      - https://mirror1.example.com\n      - https://git.example.com\n`;
}

describe('repo_token_hosts', () => {
  it('keeps each origin once, the repo first, in the order written', () => {
    const agent = parseConfigText(config(3)).agents[0];
    expect(agent?.repoTokenOrigins).toEqual([
      'https://git.example.com',
      'https://mirror0.example.com',
      'https://mirror1.example.com',
      'https://mirror2.example.com',
    ]);
  });

  it('costs time in proportion to the origins listed', () => {
    expect(parseConfigText(config(16_000)).agents[0]?.repoTokenOrigins).toHaveLength(16_001);
    const ratio =
      fastest(() => parseConfigText(config(16_000))) / fastest(() => parseConfigText(config(2_000)));
    // 8 times the origins: about 8 times the time; it was some 60 times (each against those before).
    expect(ratio).toBeLessThan(24);
  }, 300_000);
});
