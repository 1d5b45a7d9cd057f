/**
 * `user_namespace: auto` with real Podman, the real daemon and CLI: each session's processes are host
 * uids of its own (not the 61000 every other session shares, and another range than a session running
 * beside it), its root setup step is not host root, the credentials still reach the command through the
 * root-only bundle, the output archive still comes back, and nothing is left: no container, no secret,
 * and no copy of the image (Podman 4.3 gives each such container a chowned copy of the image in its own
 * storage layer, removed with the container). Needs a `containers` range in /etc/subuid and /etc/subgid
 * (scripts/test-env.sh adds one). The agents are on the bridge (runc cannot run a user namespace on the
 * host's network), so their repository is served on Podman's bridge gateway.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_UID } from '../../src/constants.js';
import { leftoversAfterCleanup, startDaemon } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { listAgentdContainers, listSecrets, podmanJson, TEST_IMAGE } from '../helpers/podman.js';
import { makeTempDir, track } from '../helpers/resources.js';

let git: GitServer;

/** Podman's default bridge gateway, made to exist on this machine (CNI makes the bridge at first use). */
async function bridgeGateway(): Promise<string> {
  const [network] = await podmanJson<{ subnets?: { gateway?: string }[] }[]>([
    'network',
    'inspect',
    'podman',
  ]);
  const gateway = network?.subnets?.[0]?.gateway;
  if (gateway === undefined) throw new Error('podman network inspect podman names no gateway');
  const present = () =>
    Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address === gateway));
  if (!present()) {
    await execa('podman', ['run', '--rm', '--network', 'bridge', '--pull', 'never', TEST_IMAGE, 'true']);
  }
  if (!present()) throw new Error(`the bridge gateway ${gateway} is not an address of this machine`);
  return gateway;
}

beforeAll(async () => {
  git = await startGitServer(await bridgeGateway());
});

afterAll(async () => {
  await git?.stop();
});

afterEach(async () => {
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The host uids of a running container's processes, by the user they are inside it (`podman top`). */
async function hostUsers(container: string): Promise<{ user: string; huser: string }[]> {
  const top = await execa('podman', ['top', container, 'user', 'huser'], { reject: false });
  if (top.exitCode !== 0) return [];
  return top.stdout
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length === 2)
    .map(([user, huser]) => ({ user: user as string, huser: huser as string }));
}

describe('user_namespace: auto', () => {
  it('runs each session as host uids of its own, with its credentials, and leaves nothing behind', async () => {
    const key = `userns-${randomBytes(16).toString('hex')}`;
    // A read-only mount the commands wait on (the bridge reaches no gate of the host's loopback).
    const gate = makeTempDir('agentd-e2e-userns-gate-');
    chmodSync(gate, 0o755);
    const script = [
      'echo "uid_map $(tr -s " " < /proc/self/uid_map)"',
      'echo "user $(id -u) $(id -un)"',
      'echo "key $(printf %s "$API_KEY" | sha256sum | cut -c1-64)"',
      'cat /run/secrets/agentd/* >/dev/null 2>&1 && echo "bundle readable" || echo "bundle not readable"',
      'echo result > "$AGENTD_OUTPUT_DIR/result.txt"',
      'i=0; while [ ! -e /gate/open ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done',
      'echo released',
    ].join('\n');
    const d = await startDaemon(
      {
        agents: [
          {
            name: 'nsagent',
            image: TEST_IMAGE,
            repo: git.url(),
            network: 'bridge',
            user_namespace: 'auto',
            command: ['sh', '-c', script],
            credentials: [{ name: 'API_KEY', source: 'env:AGENTD_E2E_USERNS_KEY' }],
            mounts: [{ source: gate, target: '/gate' }],
          },
        ],
      },
      { env: { AGENTD_E2E_USERNS_KEY: key } },
    );
    const runs = [d.spawnCli(['trigger', 'nsagent']), d.spawnCli(['trigger', 'nsagent'])];
    // Whatever fails below, the commands are let go.
    track.onCleanup(() => writeFileSync(join(gate, 'open'), ''));
    // Both sessions' commands running at once: read their processes' host uids.
    const seen = new Map<string, { user: string; huser: string }[]>();
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const containers = await listAgentdContainers(d.prefix);
      for (const c of containers) {
        const users = await hostUsers(c.name);
        if (users.some((u) => u.user === 'nsagent')) seen.set(c.name, users);
      }
      if (seen.size === 2) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(seen.size, 'two sessions running at once').toBe(2);
    // Each container's own storage layer holds its chowned copy of the image while it runs.
    const layers: string[] = [];
    for (const name of seen.keys()) {
      const [info] = await podmanJson<{ GraphDriver: { Data: { UpperDir: string } } }[]>([
        'container',
        'inspect',
        name,
      ]);
      const layer = dirname(info?.GraphDriver.Data.UpperDir ?? '/nonexistent/diff');
      expect(existsSync(layer), layer).toBe(true);
      layers.push(layer);
    }
    const agentUids = [...seen.values()].map((users) => {
      // A process that ended while `podman top` read it shows as `?`.
      const own = new Set(users.filter((u) => u.user === 'nsagent' && u.huser !== '?').map((u) => u.huser));
      expect(own.size).toBe(1);
      const [huser] = [...own];
      expect(huser).toMatch(/^\d+$/);
      expect(Number(huser)).not.toBe(AGENT_UID);
      // The setup step (root inside) is not host root either.
      for (const u of users.filter((u) => u.user === 'root')) expect(u.huser).not.toMatch(/^(0|root)$/);
      return Number(huser);
    });
    expect(agentUids[0]).not.toBe(agentUids[1]);
    writeFileSync(join(gate, 'open'), '', { flag: 'w' });
    const results = await Promise.all(runs.map((r) => r.result));
    const maps = results.map((result) => {
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).toContain(`user ${AGENT_UID} nsagent`);
      expect(result.stdout).toContain(`key ${sha256(key)}`);
      expect(result.stdout).toContain('bundle not readable');
      expect(result.stdout).toContain('released');
      expect(result.stdout).not.toContain(key);
      const map = /uid_map +(\d+) (\d+) (\d+)/.exec(result.stdout);
      expect(map, result.stdout).not.toBeNull();
      expect(map?.[1]).toBe('0');
      return Number(map?.[2]);
    });
    // Inside, each saw root mapped to its own host range, and the agent's uid in it.
    expect(maps[0]).not.toBe(maps[1]);
    expect(maps.map((base) => base + AGENT_UID).sort()).toEqual([...agentUids].sort());
    // The output archive came back from the container's root (another host uid) into the record.
    const records = d.records();
    expect(records).toHaveLength(2);
    for (const record of records) {
      expect(record.outcome).toBe('succeeded');
      expect((record as unknown as { output?: { files: number } }).output).toMatchObject({ files: 1 });
    }
    expect(await listAgentdContainers(d.prefix)).toEqual([]);
    expect(await listSecrets(d.prefix)).toEqual([]);
    // No copy of the image outlives its session.
    for (const layer of layers) expect(existsSync(layer), layer).toBe(false);
    await d.stop();
  });
});
