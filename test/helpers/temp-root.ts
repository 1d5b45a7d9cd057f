import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Set while a run owns a temp root, so a second project's setup reuses it instead of nesting one. */
const OWNER = 'AGENTD_TEST_TMP_ROOT';

/**
 * A global setup of every project: the run gets its own TMPDIR, a fresh directory under the
 * system's, which the test workers, the daemons and CLIs they start and their helpers all inherit.
 * The teardown fails the run if anything is left in it (a temp dir a test made and did not remove)
 * and then removes it. Only this run's directory is checked: other runs on the machine may be
 * creating and removing their own temp dirs at the same time.
 */
export default function setup(): (() => void) | undefined {
  if (process.env[OWNER] !== undefined) return undefined;
  const previous = process.env.TMPDIR;
  const root = mkdtempSync(join(tmpdir(), 'agentd-run-'));
  // Traversable like /tmp: tests run the CLI as another user (nobody) on files in their own temp dirs.
  chmodSync(root, 0o755);
  process.env[OWNER] = root;
  process.env.TMPDIR = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    delete process.env[OWNER];
    const entries = readdirSync(root);
    rmSync(root, { recursive: true, force: true });
    // The tests' own temp dirs are named agentd-*. Anything else came from a program they ran (a
    // podman client killed mid-call leaves its temp file): named, but not the tests' leak.
    const left = entries.filter((name) => name.startsWith('agentd-'));
    const others = entries.filter((name) => !name.startsWith('agentd-'));
    if (others.length > 0) {
      process.stderr.write(
        `\ntest temp dirs: other programs left ${others.length} entries in ${root}: ${list(others)}\n`,
      );
    }
    if (left.length > 0) {
      // Vitest only logs an error thrown here and exits 0, so the failure is set on the exit code.
      process.stderr.write(
        `\nFAIL test temp dirs: the tests left ${left.length} entries in the run's TMPDIR ${root} (now removed): ${list(left)}\n` +
          'Create temp dirs with makeTempDir (test/helpers/resources.ts), or remove them in the test.\n',
      );
      process.exitCode = 1;
    }
  };
}

function list(names: string[]): string {
  return `${names.slice(0, 20).join(', ')}${names.length > 20 ? ', ...' : ''}`;
}
