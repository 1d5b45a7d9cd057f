import { describe, expect, it } from 'vitest';
import { parseQuick } from '../../src/cli/quick.js';

describe('the CLI quick path (status and trigger without clipanion)', () => {
  it('parses the plain forms of status and trigger', () => {
    expect(parseQuick(['status'])).toEqual({ command: 'status', values: {} });
    expect(parseQuick(['status', '--json', '--socket', '/run/a.sock'])).toEqual({
      command: 'status',
      values: { json: true, socket: '/run/a.sock' },
    });
    expect(parseQuick(['trigger', 'demo'])).toEqual({ command: 'trigger', values: { agent: 'demo' } });
    expect(
      parseQuick(['trigger', '-q', 'demo', 'git://h/r.git', '--work-unit', 'W-1', '--timeout', '10m', '-d']),
    ).toEqual({
      command: 'trigger',
      values: {
        quiet: true,
        agent: 'demo',
        repo: 'git://h/r.git',
        workUnit: 'W-1',
        timeout: '10m',
        detach: true,
      },
    });
  });

  it('leaves everything else to clipanion', () => {
    for (const argv of [
      [],
      ['start'],
      ['logs', '0123456789abcdef'],
      ['toString'],
      ['status', '--help'],
      ['status', '-h'],
      ['status', 'extra'],
      ['status', '--json', '--json'],
      ['status', '--socket'],
      ['status', '--socket', '--json'],
      ['status', '--socket=/run/a.sock'],
      ['status', '--no-json'],
      ['status', 'constructor'],
      ['trigger'],
      ['trigger', '--quiet'],
      ['trigger', 'demo', 'git://h/r.git', 'third'],
      ['trigger', 'demo', '-qd'],
      ['trigger', 'demo', '--bogus'],
      ['trigger', 'demo', '--', 'x'],
      ['trigger', '-x'],
    ]) {
      expect(parseQuick(argv), argv.join(' ')).toBeUndefined();
    }
  });
});
