/**
 * `agentd doctor` (and start's preflight) on a credential source that is read but refused: the fix it
 * gives is the one for what is wrong, not "Create /dev/zero" for a device or a directory. A source that
 * cannot be opened (a missing file) or a variable that is not set keep their own fixes.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { credentialChecks } from '../helpers/preflight-podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

describe('preflight: a credential source that is refused', () => {
  it('gives the fix for what is wrong with it', async () => {
    const dir = makeTempDir('agentd-unit-preflight-fix-');
    writeFileSync(join(dir, 'nul'), 'abc\0defghijk');
    const credentials = await credentialChecks(
      dir,
      [
        '    credentials:',
        '      - { name: DEV, source: "file:/dev/zero" }',
        `      - { name: DIR, source: "file:${dir}" }`,
        `      - { name: NUL, source: "file:${join(dir, 'nul')}" }`,
        '      - { name: LONG, source: env:LONG_VAR }',
        `      - { name: MISSING, source: "file:${join(dir, 'missing')}" }`,
        '      - { name: UNSET, source: env:UNSET_VAR }',
      ],
      { LONG_VAR: 'v'.repeat(200_000) },
    );
    const fixes = Object.fromEntries(credentials.map((r) => [r.check, [r.status, r.fix]]));
    expect(fixes).toEqual({
      'credential demo/DEV': ['fail', 'Point file:/dev/zero at a regular file that holds only the value'],
      'credential demo/DIR': ['fail', `Point file:${dir} at a regular file that holds only the value`],
      'credential demo/NUL': [
        'fail',
        `Keep NUL bytes out of the value of file:${join(dir, 'nul')}: encode a binary value, e.g. in base64`,
      ],
      'credential demo/LONG': [
        'fail',
        'Hand a value this large to the agent as a file (a read-only mount, mounts:) instead of env:LONG_VAR',
      ],
      'credential demo/MISSING': [
        'fail',
        `Create ${join(dir, 'missing')}, readable by the daemon's user (mode 0600)`,
      ],
      'credential demo/UNSET': [
        'fail',
        "Set UNSET_VAR in the daemon's environment (systemd: EnvironmentFile=, e.g. /etc/agentd/agentd.env), or use a file: source",
      ],
    });
  });

  it('gives a socket, which cannot even be opened (ENXIO), the fix for its kind, not "Create PATH"', async () => {
    const dir = makeTempDir('agentd-unit-preflight-socket-');
    const path = join(dir, 'agent.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const credentials = await credentialChecks(dir, [
        '    credentials:',
        `      - { name: SOCK, source: "file:${path}" }`,
      ]);
      const result = credentials.find((r) => r.check === 'credential demo/SOCK');
      expect(result).toMatchObject({
        status: 'fail',
        message: `file ${path} (source file:${path}) is a socket, not a regular file; point the source at a file`,
        fix: `Point file:${path} at a regular file that holds only the value`,
      });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("fails the credential with which the agent's values no longer fit in its environment", async () => {
    const dir = makeTempDir('agentd-unit-preflight-total-');
    writeFileSync(join(dir, 'value'), 'v'.repeat(128_000), { mode: 0o600 });
    const credentials = await credentialChecks(dir, [
      '    credentials:',
      ...Array.from(
        { length: 17 },
        (_, i) => `      - { name: C_${i}, source: "file:${join(dir, 'value')}" }`,
      ),
    ]);
    expect(credentials.filter((r) => r.status !== 'ok').map((r) => [r.check, r.status, r.fix])).toEqual([
      [
        'credential demo/C_15',
        'fail',
        "Hand this agent's large values to it as files (a read-only mount, mounts:) instead of credentials",
      ],
    ]);
    expect(credentials).toHaveLength(17);
    expect(credentials.find((r) => r.check === 'credential demo/C_15')?.message).toMatch(
      /^with the value of file:\S+ the agent's credentials, env and command come to about 2113762 bytes/,
    );
  });
});
