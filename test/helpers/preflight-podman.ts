import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { CheckResult } from '../../src/daemon/check-result.js';
import { type PreflightPodman, runPreflight } from '../../src/daemon/preflight.js';

/** A Podman 4.3.1 that passes every preflight check (rootful, the image present), with `overrides` in place. */
export function passingPreflightPodman(overrides: Partial<PreflightPodman> = {}): PreflightPodman {
  return {
    version: async () => '4.3.1',
    probe: async () => '4.3.1',
    imageExists: async () => true,
    smokeRun: async () => undefined,
    inspectRemoteImage: async () => undefined,
    rootless: async () => false,
    ...overrides,
  };
}

/**
 * The credential checks of a cheap preflight (doctor's, start's) of one agent `demo`, whose config ends
 * with `lines` (its `credentials:`, `repo_token:`...), its state dir in `dir`.
 */
export async function credentialChecks(
  dir: string,
  lines: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CheckResult[]> {
  const text = [
    'daemon:',
    `  state_dir: ${join(dir, 'state')}`,
    'agents:',
    '  - name: demo',
    '    image: localhost/agentd-base:bookworm',
    '    command: ["run"]',
    '    repo: https://git.example.com/org/app.git',
    ...lines,
  ].join('\n');
  const full = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/0', ...env };
  const settings = parseConfig(text, join(dir, 'agentd.yaml'), full, 0);
  const results = await runPreflight({
    settings,
    podman: passingPreflightPodman(),
    env: full,
    depth: 'cheap',
    uid: 0,
  });
  return results.filter((r) => r.check.startsWith('credential '));
}
