/**
 * `agentd doctor` (and start's preflight) on a credential file other users may read or write: any local
 * user would have the value, or choose it. A warning naming the file, its mode and the chmod; a file of
 * mode 0600 (or 0400) stays ok.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { credentialChecks } from '../helpers/preflight-podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

describe('preflight: a credential file others may read or write', () => {
  it('is a warning naming the file, its mode and the fix', async () => {
    const dir = makeTempDir('agentd-unit-preflight-open-');
    const files = { A: 0o644, B: 0o620, C: 0o600, D: 0o400, E: 0o666 } as const;
    for (const [name, mode] of Object.entries(files)) {
      writeFileSync(join(dir, name), 'value-of-the-credential\n');
      // writeFileSync's mode is cut by the umask: set it exactly.
      chmodSync(join(dir, name), mode);
    }
    const credentials = await credentialChecks(dir, [
      '    credentials:',
      ...Object.keys(files).map((name) => `      - { name: ${name}, source: "file:${join(dir, name)}" }`),
    ]);
    expect(credentials.map((r) => [r.check, r.status])).toEqual([
      ['credential demo/A', 'warn'],
      ['credential demo/B', 'warn'],
      ['credential demo/C', 'ok'],
      ['credential demo/D', 'ok'],
      ['credential demo/E', 'warn'],
    ]);
    const [a, b, , , e] = credentials;
    expect(a?.message).toBe(
      `file:${join(dir, 'A')} resolves, but users other than its owner may read ${join(dir, 'A')} (mode 0644)`,
    );
    expect(a?.fix).toBe(`chmod 600 ${join(dir, 'A')} (and chown it to the daemon's user if it is not)`);
    expect(b?.message).toMatch(/may write .* \(mode 0620\)$/);
    expect(e?.message).toMatch(/may read and write .* \(mode 0666\)$/);
    // The value itself is never shown.
    expect(JSON.stringify(credentials)).not.toContain('value-of-the-credential');
  });
});
