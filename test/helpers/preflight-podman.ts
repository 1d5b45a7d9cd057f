import type { PreflightPodman } from '../../src/daemon/preflight.js';

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
