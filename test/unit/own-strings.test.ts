/**
 * ownStrings (src/config/own-strings.ts): the settings a daemon starts with, their strings copied out of
 * the file's text (see test/e2e/reload-memory.test.ts for the daemon's heap). The copy is exact, and it
 * changes nothing an agent is.
 */
import { describe, expect, it } from 'vitest';
import { ownStrings } from '../../src/config/own-strings.js';
import { parseConfigText } from '../helpers/config-problems.js';

describe('ownStrings', () => {
  it('gives settings equal to the loaded ones, whatever their strings hold', () => {
    const text = `agents:\n  - &d {name: a0, image: localhost/agentd-base:bookworm, command: [sh, -c, "printf 'caf\\u00e9 \\u2603 \\U0001F600 \\t\\x01 done'"], env: {NOTE: "a longer value of the first agent"}}\n  - {<<: *d, name: a1}\n`;
    const loaded = parseConfigText(text);
    const copied = ownStrings(parseConfigText(text));
    expect(copied).toStrictEqual(loaded);
    expect(copied.agents[1]?.command[2]).toBe("printf 'café ☃ 😀 \t\u0001 done'");
  });
});
