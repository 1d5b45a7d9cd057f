import { describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../src/cli/env-file.js';
import { nameValues } from '../../src/cli/value-names.js';

describe('nameValues', () => {
  it('names option values and realigns the option table, also in colour', () => {
    const bold = (s: string) => `\u001b[1m${s}\u001b[22m`;
    const plain = [
      'Options',
      '',
      `  ${'--socket #0'.padEnd(14)}    Path of the socket`,
      `  ${'--timeout #0'.padEnd(14)}    Session timeout`,
      `  ${'--quiet,-q'.padEnd(14)}    Quiet`,
      '',
      'Details',
    ].join('\n');
    expect(nameValues(plain)).toBe(
      [
        'Options',
        '',
        '  --socket PATH         Path of the socket',
        '  --timeout DURATION    Session timeout',
        '  --quiet,-q            Quiet',
        '',
        'Details',
      ].join('\n'),
    );
    const coloured = [
      '\u001b[1m━━━ Options ━━━\u001b[0m',
      '',
      `  ${bold('--socket #0'.padEnd(12))}    Path`,
      `  ${bold('--timeout #0')}    Timeout`,
      '',
    ].join('\n');
    expect(nameValues(coloured).split('\n').slice(2, 4)).toEqual([
      `  ${bold('--socket PATH     ')}    Path`,
      `  ${bold('--timeout DURATION')}    Timeout`,
    ]);
    expect(nameValues('agentd logs [--socket #0] [--unknown #0]')).toBe(
      'agentd logs [--socket PATH] [--unknown #0]',
    );
  });
});

describe('parseEnvFile', () => {
  it('reads NAME=value lines as systemd does for the common cases', () => {
    expect(
      parseEnvFile(
        '# comment\n; another\n\nA=1\nB = two words \nC="quoted # not a comment"\nD=\'single\'\nnot a line\nE=\n',
      ),
    ).toEqual({ A: '1', B: 'two words', C: 'quoted # not a comment', D: 'single', E: '' });
  });
});
