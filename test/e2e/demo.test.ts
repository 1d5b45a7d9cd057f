import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { listAgentdContainers, listSecrets } from '../helpers/podman.js';
import { commandBlocks, readmeSection } from '../helpers/readme.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

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

afterAll(cleanupAll);

describe('README "Try it"', () => {
  it('has exactly two command blocks: the demo, and the test suite as CI runs it', () => {
    const { blocks } = readmeSection(/^## Try it/);
    const commands = commandBlocks(blocks).map((b) => b.body.trim());
    expect(commands).toEqual([
      'bash scripts/demo.sh',
      'source scripts/test-env.sh && npm ci && npm run build && npm test',
    ]);
    // `source` is a bash builtin: a block fenced as plain sh would not run as written in dash.
    expect(commandBlocks(blocks).map((b) => b.lang)).toEqual(['bash', 'bash']);
    // The second block is what .ci/run does, step by step.
    const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
    for (const step of ['source scripts/test-env.sh', 'npm ci', 'npm run build', 'npm test']) {
      expect(ci).toMatch(new RegExp(`^${step.replace(/ /g, ' +')}`, 'm'));
    }
  });
});

describe('scripts/demo.sh (the README main command) on a fresh clone', () => {
  it('installs, builds, runs a real session to a succeeded outcome and leaves nothing behind', async () => {
    // A fresh clone of this checkout: no node_modules, no dist, no .podman (all git-ignored).
    const clone = join(makeTempDir('agentd-fresh-'), 'agentd');
    await execa('git', ['clone', '--quiet', '--no-hardlinks', ROOT, clone]);
    expect(existsSync(join(clone, 'node_modules'))).toBe(false);
    expect(existsSync(join(clone, 'dist'))).toBe(false);

    // The README's first block, run as written.
    const [demo] = commandBlocks(readmeSection(/^## Try it/).blocks);
    const started = Date.now();
    const result = await execa('bash', ['-c', demo?.body ?? 'false'], {
      cwd: clone,
      reject: false,
      all: true,
      // npm ci inside the clone: reuse the npm cache instead of asking the registry for every package.
      env: { npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' },
      // A cold machine builds the image first; npm ci and the build take a minute at most.
      timeout: 280_000,
    });
    const stdout = result.stdout;
    expect(result.exitCode, result.all).toBe(0);
    process.stderr.write(`demo on a fresh clone: ${Date.now() - started} ms\n`);
    expect(stdout).toContain('node_modules is missing: npm ci');
    expect(stdout).toContain('dist is missing or older than src: npm run build');

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
    // The demo's configuration passes the start-time checks: no warning for a newcomer to puzzle over,
    // but the one about a cgroup v1 machine, which is the machine's.
    expect(stdout).toContain('(daemon.preflight_done)');
    const warned = stdout.split('\n').filter((line) => /WARN/.test(line));
    expect(warned.filter((line) => !/cgroups: this machine runs cgroup v1/.test(line))).toEqual([]);

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
  }, 300_000);
});
