import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFix } from '../../src/adapters/ownership.js';
import { userLabel } from '../../src/adapters/ownership-checks.js';

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('a directory the daemon may not create', () => {
  it('names the nearest directory that exists, its owner and mode, and the fix', () => {
    // agentd start as nobody with daemon.state_dir /srv/agentd/state, /srv root's: EACCES. The old fix
    // named /srv/agentd, which is not there.
    dir = mkdtempSync(join(tmpdir(), 'agentd-create-'));
    const path = join(dir, 'sub', 'state');
    const fix = createFix('EACCES', path, 65534) ?? '';
    expect(fix).toContain(`${userLabel(65534)} may not create directories in ${dir} (owned by `);
    expect(fix).toMatch(/with mode 0[0-7]{3}\)/);
    expect(fix).toContain(`mkdir -p ${path} && chown 65534 ${path} && chmod 700 ${path}`);
    expect(fix).not.toContain(join(dir, 'sub ('));
    expect(fix).not.toMatch(/^\s+at /m);
  });
});
