/**
 * Shared pieces of the reliability suite: a fake `podman` that injects faults, crash helpers, polling,
 * and the figures file (test-results/reliability.json) the lead quotes in the README. Daemons and CLI
 * processes come from test/helpers/daemon.ts.
 */
import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { type LogLine, leftoversOfDaemons, type TestDaemon } from '../helpers/daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, endPodmanNaming, endProcessGroup, makeTempDir } from '../helpers/resources.js';

export { sleep };

const ROOT = resolve(import.meta.dirname, '..', '..');
const FIGURES = join(ROOT, 'test-results', 'reliability.json');
export const REAL_PODMAN = '/usr/bin/podman';

/** An agent as written in the YAML config: the test image, host network (for git on 127.0.0.1). */
export function agent(name: string, repo: string, command: string[], extra: Record<string, unknown> = {}) {
  return { name, image: TEST_IMAGE, command, repo, network: 'host', ...extra };
}

/** Polls until check() returns a value other than undefined/false; throws with what() after timeoutMs. */
export async function waitUntil<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: () => string,
  timeoutMs = 60_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(everyMs);
  }
}

/**
 * A fault rule of the fake podman: `call` is the 1-based number of the call of that subcommand the
 * fault hits, or '*' for every call. Subcommands are `create`, `start`, `rm`, `ps`, `secret-create`,
 * `secret-rm`, `container-inspect`, ... (the first argument, joined with the second for the podman
 * command groups).
 */
export interface FaultRule {
  subcommand: string;
  call: number | '*';
  /**
   * fail: exit 125 with an error message; hang: never answer; sleep: wait seconds, then run it;
   * create-hang (for `run`): create the container as `podman run` would, never start it, never answer.
   */
  action: 'fail' | 'hang' | 'create-hang' | { sleepSeconds: number };
}

/** The fakes made since the last afterEachTest, whose held calls it ends. */
const livingFakes = new Set<FakePodman>();

/**
 * A `podman` on PATH that delegates to the real one except for the faults its rules name. The rules
 * are read on every call, so a test can change them between daemon runs; every call is counted per
 * subcommand and logged (subcommand, call number, action: never argv, which carries no values anyway).
 */
export class FakePodman {
  readonly dir: string;
  readonly binDir: string;
  constructor() {
    this.dir = makeTempDir('agentd-rel-podman-');
    livingFakes.add(this);
    this.binDir = join(this.dir, 'bin');
    mkdirSync(this.binDir);
    mkdirSync(join(this.dir, 'count'));
    writeFileSync(join(this.dir, 'rules'), '');
    writeFileSync(join(this.dir, 'calls.log'), '');
    const script = `#!/bin/bash
# Fake podman for the agentd reliability tests: delegates to ${REAL_PODMAN} except for injected faults.
dir=${JSON.stringify(this.dir)}
key="$1"
case "$1" in secret|container|image|volume|network|pod|system) key="$1-$2" ;; esac
exec 9>>"$dir/lock"
flock 9
n=$(( $(cat "$dir/count/$key" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$dir/count/$key"
action=$(awk -v k="$key" -v n="$n" '$1 == k && ($2 == n || $2 == "*") { print $3; exit }' "$dir/rules")
echo "$key $n \${action:-pass}" >> "$dir/calls.log"
exec 9>&-
case "$action" in
  fail)
    echo "Error: injected failure of podman $key (call $n)" >&2
    exit 125
    ;;
  hang)
    # Noted, so that the test's afterEach ends it (its daemon's group was ended, this call's was not).
    echo $$ >> "$dir/held"
    exec sleep 3600
    ;;
  create-hang)
    shift
    # What \`podman run\` takes and \`podman create\` does not.
    [ "$1" = --sig-proxy=false ] && shift
    ${REAL_PODMAN} create "$@" >/dev/null
    echo $$ >> "$dir/held"
    exec sleep 3600
    ;;
  sleep:*) sleep "\${action#sleep:}" ;;
esac
exec ${REAL_PODMAN} "$@"
`;
    writeFileSync(join(this.binDir, 'podman'), script);
    chmodSync(join(this.binDir, 'podman'), 0o755);
  }

  /** PATH with this fake first. */
  get path(): string {
    return `${this.binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`;
  }

  /** Replaces the rules; an empty list makes it a plain pass-through. */
  setRules(rules: FaultRule[]): void {
    const text = rules
      .map((r) => {
        const action = typeof r.action === 'string' ? r.action : `sleep:${r.action.sleepSeconds}`;
        return `${r.subcommand} ${r.call} ${action}\n`;
      })
      .join('');
    writeFileSync(join(this.dir, 'rules.tmp'), text);
    renameSync(join(this.dir, 'rules.tmp'), join(this.dir, 'rules'));
  }

  /** Calls so far as [subcommand, call number, action]. */
  calls(): { subcommand: string; n: number; action: string }[] {
    return readFileSync(join(this.dir, 'calls.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [subcommand = '', n = '0', action = ''] = line.split(' ');
        return { subcommand, n: Number(n), action };
      });
  }

