import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PodmanClient } from '../../src/adapters/podman.js';

/**
 * A stand-in for the podman CLI, run through the real PodmanClient: `script(bin)` is the body of a shell
 * script written as an executable `bin` in dir (it may keep a log beside itself, at `${bin}.log`).
 */
export function standInPodman(
  dir: string,
  script: (bin: string) => string,
): { bin: string; client: PodmanClient } {
  const bin = join(dir, `podman-${randomBytes(6).toString('hex')}`);
  writeFileSync(bin, `#!/bin/sh\n${script(bin)}`, { mode: 0o755 });
  return { bin, client: new PodmanClient({ bin, timeoutMs: 10_000 }) };
}
