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