  /** How many calls of subcommand were made so far: a rule for `count + 1` hits the next one. */
  count(subcommand: string): number {
    try {
      return Number(readFileSync(join(this.dir, 'count', subcommand), 'utf8').trim()) || 0;
    } catch {
      return 0;
    }
  }

  /** Calls that hit a fault. */
  faults(): number {
    return this.calls().filter((c) => c.action !== 'pass').length;
  }

  /**
   * Ends the calls this fake holds (\`hang\`, \`create-hang\`: a \`sleep\` in the call's own process group,
   * never a real podman), which would otherwise sleep on for an hour after the test.
   */
  endHeldCalls(): void {
    let pids: number[] = [];
    try {
      pids = readFileSync(join(this.dir, 'held'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return;
    }
    for (const pid of pids) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    }
  }

  /** Resolves once a call of subcommand has hit its fault (it is hanging or failed). */
  waitForFault(subcommand: string, timeoutMs = 60_000): Promise<void> {
    return waitUntil(
      () => this.calls().some((c) => c.subcommand === subcommand && c.action !== 'pass'),
      () => `a faulty podman ${subcommand} call; calls: ${JSON.stringify(this.calls())}`,
      timeoutMs,
    ).then(() => undefined);
  }
}

/**
 * Crashes a daemon: SIGKILL to the daemon process alone (its podman children live on, as after a
 * real crash), and waits until it is gone.
 */
export async function crash(d: TestDaemon): Promise<void> {
  d.signal('SIGKILL');
  await d.exited;
}

/**
 * Ends what is left of a crashed daemon (its process group, and the podman children it started, each
 * in a group of its own), as a service manager would, letting podman secret commands finish (see endProcessGroup). The resource tracker
 * skips groups whose leader has exited, so tests call this.
 */
export async function killOrphans(d: TestDaemon): Promise<void> {
  await endProcessGroup(d.pid);
  await endPodmanNaming(d.prefix);
}

/** The daemon's `session.outcome` log lines. */
export function outcomes(d: TestDaemon): LogLine[] {
  return d.logs().filter((l) => l.event === 'session.outcome');
}

/** `podman inspect` of one container through the real podman, or undefined when it does not exist. */
export async function inspectContainer(name: string): Promise<Record<string, unknown> | undefined> {
  const result = await execa(REAL_PODMAN, ['container', 'inspect', name], { reject: false });
  if (result.exitCode !== 0) return undefined;
  return (JSON.parse(result.stdout) as Record<string, unknown>[])[0];
}

/**
 * The afterEach of every reliability file: kills what crashed daemons left running, counts what the
 * test daemons left in Podman (before cleaning up, so a leak fails the test instead of being hidden),
 * cleans up everything and then fails if anything was left.
 */
export async function afterEachTest(figures: { objectsLeftBehind: number }, daemons: TestDaemon[]) {
  await Promise.all(daemons.splice(0).map((d) => killOrphans(d)));
  for (const fake of livingFakes) fake.endHeldCalls();
  livingFakes.clear();
  let left: string[] = [];
  try {
    left = await leftoversOfDaemons();
  } finally {
    figures.objectsLeftBehind += left.length;
    await cleanupAll();
  }
  if (left.length > 0) throw new Error(`podman objects the test daemons left behind:\n${left.join('\n')}`);
}

/** What one test file counted. Numbers are summed over the files in `totals`. */
export interface Figures {
  faultsInjected?: number;
  sessionsRecovered?: number;
  fuzzInputsTried?: number;
  sessions?: number;
  objectsLeftBehind?: number;
  [key: string]: number | string | undefined;
}

const SUMMED = ['faultsInjected', 'sessionsRecovered', 'fuzzInputsTried', 'sessions', 'objectsLeftBehind'];

/**
 * Adds one file's figures to test-results/reliability.json (merging with what other files wrote).
 * Test files run in parallel workers: a lock file serialises the read-modify-write.
 */
export async function recordFigures(file: string, figures: Figures): Promise<void> {
  mkdirSync(join(ROOT, 'test-results'), { recursive: true });
  const lock = `${FIGURES}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch {
      // A lock older than a few seconds belongs to a worker that died: take it over.
      if (attempt > 50) rmSync(lock, { force: true });
      await sleep(100);
    }
  }
  try {
    let current: { files?: Record<string, Figures> } = {};
    try {
      current = JSON.parse(readFileSync(FIGURES, 'utf8')) as typeof current;
    } catch {
      // First file to finish.
    }
    const files: Record<string, Figures> = {
      ...current.files,
      [file]: { ...figures, recordedAt: new Date().toISOString() },
    };
    const totals: Record<string, number> = {};
    for (const key of SUMMED) {
      totals[key] = Object.values(files).reduce((sum, f) => sum + (Number(f[key]) || 0), 0);
    }
    const tmp = `${FIGURES}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ totals, files }, null, 2)}\n`);
    renameSync(tmp, FIGURES);
  } finally {
    rmSync(lock, { force: true });
  }
}
