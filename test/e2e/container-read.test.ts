import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { PodmanClient } from '../../src/adapters/podman.js';
import { containerName } from '../../src/runner/names.js';
import { randomSessionId, testInstanceId } from '../helpers/ids.js';
import { listAgentdContainers, TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, track } from '../helpers/resources.js';

const instanceId = testInstanceId();
const podman = new PodmanClient({ timeoutMs: 30_000 });

afterEach(async () => {
  const left = (await listAgentdContainers(`agentd-${instanceId.slice(0, 8)}-`)).map((c) => c.name);
  await cleanupAll();
  expect(left, 'containers left behind by the test').toEqual([]);
});

describe("reading an adopted container's secrets as root", () => {
  it("runs the system's cat and wc, not ones an agent planted on the image's PATH", async () => {
    const name = track.container(containerName(instanceId, 'reader', randomSessionId()));
    // The image's PATH starts in a directory the agent can write (a cache at /opt/conda/bin, say),
    // where it left a cat and a wc that, run as root, would copy what they read.
    const plant = [
      'mkdir -p /opt/planted /run/secrets/agentd',
      'printf "#!/bin/sh\\ncp -r /run/secrets/agentd /tmp/stolen; echo 3\\n" > /opt/planted/wc',
      'printf "#!/bin/sh\\ncp -r /run/secrets/agentd /tmp/stolen; echo forged\\n" > /opt/planted/cat',
      'chmod 755 /opt/planted/wc /opt/planted/cat',
      'printf "real-value-1" > /run/secrets/agentd/bundle.0',
      'touch /tmp/ready',
      'exec sleep 120',
    ].join('; ');
    await execa('podman', [
      'run',
      '--detach',
      '--name',
      name,
      '--env',
      'PATH=/opt/planted:/usr/local/bin:/usr/bin:/bin',
      TEST_IMAGE,
      '/bin/sh',
      '-c',
      plant,
    ]);
    await expect
      .poll(
        async () =>
          (await execa('podman', ['exec', name, '/bin/test', '-e', '/tmp/ready'], { reject: false }))
            .exitCode,
        {
          timeout: 30_000,
        },
      )
      .toBe(0);
    // The planted tools are what the container's own PATH finds.
    const found = await execa('podman', ['exec', name, '/bin/sh', '-c', 'command -v cat']);
    expect(found.stdout).toBe('/opt/planted/cat');

    const files = await podman.readContainerFiles(name, '/run/secrets/agentd');
    expect([...files.keys()]).toEqual(['bundle.0']);
    expect(files.get('bundle.0')?.toString()).toBe('real-value-1');
    const stolen = await execa('podman', ['exec', name, '/bin/test', '-e', '/tmp/stolen'], { reject: false });
    expect(stolen.exitCode, 'the planted tools ran as root').toBe(1);
    await execa('podman', ['rm', '--force', '--time', '0', name]);
  });
});
