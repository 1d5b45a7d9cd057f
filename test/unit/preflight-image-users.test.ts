/**
 * The image checks of doctor and the start with many agents of one image (as `<<: *defaults` makes them):
 * the agents that use it are collected once each, and the check names the first ten and counts the others.
 * It copied the list at every agent (measured: a start with 40,000 agents of one image, a 1.6 MB file,
 * took 39 s before its socket opened, 20,000 took 9 s; 124,000 merged agents from a 2.8 MB file had not
 * opened it after 4 minutes at 1.3 GB) and named every agent in one line.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type PreflightPodman, runPreflight } from '../../src/daemon/preflight.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

const present: PreflightPodman = {
  version: async () => '4.3.1',
  probe: async () => '4.3.1',
  imageExists: async () => true,
  smokeRun: async () => undefined,
  inspectRemoteImage: async () => undefined,
  rootless: async () => true,
};

describe('doctor: the image check of an image many agents use', () => {
  it('names the first ten and counts the others', async () => {
    const agents = Array.from({ length: 5000 }, (_, i) => `  - {<<: *d, name: a${i + 1}}\n`).join('');
    const dir = makeTempDir('agentd-unit-image-users-');
    const text = `daemon:\n  state_dir: ${join(dir, 'state')}\nagents:\n  - &d {name: a0, image: localhost/agentd-base:bookworm, command: [run], network: none}\n${agents}`;
    const settings = parseConfig(text, join(dir, 'agentd.yaml'), ENV, 0);
    const results = await runPreflight({ settings, podman: present, env: ENV, depth: 'cheap', uid: 0 });
    const image = results.find((r) => r.check === 'image localhost/agentd-base:bookworm');
    expect(image).toMatchObject({
      status: 'ok',
      message: 'present (used by a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 and 4991 more agents)',
    });
  });
});
