import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    for (const child of this.processes) killGroup(child);
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

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // A negative pid is the process group: it takes the children a server forked too.
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

export const track = new ResourceTracker();

export function cleanupAll(): Promise<void> {
  return track.cleanupAll();
}

/** A fresh directory under the system temp dir, removed by cleanupAll. */
export function makeTempDir(prefix = 'agentd-test-'): string {
  return track.tempDir(mkdtempSync(join(tmpdir(), prefix)));
}
