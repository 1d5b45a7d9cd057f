import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { TEST_IMAGE } from './podman.js';

const ROOT = join(import.meta.dirname, '..', '..');
const FIX =
  'Fix: run `source scripts/podman-env.sh` in this shell (it installs Podman, builds the image and writes a containers.conf when needed), then run the tests again.';

/**
 * Runs once before all test files: builds dist/ (as `npm run build` does) for the e2e tests that start
 * the built CLI and daemon, and checks that Podman can run the test image. It fails the run with the
 * reason; it never skips tests.
 */
export default async function setup(): Promise<void> {
  const [built, podmanProblem] = await Promise.all([buildDist(), checkPodman()]);
  // Exit 2 means type errors but emitted output (lint reports those); anything else means no usable dist/.
  if (built.exitCode === 2) {
    process.stderr.write(`test setup: tsc reported type errors; dist/ was emitted anyway:\n${built.all}\n`);
  } else if (built.exitCode !== 0) {
    throw new Error(`test setup: \`tsc -p tsconfig.json\` failed, so dist/ cannot be built:\n${built.all}`);
  }
  // dist/cli/agentd.cjs, which bin/agentd runs: the second step of `npm run build`.
  const bundled = await execa('node', [join(ROOT, 'scripts', 'bundle-cli.mjs')], {
    cwd: ROOT,
    reject: false,
    all: true,
  });
  if (bundled.exitCode !== 0) {
    throw new Error(
      `test setup: \`node scripts/bundle-cli.mjs\` failed (bin/agentd runs its file):\n${bundled.all}`,
    );
  }
  if (podmanProblem) throw new Error(`test setup: ${podmanProblem}\n${FIX}`);
}

/** `tsc -p tsconfig.json`, incremental so an unchanged tree takes a second or two instead of ten. */
function buildDist() {
  const buildInfo = join(ROOT, 'node_modules', '.cache', 'agentd', 'dist.tsbuildinfo');
  // Incremental tsc trusts its build info and would not re-emit a deleted dist/.
  if (!existsSync(join(ROOT, 'dist'))) rmSync(buildInfo, { force: true });
  return execa(
    join(ROOT, 'node_modules', '.bin', 'tsc'),
    ['-p', 'tsconfig.json', '--incremental', '--tsBuildInfoFile', buildInfo],
    { cwd: ROOT, reject: false, all: true },
  );
}

/** Returns why Podman cannot run the test image, or undefined when it can. */
async function checkPodman(): Promise<string | undefined> {
  const exists = await execa('podman', ['image', 'exists', TEST_IMAGE], { reject: false, timeout: 60_000 });
  if ((exists as { code?: string }).code === 'ENOENT') return 'podman is not installed (not found on PATH).';
  if (exists.exitCode === 1)
    return `the test image ${TEST_IMAGE} does not exist (scripts/build-image.sh builds it).`;
  if (exists.exitCode !== 0) {
    return `\`podman image exists ${TEST_IMAGE}\` failed (exit ${exists.exitCode}): ${exists.stderr || exists.message}`;
  }
  const run = await execa('podman', ['run', '--rm', TEST_IMAGE, 'true'], { reject: false, timeout: 60_000 });
  if (run.exitCode === 0) return undefined;
  const local = join(ROOT, '.podman', 'containers.conf');
  const conf = process.env.CONTAINERS_CONF
    ? `CONTAINERS_CONF is ${process.env.CONTAINERS_CONF}.`
    : existsSync(local)
      ? `CONTAINERS_CONF is not set; ${local} exists: \`export CONTAINERS_CONF=${local}\` may be all that is missing.`
      : 'CONTAINERS_CONF is not set.';
  const why = /setrlimit|RLIMIT_|rlimit/i.test(run.stderr)
    ? 'the container runtime may not raise resource limits on this machine'
    : /cgroups in hybrid mode/i.test(run.stderr)
      ? 'crun does not support the hybrid cgroup setup on this machine (runc does)'
      : 'it failed';
  return `\`podman run --rm ${TEST_IMAGE} true\` exited with ${run.exitCode}: ${why}.\n${run.stderr.trim()}\n${conf}`;
}
