import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The variable that marks every process of one test run: the run's global setup sets it to the run's
 * temp root (unique on the machine, see temp-root.ts), the test workers inherit it, and so does every
 * daemon, CLI, podman, git server, shell or `sleep` they start (daemon.ts keeps it when it drops the
 * user's other AGENTD_ variables). Other runs on the machine have another value.
 */
export const RUN_MARKER = 'AGENTD_TEST_RUN';

/** A live process of this run, as read from /proc. */
export interface RunProcess {
  pid: number;
  /** The command line, arguments joined by spaces (the executable's name when it has none). */
  command: string;
  /** The real podman binary running a `secret` command: it may be writing the store and is never killed. */
  secretWriter: boolean;
}

/**
 * The live processes whose environment marks them as this run's: AGENTD_TEST_RUN is root, or TMPDIR
 * is root or a directory under it (a child that was given a chosen environment but kept the run's
 * TMPDIR). Zombies (already ended, waiting for their parent) and the pids of `exclude` are left out.
 */
export function processesOfRun(root: string, exclude: ReadonlySet<number>): RunProcess[] {
  const found: RunProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (exclude.has(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (!environ.some((variable) => marks(variable, root))) continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      let exe = '';
      try {
        exe = basename(readlinkSync(`/proc/${entry}/exe`));
      } catch {
        // Exiting: no exe any more.
      }
      found.push({
        pid,
        command:
          args.length > 0
            ? args.join(' ')
            : `[${exe || stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}]`,
        secretWriter: exe === 'podman' && args.includes('secret'),
      });
    } catch {
      // It ended while being read, or it is another user's process this one may not read.
    }
  }
  return found;
}

function marks(variable: string, root: string): boolean {
  return (
    variable === `${RUN_MARKER}=${root}` ||
    variable === `TMPDIR=${root}` ||
    variable.startsWith(`TMPDIR=${root}/`)
  );
}

/**
 * The run's processes still alive after waiting up to waitMs for those that are ending (a daemon
 * finishing its shutdown when its test file's cleanup signalled it). The survivors are leaks: every
 * one is SIGKILLed, except a podman secret command (killed mid-write it breaks the host's secrets
 * store for everyone; it ends by itself), and returned.
 */
export async function leakedProcesses(
  root: string,
  exclude: ReadonlySet<number>,
  waitMs = 5_000,
): Promise<RunProcess[]> {
  const deadline = Date.now() + waitMs;
  let left = processesOfRun(root, exclude);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100);
    left = processesOfRun(root, exclude);
  }
  for (const leaked of left) {
    if (leaked.secretWriter) continue;
    try {
      process.kill(leaked.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  return left;
}
