import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';

/**
 * Remembers everything a test makes outside its own process so that afterEach/afterAll can remove
 * it even when the test failed halfway. Each test file gets its own copy (vitest isolates modules).
 */
class ResourceTracker {
  private containers = new Set<string>();
  private secrets = new Set<string>();
  private processes = new Set<ChildProcess>();
  private tempDirs = new Set<string>();
  private callbacks: (() => unknown)[] = [];

  container(name: string): string {
    this.containers.add(name);
    return name;
  }

  secret(name: string): string {
    this.secrets.add(name);
    return name;
  }

  /** A child process; spawn it with `detached: true` so its whole process group can be killed. */
  process<T extends ChildProcess>(child: T): T {
    this.processes.add(child);
    return child;
  }

  tempDir(path: string): string {
    this.tempDirs.add(path);
    return path;
  }

  /** Anything else that needs undoing (servers, timers); run before podman objects are removed. */
  onCleanup(fn: () => unknown): void {
    this.callbacks.push(fn);
  }

  /** Removes everything tracked so far; tries every item and throws once at the end if any failed. */
  async cleanupAll(): Promise<void> {
    const problems: string[] = [];
    await Promise.all([...this.processes].map((child) => killGroup(child)));
    this.processes.clear();

    const callbacks = this.callbacks.splice(0).reverse();
    for (const fn of callbacks) {
      try {
        await fn();
      } catch (error) {
        problems.push(`cleanup callback: ${String(error)}`);
      }
    }

    const containers = [...this.containers];
    this.containers.clear();
    if (containers.length > 0) {
      const rm = await execa('podman', ['rm', '--force', '--ignore', '--time', '0', ...containers], {
        reject: false,
      });
      if (rm.exitCode !== 0) problems.push(`podman rm: ${rm.stderr}`);
    }

    const secrets = [...this.secrets];
    this.secrets.clear();
    if (secrets.length > 0) {
      // `secret rm` fails as a whole on a missing name: remove only those that still exist.
      const ls = await execa('podman', ['secret', 'ls', '--format', '{{.Name}}'], { reject: false });
      const existing = new Set(ls.stdout.split('\n'));
      const left = secrets.filter((name) => existing.has(name));
      if (left.length > 0) {
        const rm = await execa('podman', ['secret', 'rm', ...left], { reject: false });
        if (rm.exitCode !== 0) problems.push(`podman secret rm: ${rm.stderr}`);
      }
    }

    for (const dir of this.tempDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch (error) {
        problems.push(`rm -rf ${dir}: ${String(error)}`);
      }
    }
    this.tempDirs.clear();

    if (problems.length > 0) throw new Error(`test cleanup failed:\n${problems.join('\n')}`);
  }
}

async function killGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  // A negative pid is the process group: it takes the children a server forked too.
  if (processGroup(child.pid).length > 0) await endProcessGroup(child.pid);
  else child.kill('SIGKILL');
}

/**
 * Ends every process of a process group, but lets podman secret commands finish instead of killing
 * them mid-write: Podman 4.3 rewrites its secrets files in place (under a lock, not atomically), and
 * one killed while writing leaves the store of the whole host broken for every user ("unexpected end
 * of JSON input", "no secret data with ID"). Everything else is SIGKILLed at once; a secret command
 * ends by itself (its stdin closes with the daemon that fed it, and the daemon gave it a deadline).
 * Only one that is still there after waitMs is killed: it is stuck, not writing.
 */
export function endProcessGroup(pgid: number, waitMs = 60_000): Promise<void> {
  return endProcesses(() => processGroup(pgid), waitMs);
}

/**
 * The same for the podman processes whose command line names an object under `prefix` (a test daemon's
 * instance prefix): the daemon starts each podman in a process group of its own, so what a crashed
 * daemon left running is found by what it works on, as a service manager finds it by its cgroup.
 */
export function endPodmanNaming(prefix: string, waitMs = 60_000): Promise<void> {
  return endProcesses(
    () =>
      processes((pid) => pid !== process.pid).filter(
        (member) => member.podman && member.args.some((arg) => arg.includes(prefix)),
      ),
    waitMs,
  );
}

async function endProcesses(find: () => GroupMember[], waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const members = find();
    if (members.length === 0) return;
    const late = Date.now() > deadline;
    for (const member of members) {
      if (member.secretWriter && !late) continue;
      if (member.secretWriter) {
        process.stderr.write(
          `test cleanup: podman ${member.args.join(' ')} (pid ${member.pid}) ran past ${waitMs} ms; killed\n`,
        );
      }
      try {
        process.kill(member.pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    await sleep(50);
  }
}

interface GroupMember {
  pid: number;
  args: string[];
  /** The real podman binary. */
  podman: boolean;
  /** The real podman binary running a `secret` command (create, rm): it may be writing the store. */
  secretWriter: boolean;
}

/** The live (not zombie) processes of a process group, read from /proc. */
function processGroup(pgid: number): GroupMember[] {
  return processes((_pid, pgrp) => pgrp === pgid);
}

/** The live (not zombie) processes that `take` picks by pid and process group, read from /proc. */
function processes(take: (pid: number, pgrp: number) => boolean): GroupMember[] {
  const members: GroupMember[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The fields after "(comm)": state, ppid, pgrp, ...
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (!take(Number(entry), Number(pgrp)) || state === 'Z') continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(1);
      let podman = false;
      try {
        podman = basename(readlinkSync(`/proc/${entry}/exe`)) === 'podman';
      } catch {
        // Exiting: no exe any more.
      }
      members.push({ pid: Number(entry), args, podman, secretWriter: podman && args.includes('secret') });
    } catch {
      // The process ended while it was being read.
    }
  }
  return members;
}

export const track = new ResourceTracker();

export function cleanupAll(): Promise<void> {
  return track.cleanupAll();
}

/** A fresh directory under the system temp dir, removed by cleanupAll. */
export function makeTempDir(prefix = 'agentd-test-'): string {
  return track.tempDir(mkdtempSync(join(tmpdir(), prefix)));
}
