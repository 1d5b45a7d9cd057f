/**
 * A credential file that is there but the daemon's user may not read (EACCES: a service user and a
 * root-owned 0600 file). Tests run as root, which reads any file, so the reader refuses as the kernel
 * would. The old words, "check that it exists" and doctor's "Create PATH", sent operators to create a
 * file that exists.
 */
import { describe, expect, it } from 'vitest';
import { CredentialFiles, resolveSource } from '../../src/adapters/credentials.js';
import { currentUid, userLabel } from '../../src/adapters/ownership-checks.js';
import type { CredentialSource } from '../../src/config/types.js';
import { unresolvedSource } from '../../src/daemon/preflight-http.js';
import { errorMessage } from '../../src/errors.js';

const path = '/etc/agentd/secrets/github-token';
const source = { kind: 'file', path, raw: `file:${path}` } as CredentialSource;
const denied = new CredentialFiles(async () => {
  throw Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' });
});

describe('a credential file the daemon may not read', () => {
  it('says the file is there but unreadable by the daemon user, and how to fix it', async () => {
    const error = await resolveSource('GITHUB_TOKEN', source, {}, { files: denied }).catch((e: unknown) => e);
    const message = errorMessage(error);
    expect(message).toContain(
      `credential GITHUB_TOKEN: cannot read file ${path} (source file:${path}): EACCES`,
    );
    expect(message).toContain(`the daemon's user, ${userLabel(currentUid())}, may not read it`);
    expect(message).toContain(`chown ${currentUid()} ${path} && chmod 600 ${path}`);
    expect(message).not.toContain('check that it exists');
    expect(message).not.toMatch(/^\s+at /m);

    const check = unresolvedSource(
      'credential reviewer/GITHUB_TOKEN',
      source,
      error,
      'systemd: EnvironmentFile=',
    );
    expect(check.status).toBe('fail');
    expect(check.fix).toMatch(new RegExp(`^Make ${path} readable by the daemon's user`));
    expect(check.fix).not.toMatch(/^Create /);
  });
});
