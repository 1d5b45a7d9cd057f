import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { create as createTar } from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { PodmanClient } from '../../src/adapters/podman.js';
import type { PodmanError } from '../../src/adapters/podman-errors.js';
import { LABEL_INSTANCE, LABEL_SESSION } from '../../src/constants.js';
import { containerName, instanceSecretPrefix, ownershipLabels, secretName } from '../../src/runner/names.js';
import { randomSessionId, testInstanceId } from '../helpers/ids.js';
import { listAgentdContainers, listSecrets, TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir, track } from '../helpers/resources.js';

const instanceId = testInstanceId();
const prefix = instanceSecretPrefix(instanceId);
const argvSeen: string[][] = [];
const podman = new PodmanClient({ timeoutMs: 30_000, onCall: (argv) => argvSeen.push([...argv]) });

afterEach(async () => {
  const left = [...(await listAgentdContainers(prefix)).map((c) => c.name), ...(await listSecrets(prefix))];
  await cleanupAll();
  expect(left, 'objects left behind by the test').toEqual([]);
});

describe('PodmanClient against real Podman', () => {
  it('creates, lists, labels and removes secrets in batches; values travel on stdin only', async () => {
    const session = randomSessionId();
    const names = [0, 1, 2].map((n) => secretName(instanceId, session, n));
    for (const name of names) track.secret(name);
    const value = `adapter-secret-${session}`;
    for (const name of names)
      await podman.createSecret(name, Buffer.from(value), ownershipLabels(instanceId, session, 'a'));

    expect((await podman.listSecretNames()).filter((n) => n.startsWith(prefix)).sort()).toEqual(
      [...names].sort(),
    );
    const labels = await podman.secretLabels(names);
    expect(labels.get(names[0] ?? '')?.[LABEL_INSTANCE]).toBe(instanceId);
    expect(labels.get(names[2] ?? '')?.[LABEL_SESSION]).toBe(session);
    expect(argvSeen.flat().join(' ')).not.toContain(value);

    // One already gone counts as removed; the others still go.
    await podman.removeSecrets(names.slice(1));
    await podman.removeSecrets(names);
    expect(await listSecrets(prefix)).toEqual([]);
  });

  it('makes a secret again when Podman read its secrets file mid-write, and once only', async () => {
    // Podman 4.3 fails a create that reads its secrets file while another process rewrites it.
    const real = (await execa('sh', ['-c', 'command -v podman'])).stdout.trim();
    const dir = makeTempDir('agentd-e2e-racepodman-');
    const fake = join(dir, 'podman');
    writeFileSync(
      fake,
      `#!/bin/sh\nif [ "$1 $2" = "secret create" ] && [ ! -e ${dir}/once ]; then\n  : > ${dir}/once\n  cat >/dev/null\n  echo 'Error: creating secret x: unexpected end of JSON input' >&2\n  exit 125\nfi\nexec ${real} "$@"\n`,
    );
    chmodSync(fake, 0o755);
    const calls: string[][] = [];
    const racing = new PodmanClient({ bin: fake, onCall: (argv) => calls.push([...argv]) });
    const session = randomSessionId();
    const name = secretName(instanceId, session, 0);
    track.secret(name);
    await racing.createSecret(name, Buffer.from('raced-value'), ownershipLabels(instanceId, session, 'a'));
    expect(await listSecrets(prefix)).toEqual([name]);
    expect(calls.filter((c) => c[1] === 'create')).toHaveLength(2);
    // A name in use at a first try is an earlier daemon's leftover create for this session (30a8791):
    // removed and made again, once (in use again after that is an error: podman-secret-create.test.ts).
    await racing.createSecret(name, Buffer.from('again'), ownershipLabels(instanceId, session, 'a'));
    expect(calls.slice(2).map((c) => c.slice(0, 2))).toEqual([
      ['secret', 'create'],
      ['secret', 'rm'],
      ['secret', 'create'],
    ]);
    expect(await listSecrets(prefix)).toEqual([name]);
    await racing.removeSecrets([name]);
    expect(await listSecrets(prefix)).toEqual([]);
  });

  it('creates, lists, starts attached, inspects and removes a container', async () => {
    const session = randomSessionId();
    const name = containerName(instanceId, 'a', session);
    track.container(name);
    await podman.createContainer({
      name,
      image: TEST_IMAGE,
      labels: ownershipLabels(instanceId, session, 'a'),
      env: { GREETING: 'hi' },
      secrets: [],
      network: 'none',
      entrypoint: ['/bin/sh'],
      args: ['-c', 'echo "$GREETING one"; echo two >&2; exit 3'],
    });
    const listed = await podman.listContainers({ [LABEL_INSTANCE]: instanceId });
    expect(listed.map((c) => [c.Names[0], c.State])).toEqual([[name, 'created']]);

    const lines: string[] = [];
    const run = podman.startAttached(name, (line) => lines.push(line));
    expect(await run.exitCode).toBe(3);
    expect(lines).toContain('hi one');
    expect(await podman.wait(name)).toBe(3);
    const inspected = await podman.inspectContainer(name);
    expect(inspected?.State.ExitCode).toBe(3);
    expect(inspected?.Config.Labels?.[LABEL_SESSION]).toBe(session);

    await podman.removeContainers([name]);
    expect(await podman.inspectContainer(name)).toBeUndefined();
  });

  it('copies an archive into a container and a file out, leaving no temp file behind', async () => {
    const session = randomSessionId();
    const name = containerName(instanceId, 'a', session);
    track.container(name);
    await podman.createContainer({
      name,
      image: TEST_IMAGE,
      labels: ownershipLabels(instanceId, session, 'a'),
      env: {},
      secrets: [],
      network: 'none',
      entrypoint: ['/bin/sh'],
      args: ['-c', 'true'],
    });
    const dir = makeTempDir('agentd-e2e-cp-');
    mkdirSync(join(dir, 'in'));
    writeFileSync(join(dir, 'in', 'notes.md'), 'the notes\n');
    const chunks: Buffer[] = [];
    for await (const chunk of createTar({ cwd: dir, portable: true }, ['in']))
      chunks.push(Buffer.from(chunk));
    // Podman 4.3 leaves a temp file (digits for a name) in TMPDIR for every `podman cp -`.
    const strays = () => readdirSync(tmpdir()).filter((entry) => /^\d+$/.test(entry));
    const before = strays();
    await podman.copyIntoContainer(name, Buffer.concat(chunks));
    expect(strays()).toEqual(before);
    await podman.copyFromContainer(name, '/in/notes.md', join(dir, 'out.md'));
    expect(readFileSync(join(dir, 'out.md'), 'utf8')).toBe('the notes\n');
    await podman.removeContainers([name]);
  });

  it('stops a running container with a grace period', async () => {
    const session = randomSessionId();
    const name = containerName(instanceId, 'a', session);
    track.container(name);
    await podman.createContainer({
      name,
      image: TEST_IMAGE,
      labels: ownershipLabels(instanceId, session, 'a'),
      env: {},
      secrets: [],
      network: 'none',
      entrypoint: ['/bin/sh'],
      args: ['-c', 'sleep 60'],
    });
    const run = podman.startAttached(name, () => {});
    for (let i = 0; i < 50 && (await podman.inspectContainer(name))?.State.Running !== true; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const started = Date.now();
    await podman.stopContainer(name, 1);
    expect(await run.exitCode).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    await podman.removeContainers([name]);
  });

  it('knows which images exist and fails at once, with the fix, for a missing local image', async () => {
    expect(await podman.imageExists(TEST_IMAGE)).toBe(true);
    expect(await podman.imageExists('localhost/agentd-no-such-image:latest')).toBe(false);
    const name = containerName(instanceId, 'a', randomSessionId());
    track.container(name);
    const started = Date.now();
    const error = (await podman
      .createContainer({
        name,
        image: 'localhost/agentd-no-such-image:latest',
        labels: {},
        env: {},
        secrets: [],
        network: 'none',
        entrypoint: ['/bin/sh'],
        args: ['-c', 'true'],
      })
      .catch((e: unknown) => e)) as PodmanError;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error.code).toBe('IMAGE_NOT_FOUND');
    expect(error.message).toContain('localhost/agentd-no-such-image:latest is not available');
  });

  it("says an image whose registry refuses could not be pulled from it, not that Podman's host is unreachable", async () => {
    // A port on 127.0.0.1 that nothing listens on: Podman's pull says "connection refused".
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const name = containerName(instanceId, 'a', randomSessionId());
    track.container(name);
    const error = (await podman
      .createContainer({
        name,
        image: `127.0.0.1:${port}/agentd-no-such-image:1`,
        labels: {},
        env: {},
        secrets: [],
        network: 'none',
        entrypoint: ['/bin/sh'],
        args: ['-c', 'true'],
      })
      .catch((e: unknown) => e)) as PodmanError;
    expect(error.code, error.message).toBe('IMAGE_PULL_FAILED');
    expect(error.message).toContain(
      `image 127.0.0.1:${port}/agentd-no-such-image:1 could not be pulled from 127.0.0.1:${port}: `,
    );
    expect(error.message).toContain('connection refused');
    expect(error.message).not.toContain('cannot reach the Podman host');

    // The next session of that image within PULL_FAILURE_MEMORY_MS: the same error at once, no pull.
    const pulls = () => argvSeen.filter((argv) => argv[0] === 'pull').length;
    const before = pulls();
    expect(before).toBeGreaterThan(0);
    const again = (await podman
      .createContainer({
        name,
        image: `127.0.0.1:${port}/agentd-no-such-image:1`,
        labels: {},
        env: {},
        secrets: [],
        network: 'none',
        entrypoint: ['/bin/sh'],
        args: ['-c', 'true'],
      })
      .catch((e: unknown) => e)) as PodmanError;
    expect(pulls()).toBe(before);
    expect(again.code, again.message).toBe('IMAGE_PULL_FAILED');
    expect(again.message.startsWith(error.message)).toBe(true);
    expect(again.message).toContain('the remembered result of the pull made on this host');
  });

  it('reports a podman binary that is not installed', async () => {
    const missing = new PodmanClient({ bin: '/nonexistent/podman' });
    const error = (await missing.version().catch((e: unknown) => e)) as PodmanError;
    expect(error.code).toBe('PODMAN_NOT_INSTALLED');
  });
});
