import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { listAgentdContainers, listSecrets } from '../helpers/podman.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DEMO_TOKEN = 'demo-token-not-a-real-secret';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('scripts/demo.sh (the README main command)', () => {
  it('runs a real session to a succeeded outcome and leaves nothing behind', async () => {
    const result = await execa('bash', ['scripts/demo.sh'], {
      cwd: ROOT,
      reject: false,
      all: true,
      // A cold machine builds the image first; the demo itself takes seconds.
      timeout: 175_000,
    });
    const stdout = result.stdout;
    expect(result.exitCode, result.all).toBe(0);

    // The outcome line of `agentd trigger` (src/cli/format.ts).
    expect(stdout).toMatch(/^session [0-9a-f]{16} succeeded, exit code 0, in \S+$/m);
    // What the demo agent printed from inside its container.
    expect(stdout).toMatch(
      /^hello from demo: user demo, uid [1-9]\d*, HOME=\/home\/demo, in \/home\/demo\/repo$/m,
    );
    expect(stdout).toContain('work unit DEMO-1');
    expect(stdout).toMatch(/Add hello\.sh/);
    expect(stdout).toContain(`credential DEMO_TOKEN is set: ${DEMO_TOKEN.length} characters`);
    expect(result.all).not.toContain(DEMO_TOKEN);
    // The daemon drained and stopped on SIGTERM.
    expect(stdout).toContain('daemon exited with 0');
    expect(stdout).toMatch(/\(daemon\.stopped\)/);

    // Nothing of the demo's daemon instance is left in Podman (other tests may own other agentd-* objects).
    const prefix = /containers and secrets are named (agentd-[0-9a-f]{8}-)\*/.exec(stdout)?.[1];
    expect(prefix, stdout).toBeDefined();
    expect(await listAgentdContainers(prefix)).toEqual([]);
    expect(await listSecrets(prefix)).toEqual([]);

    // Nor its processes or temporary directory.
    const daemonPid = Number(/daemon pid (\d+)/.exec(stdout)?.[1]);
    const gitPid = Number(/git daemon pid (\d+)/.exec(stdout)?.[1]);
    expect(daemonPid).toBeGreaterThan(0);
    expect(gitPid).toBeGreaterThan(0);
    expect(isAlive(daemonPid)).toBe(false);
    expect(isAlive(gitPid)).toBe(false);
    const tmp = /socket (\S+)\/agentd\.sock, state dir/.exec(stdout)?.[1];
    expect(tmp).toMatch(/agentd-demo\./);
    expect(existsSync(tmp as string)).toBe(false);
  }, 180_000);
});
