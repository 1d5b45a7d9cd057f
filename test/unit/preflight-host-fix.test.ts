/**
 * doctor on a host whose Podman fails otherwise than "unreachable" (a probe that times out on a hung API
 * service, say): the fix names that host's engine, `podman --url URL info`. It said "Check that Podman
 * works for this user: podman info", which asks this machine's Podman, which works (measured: a unix://
 * socket that takes connections and never answers gave 'podman did not answer within 5s (podman --url
 * unix:///... version)' with that fix).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyPodmanFailure } from '../../src/adapters/podman-errors.js';
import { parseConfig } from '../../src/config/load.js';
import type { HostConfig } from '../../src/config/types.js';
import { type PreflightPodman, runPreflight } from '../../src/daemon/preflight.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

/** An engine whose version and probe fail with `error`; everything else answers. */
function failing(error: Error): PreflightPodman {
  return {
    version: async () => {
      throw error;
    },
    probe: async () => {
      throw error;
    },
    imageExists: async () => true,
    smokeRun: async () => undefined,
    inspectRemoteImage: async () => undefined,
    rootless: async () => true,
  };
}

async function hostCheck(hosts: (dir: string) => string, error: Error) {
  const dir = makeTempDir('agentd-unit-preflight-host-fix-');
  const text = `daemon:\n  state_dir: ${join(dir, 'state')}\n${hosts(dir)}agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n    network: none\n`;
  const settings = parseConfig(text, join(dir, 'agentd.yaml'), ENV, 0);
  const results = await runPreflight({
    settings,
    podman: (_host: HostConfig) => failing(error),
    env: ENV,
    depth: 'cheap',
    uid: 0,
  });
  return results.filter((r) => /^host [a-z0-9]+$/.test(r.check));
}

describe('doctor: the fix for a host whose Podman failed', () => {
  const timeout = new Error('podman did not answer within 5s (podman --url unix:///run/x.sock version)');

  it('names the host’s engine, not this machine’s', async () => {
    const [check] = await hostCheck(() => 'hosts:\n  - { name: near, url: "unix:///run/x.sock" }\n', timeout);
    expect(check).toMatchObject({ check: 'host near', status: 'fail' });
    expect(check?.fix).toBe('Check that Podman answers there: podman --url unix:///run/x.sock info');
  });

  it('with the key ssh:// uses', async () => {
    let key = '';
    const [check] = await hostCheck((dir) => {
      key = join(dir, 'id_ed25519');
      writeFileSync(key, 'key\n', { mode: 0o600 });
      return `hosts:\n  - { name: far, url: "ssh://a@far.example/run/podman/podman.sock?secure=true", identity: ${key} }\n`;
    }, timeout);
    expect(check?.fix).toBe(
      `Check that Podman answers there: podman --url ssh://a@far.example/run/podman/podman.sock?secure=true --identity ${key} info`,
    );
  });
});

/**
 * doctor on an ssh:// host that Podman could not open an ssh connection to, or that refused: the fix is
 * the one the error names (the ssh server, host and port, and `ssh -p`; the name; the key), as the
 * session's error says since commit bac97ab. It said "On HOST: systemctl enable --now podman.socket",
 * a service reached only through the ssh connection that failed (measured: `agentd doctor` on
 * ssh://agentd@127.0.0.1:1/... with nothing listening).
 */
describe('doctor: the fix for an ssh:// host it could not reach', () => {
  const url = 'ssh://agentd@127.0.0.1:22987/run/podman/podman.sock?secure=true';
  const probeFailure = (stderr: string) =>
    classifyPodmanFailure({
      operation: 'probe the host',
      argv: ['--url', url, '--identity', '/etc/agentd/id_ed25519', 'version', '--format', 'json'],
      exitCode: 125,
      stderr,
    });
  const sshHost = () => `hosts:\n  - { name: sshr, url: "${url}" }\n`;

  it('names the ssh server, host and port, and the ssh command, not the API service', async () => {
    const [check] = await hostCheck(
      sshHost,
      probeFailure('Error: failed to connect: dial tcp 127.0.0.1:22987: connect: connection refused'),
    );
    expect(check).toMatchObject({ check: 'host sshr', status: 'fail' });
    expect(check?.message).toContain('cannot open an ssh connection to 127.0.0.1 port 22987');
    expect(check?.fix).toBe(
      'On 127.0.0.1: start its ssh server and have it listen on port 22987, with no firewall in the way; here: `ssh -p 22987 agentd@127.0.0.1` must connect (the Podman API service is reached only through ssh)',
    );
    expect(check?.fix).not.toContain('podman.socket');
  });

  it('names the host name and DNS for a name that does not resolve', async () => {
    const [check] = await hostCheck(
      sshHost,
      probeFailure(
        'Error: failed to connect: dial tcp: lookup podman-host.invalid on 10.0.0.1:53: no such host',
      ),
    );
    expect(check?.fix).toMatch(/^Fix the host name in the url \(127\.0\.0\.1\) or this machine's DNS/);
  });

  it('names authorized_keys for a key the host refused', async () => {
    const [check] = await hostCheck(
      sshHost,
      probeFailure(
        'Error: failed to connect: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain',
      ),
    );
    expect(check?.fix).toContain('~/.ssh/authorized_keys of agentd');
    expect(check?.fix).toContain(
      '`ssh -i /etc/agentd/id_ed25519 -p 22987 agentd@127.0.0.1` must work without a prompt',
    );
  });

  it('keeps the API service for a socket the host could not open', async () => {
    const [check] = await hostCheck(
      sshHost,
      probeFailure(
        'Error: unable to connect to Podman socket: Get "http://d/v4.3.1/libpod/_ping": ssh: rejected: connect failed (open failed)',
      ),
    );
    expect(check?.fix).toContain('On 127.0.0.1: systemctl enable --now podman.socket');
    expect(check?.fix).toContain('/run/podman/podman.sock');
  });
});
