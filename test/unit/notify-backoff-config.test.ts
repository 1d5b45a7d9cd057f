/**
 * A webhook's `backoff` past the longest wait between attempts (5m: the delivery machine's doubling
 * stops there) is a problem `validate` names with its line, not a setting quietly cut to 5m.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { NOTIFY_BACKOFF_MAX_MS } from '../../src/constants.js';
import { MAX_BACKOFF_MS } from '../../src/machines/delivery.machine.js';

function config(backoff: string): string {
  return [
    'agents:',
    '  - name: demo',
    '    image: localhost/agentd-base:bookworm',
    '    command: ["run"]',
    '    notify:',
    '      - url: https://hooks.example.com/agentd',
    '        secret: env:AGENTD_HOOK_SECRET',
    `        backoff: ${backoff}`,
  ].join('\n');
}

function problems(text: string) {
  try {
    parseConfig(text, '/etc/agentd/agentd.yaml', { HOME: '/root' }, 0);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('notify backoff', () => {
  it('is bounded where the delivery machine stops doubling', () => {
    expect(NOTIFY_BACKOFF_MAX_MS).toBe(MAX_BACKOFF_MS);
  });

  it('past 5m is a problem with its line and the fix', () => {
    expect(problems(config('10m'))).toEqual([
      {
        path: 'agents[0].notify[0].backoff',
        message:
          '"10m" is longer than 5m, the longest wait between attempts (the doubling stops there); use 5m or less',
        line: 8,
        column: 18,
      },
    ]);
  });

  it('up to 5m is taken as it is', () => {
    for (const backoff of ['2s', '5m', '4m59s']) expect(problems(config(backoff)), backoff).toEqual([]);
    const settings = parseConfig(config('5m'), '/etc/agentd/agentd.yaml', { HOME: '/root' }, 0);
    expect(settings.agents[0]?.notify[0]?.backoffMs).toBe(300_000);
  });

  it('a bad duration is still said once, as one', () => {
    const [problem, ...rest] = problems(config('soon'));
    expect(rest).toEqual([]);
    expect(problem?.message).toMatch(/^"soon" is not a duration/);
  });
});
