import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type PreflightPodman, runPreflight } from '../../src/daemon/preflight.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

function settings(dir: string, hosts = '') {
  const text = `daemon:\n  state_dir: ${join(dir, 'state')}\n${hosts}agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n`;
  return parseConfig(text, join(dir, 'agentd.yaml'), ENV, 1000);
}

/** An engine that answers the cheap checks; `rootless` as given, counting the times it is asked. */
function engine(rootless: boolean | Error): PreflightPodman & { asked: number } {
  const podman = {
    asked: 0,
    version: async () => '4.3.1',
    probe: async () => '4.3.1',
    imageExists: async () => true,
    smokeRun: async () => undefined,
    inspectRemoteImage: async () => undefined,
    rootless: async () => {
      podman.asked += 1;
      if (rootless instanceof Error) throw rootless;
      return rootless;
    },
  };
  return podman;
}

async function userChecks(uid: number, podman: PreflightPodman, hosts = '') {
  const dir = makeTempDir('agentd-unit-preflight-users-');
  const results = await runPreflight({
    settings: settings(dir, hosts),
    podman,
    env: ENV,
    depth: 'cheap',
    uid,
  });
  return results.filter((r) => r.check.endsWith('podman user'));
}

describe('preflight: the daemon’s user and the engine’s', () => {
  it('fails a non-root daemon on a rootful Podman that sees its files, with the fix', async () => {
    const podman = engine(false);
    const [check, ...rest] = await userChecks(1000, podman);
    expect(rest).toEqual([]);
    expect(check).toMatchObject({ check: 'podman user', status: 'fail' });
    expect(check?.message).toContain('agentd runs as uid 1000');
    expect(check?.fix).toContain('Run agentd as root');
    expect(check?.fix).toContain('unix:///run/user/1000/podman/podman.sock');
  });

  it('names a unix:// host, and leaves out hosts that do not see this machine’s files', async () => {
    const hosts =
      'hosts:\n  - { name: near, url: "unix:///run/podman/podman.sock" }\n  - { name: far, url: "tcp://127.0.0.1:8080", insecure: true }\n';
    const checks = await userChecks(1000, engine(false), hosts);
    expect(checks.map((c) => [c.check, c.status])).toEqual([['host near: podman user', 'fail']]);
    expect(checks[0]?.message).toContain('at unix:///run/podman/podman.sock');
  });

  it('passes a rootless Podman, and does not ask when agentd is root', async () => {
    expect(await userChecks(1000, engine(true))).toEqual([]);
    const asRoot = engine(false);
    expect(await userChecks(0, asRoot)).toEqual([]);
    expect(asRoot.asked).toBe(0);
  });

  it('warns when Podman cannot say', async () => {
    const [check] = await userChecks(1000, engine(new Error('podman info: exit 125')));
    expect(check).toMatchObject({ check: 'podman user', status: 'warn' });
    expect(check?.message).toContain('exit 125');
  });
});
