/**
 * `agentd doctor` (and start's preflight) on a credential file other users may read or write: any local
 * user would have the value, or choose it. A warning naming the file, its mode and the chmod; a file of
 * mode 0600 (or 0400) stays ok.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { runPreflight } from '../../src/daemon/preflight.js';
import { passingPreflightPodman } from '../helpers/preflight-podman.js';
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
    const env = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/0' };
    const text = [
      'daemon:',
      `  state_dir: ${join(dir, 'state')}`,
      'agents:',
      '  - name: demo',
      '    image: localhost/agentd-base:bookworm',
      '    command: ["run"]',
      '    repo: https://git.example.com/org/app.git',
      '    credentials:',
      ...Object.keys(files).map((name) => `      - { name: ${name}, source: "file:${join(dir, name)}" }`),
    ].join('\n');
    const settings = parseConfig(text, join(dir, 'agentd.yaml'), env, 0);
    const results = await runPreflight({
      settings,
      podman: passingPreflightPodman(),
      env,
      depth: 'cheap',
      uid: 0,
    });
    const credentials = results.filter((r) => r.check.startsWith('credential '));
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
