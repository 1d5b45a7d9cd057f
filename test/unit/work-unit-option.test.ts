/**
 * `--work-unit` that is no work unit (empty, over 256 characters, a control character) is a usage error
 * naming the option, found by the CLI before anything is sent (exit 2), on the quick path and through
 * clipanion alike; a trigger request with one is refused by the daemon in words, not zod's
 * "Too big: expected string to have <=256 characters".
 */
import { describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { parseQuick } from '../../src/cli/quick.js';
import { check } from '../../src/protocol/dispatch.js';
import { runCliInProcess as run } from '../helpers/cli-in-process.js';
import { makeTempDir } from '../helpers/resources.js';

const BAD: [string, RegExp][] = [
  ['', /Invalid value for --work-unit: is empty; a work unit is 1 to 256 characters, or leave it out/],
  ['w'.repeat(300), /Invalid value for --work-unit: has 300 characters; a work unit is 1 to 256 characters/],
  ['a\tb', /Invalid value for --work-unit: a work unit is text without control characters/],
];

describe('--work-unit that is no work unit', () => {
  // No daemon: a value the CLI let through would end 69 (unreachable), not 2.
  const socket = `${makeTempDir('agentd-unit-work-unit-')}/agentd.sock`;

  it.each(BAD)(
    'trigger and history --work-unit %j: a usage error naming the option',
    async (value, message) => {
      for (const command of [['trigger', 'demo'], ['history']]) {
        const argv = [...command, '--work-unit', value, '--socket', socket];
        // Left to clipanion, whose parse refuses it: the entry (src/cli/index.ts) exits 2 with its message.
        expect(parseQuick(argv), command[0]).toBeUndefined();
        const cli = await buildCli(command[0]);
        expect(() => cli.process(argv), command[0]).toThrow(message);
        let error: unknown;
        try {
          cli.process(argv);
        } catch (thrown) {
          error = thrown;
        }
        expect(cli.error(error)).not.toContain('w'.repeat(257));
      }
    },
  );

  it('one of 256 characters is a work unit', async () => {
    const result = await run(['trigger', 'demo', '--work-unit', 'w'.repeat(256), '--socket', socket]);
    expect(result.code).toBe(EXIT.unreachable);
  });

  it('a trigger request with a long or empty one is refused in words, naming the field', () => {
    for (const [workUnit, message] of [
      ['w'.repeat(300), 'has 300 characters; a work unit is 1 to 256 characters'],
      ['', 'is empty; a work unit is 1 to 256 characters, or leave it out'],
    ] as const) {
      const result = check(JSON.stringify({ v: 2, type: 'trigger', agent: 'a', workUnit }));
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.problems).toEqual([{ path: 'workUnit', message }]);
    }
  });
});
