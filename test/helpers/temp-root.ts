import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { mountsUnder } from './mounts.js';
import { INSTANCES_FILE } from './run-instances.js';
import { leakedProcesses, RUN_MARKER } from './run-processes.js';

/** Set while a run owns a temp root, so a second project's setup reuses it instead of nesting one. */
const OWNER = 'AGENTD_TEST_TMP_ROOT';

/**
 * A global setup of every project: the run gets its own TMPDIR, a fresh directory under the
 * system's, which the test workers, the daemons and CLIs they start and their helpers all inherit.
 * The teardown fails the run if a process the run started is still running (run-processes.ts: every
 * one inherits a marker naming this run), if anything is left in it (a temp dir a test made and did
 * not remove) or if Podman still holds a container, secret or volume of one of the run's instances;
 * it ends or removes all three. Only this run's processes, directory and instances are checked: other
 * runs on the machine may be creating and removing their own at the same time.
 */
export default function setup(): (() => Promise<void>) | undefined {
  if (process.env[OWNER] !== undefined) return undefined;
  const previous = process.env.TMPDIR;
  const root = mkdtempSync(join(tmpdir(), 'agentd-run-'));
  // Traversable like /tmp: tests run the CLI as another user (nobody) on files in their own temp dirs.
  chmodSync(root, 0o755);
  process.env[OWNER] = root;
  process.env.TMPDIR = root;
  process.env[RUN_MARKER] = root;
  return async () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    delete process.env[OWNER];
    delete process.env[RUN_MARKER];
    // First: a leaked daemon or server would go on writing under the root and making Podman objects.
    const processes = await leakedProcesses(root, new Set([process.pid]));
    if (processes.length > 0) {
      process.stderr.write(
        `\nFAIL test processes: the tests left ${processes.length} process(es) running (now killed, but for podman secret commands, let finish):\n` +
          processes.map((p) => `  pid ${p.pid}: ${p.command}\n`).join('') +
          'Spawn them with track.process (test/helpers/resources.ts), or end them in the test.\n',
      );
      process.exitCode = 1;
    }
    const instancesFile = join(root, INSTANCES_FILE);
    const prefixes = existsSync(instancesFile)
      ? [...new Set(readFileSync(instancesFile, 'utf8').split('\n').filter(Boolean))]
      : [];
    const entries = readdirSync(root).filter((name) => name !== INSTANCES_FILE);
    // A mount left under the root (a side Podman host's storage) would make the removal fail with
    // EBUSY, which Vitest only logs: the run fails naming it, and it is unmounted so the root goes.
    const mounts = mountsUnder(root);
    if (mounts.length > 0) {
      process.stderr.write(
        `\nFAIL test temp dirs: ${mounts.length} mounts were left under the run's TMPDIR ${root} (now unmounted): ${list(mounts)}\n`,
      );
      process.exitCode = 1;
      for (const point of mounts) await execa('umount', ['-l', point], { reject: false });
    }
    try {
      rmSync(root, { recursive: true, force: true });
    } catch (error) {
      process.stderr.write(
        `\nFAIL test temp dirs: the run's TMPDIR ${root} could not be removed: ${(error as Error).message}\n`,
      );
      process.exitCode = 1;
    }
    // The tests' own temp dirs are named agentd-*. Anything else came from a program they ran:
    // named, but not the tests' leak.
    const left = entries.filter((name) => name.startsWith('agentd-'));
    const others = entries.filter((name) => !name.startsWith('agentd-'));
    if (others.length > 0) {
      process.stderr.write(
        `\ntest temp dirs: other programs left ${others.length} entries in ${root}: ${list(others)}\n`,
      );
    }
    // Vitest only logs an error thrown in a teardown and exits 0: failures are set on the exit code.
    if (left.length > 0) {
      process.stderr.write(
        `\nFAIL test temp dirs: the tests left ${left.length} entries in the run's TMPDIR ${root} (now removed): ${list(left)}\n` +
          'Create temp dirs with makeTempDir (test/helpers/resources.ts), or remove them in the test.\n',
      );
      process.exitCode = 1;
    }
    const { objects, unlisted } = await removeObjectsOf(prefixes);
    if (objects.length > 0) {
      process.stderr.write(
        `\nFAIL podman objects: the run's instances left ${objects.length} in Podman (now removed): ${list(objects)}\n`,
      );
      process.exitCode = 1;
    }
    // A listing that failed found nothing: the check did not happen, which is no pass.
    if (unlisted.length > 0) {
      process.stderr.write(
        `\nFAIL podman objects: what the run's instances left could not be checked:\n${unlisted.join('\n')}\n`,
      );
      process.exitCode = 1;
    }
  };
}

/**
 * Removes the containers, secrets and volumes whose names start with one of prefixes; returns what it
 * found, and each listing command that failed (`podman ... exited with N: STDERR`).
 */
async function removeObjectsOf(prefixes: string[]): Promise<{ objects: string[]; unlisted: string[] }> {
  if (prefixes.length === 0) return { objects: [], unlisted: [] };
  const unlisted: string[] = [];
  const ours = (stdout: string) =>
    stdout.split('\n').filter((name) => name !== '' && prefixes.some((prefix) => name.startsWith(prefix)));
  const list = (args: string[]) =>
    execa('podman', args, { reject: false }).then((r) => {
      if (r.exitCode !== 0) {
        unlisted.push(
          `  podman ${args.join(' ')} exited with ${r.exitCode}: ${(r.stderr ?? '').trim() || r.message}`,
        );
      }
      return ours(r.stdout ?? '');
    });
  const [containers, secrets, volumes] = await Promise.all([
    list(['ps', '--all', '--format', '{{.Names}}']),
    list(['secret', 'ls', '--format', '{{.Name}}']),
    list(['volume', 'ls', '--format', '{{.Name}}']),
  ]);
  if (containers.length > 0)
    await execa('podman', ['rm', '--force', '--ignore', '--time', '0', ...containers], { reject: false });
  if (secrets.length > 0) await execa('podman', ['secret', 'rm', ...secrets], { reject: false });
  if (volumes.length > 0) await execa('podman', ['volume', 'rm', '--force', ...volumes], { reject: false });
  const objects = [
    ...containers.map((c) => `container ${c}`),
    ...secrets.map((s) => `secret ${s}`),
    ...volumes.map((v) => `volume ${v}`),
  ];
  return { objects, unlisted };
}

function list(names: string[]): string {
  return `${names.slice(0, 20).join(', ')}${names.length > 20 ? ', ...' : ''}`;
}
