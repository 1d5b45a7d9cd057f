/**
 * `agentd doctor` (and start's preflight) on a credential source that resolves to nothing: an empty
 * file, a file of one line ending, a variable set to "". Allowed (the session gets an empty variable),
 * but most often a value never filled in: a warning naming the source and where the value goes, never
 * "resolves". A source with a value stays ok.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { credentialChecks } from '../helpers/preflight-podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

describe('preflight: a credential source that resolves to an empty value', () => {
  it('is a warning with the fix; one with a value is ok', async () => {
    const dir = makeTempDir('agentd-unit-preflight-empty-');
    writeFileSync(join(dir, 'empty'), '');
    writeFileSync(join(dir, 'newline'), '\n');
    writeFileSync(join(dir, 'token'), 'ghp_value\n', { mode: 0o600 });
    const credentials = await credentialChecks(
      dir,
      [
        `    repo_token: file:${join(dir, 'newline')}`,
        '    credentials:',
        `      - { name: A, source: "file:${join(dir, 'empty')}" }`,
        '      - { name: B, source: env:EMPTY_VAR }',
        `      - { name: C, source: "file:${join(dir, 'token')}" }`,
        '      - { name: D, source: env:FULL_VAR }',
      ],
      { EMPTY_VAR: '', FULL_VAR: 'x' },
    );
    expect(credentials.map((r) => [r.check, r.status])).toEqual([
      ['credential demo/A', 'warn'],
      ['credential demo/B', 'warn'],
      ['credential demo/C', 'ok'],
      ['credential demo/D', 'ok'],
      ['credential demo/repo_token', 'warn'],
    ]);
    const [a, b, , , token] = credentials;
    expect(a?.message).toBe(
      `file:${join(dir, 'empty')} resolves to an empty value: sessions get A set to the empty string`,
    );
    expect(a?.fix).toBe(
      `Write the value into ${join(dir, 'empty')} (a final line ending is dropped), or remove the credential if the agent needs none`,
    );
    expect(b?.message).toBe(
      'env:EMPTY_VAR resolves to an empty value: sessions get B set to the empty string',
    );
    expect(b?.fix).toMatch(/^Set EMPTY_VAR to the value in the daemon's environment/);
    expect(token?.message).toMatch(/resolves to an empty value: the clone gets an empty repo_token$/);
  });
});
