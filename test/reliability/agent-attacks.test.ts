/**
 * An agent as the attacker, from inside its container: the real daemon, real Podman, and commands that
 * try what the other containment tests do not (test/e2e/containment.test.ts, work.test.ts,
 * container-read.test.ts, hostile-output.test.ts, secrets.test.ts, credential-forms.test.ts cover the
 * rest). Each case checks what an operator would: the outcome and exit code, the output, the sealed
 * record and its size on disk, `podman ps -a`, and that the daemon is still `ready` with exactly one
 * outcome per session.
 */
import { execSync, spawnSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { OutputSummary } from '../../src/adapters/sealed-records.js';
import {
  type CliResult,
  launchDaemon,
  leftoversOfDaemons,
  prepareDaemon,
  type TestDaemon,
  writeDaemonConfig,
} from '../helpers/daemon.js';
import { type HttpGitServer, startHttpGitServer } from '../helpers/git-server.js';
import { randomSessionId } from '../helpers/ids.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, endProcessGroup } from '../helpers/resources.js';
import { waitUntil } from './harness.js';

const TOKEN = `REPOTOKEN${randomSessionId()}${randomSessionId()}`;
const KEY = `KEYVALUE${randomSessionId()}`;
const env = { E2E_REPO_TOKEN: TOKEN, E2E_KEY: KEY };
let origin: HttpGitServer;

/** An agent of the test image on the token-guarded repository, with the token and one credential. */
function agent(name: string, script: string, extra: Record<string, unknown> = {}) {
  return {
    name,
    image: TEST_IMAGE,
    command: ['sh', '-c', script],
    repo: origin.url(),
    network: 'host',
    repo_token: 'env:E2E_REPO_TOKEN',
    allow_insecure_http: true,
    credentials: [{ name: 'API_KEY', source: 'env:E2E_KEY' }],
    ...extra,
  };
}

/** The container's memory in use, cgroup v2 or v1. */
const USED =
  '$(cat /sys/fs/cgroup/memory.current 2>/dev/null || cat /sys/fs/cgroup/memory/memory.usage_in_bytes)';

/**
 * Looks for the repo token (which it does not know: the first characters of every token of this file,
 * written so that its own command line, in /proc, does not hold them) and the credential bundle
 * everywhere it can read: every file, the /proc entries of root's processes (the setup step, the
 * container's init), the bundle itself; and for the sockets that would reach the daemon or Podman.
 */
const PRY = [
  'pattern="REPOTOKE[N]"',
  'for p in /proc/[0-9]*; do',
  '  [ "$(stat -c %u $p 2>/dev/null)" = 0 ] || continue',
  '  for x in environ mem maps fd/0 fd/1 cwd/. root/run/secrets/agentd/bundle.0 stack syscall auxv; do',
  '    if head -c 1 $p/$x >/dev/null 2>&1; then echo "read $p/$x"; fi',
  '  done',
  '  echo "root process $(cat $p/comm)"',
  'done',
  'head -c 1 /run/secrets/agentd/bundle.0 >/dev/null 2>&1 && echo "read the bundle"',
  'for s in /run/podman/podman.sock /var/run/docker.sock /run/user; do [ -e $s ] && echo "found $s"; done',
  // Where its output archive goes: root's alone.
  'ls /run/agentd >/dev/null 2>&1 && echo "found what is in /run/agentd"',
  'grep -rlasE "$pattern" / --exclude-dir=proc --exclude-dir=sys | sed "s/^/token in /"',
  'for p in /proc/[0-9]*; do grep -lasE "$pattern" $p/environ $p/cmdline | sed "s/^/token in /"; done',
  'echo "api key in env: $(env | grep -c "^API_KEY=")"',
  'echo searched',
].join('\n');

/**
 * Leaves behind, at exit 0: a setsid'd process that ignores SIGTERM and SIGHUP, and a loop that keeps
 * the container's stdout open and writes to it, each for far longer than the session.
 */
const OUTLIVE = [
  `setsid sh -c 'trap "" TERM HUP INT; exec sleep 1000' </dev/null >/dev/null 2>&1 &`,
  `( trap "" TERM HUP; while :; do echo still-here; sleep 0.2; done ) &`,
  `sh -c '( trap "" TERM; sleep 1000 ) &'`,
  'sleep 0.5',
  'echo leaving',
  'exit 0',
].join('\n');

/**
 * What the output directory can hold that is not a plain tree: a fifo, links to the credential bundle
 * and to the host path of the session's own work dir (which /proc/self/mountinfo shows), 500 hard
 * links to one 10 MB file, a directory chain 100 deep and a name of 255 bytes.
 */
const OUTFILL = [
  'cd "$AGENTD_OUTPUT_DIR"',
  'mkfifo fifo',
  'ln -s /run/secrets/agentd/bundle.0 bundle-link',
  `ln -s "$(grep ' /run/agentd/out ' /proc/self/mountinfo | cut -d' ' -f4)" host-link`,
  'head -c 10000000 /dev/urandom > big',
  'i=0; while [ $i -lt 500 ]; do ln big big.$i; i=$((i + 1)); done',
  'i=0; while [ $i -lt 100 ]; do mkdir deep; cd deep; i=$((i + 1)); done; echo bottom > f',
  'cd "$AGENTD_OUTPUT_DIR"',
  `touch "$(printf 'n%.0s' $(seq 1 255))"`,
  'echo filled',
].join('\n');

/** 200,000 empty files in /tmp (a tmpfs whose size bound counts no empty file). */
const INODES = `cd /tmp && for i in 1 2 3 4 5 6 7 8 9 10; do seq -f "d\${i}_%g" 1 20000 | xargs touch || exit 9; done; echo made`;

/** A result, then /tmp filled to 3 MB under the 96m memory limit, then a 2 s flood of output, then a clean exit. */
const FULL_MEMORY = [
  'echo kept > "$AGENTD_OUTPUT_DIR/result.txt"',
  'head -c 2000000 /dev/urandom > "$AGENTD_OUTPUT_DIR/random"',
  'head -c 60000000 /dev/zero > /tmp/fill',
  `free=$(( (96 * 1024 * 1024 - ${USED}) / 1024 ))`,
  'head -c $(( (free - 3072) * 1024 )) /dev/zero > /tmp/fill2',
  `echo "used $(( ${USED} / 1048576 )) MiB of 96"`,
  'timeout 2 yes "flood flood flood flood flood flood flood flood flood flood"',
  'echo done',
].join('\n');

/** keyctl's number, in the perl the test image has (perl-base): the image has no keyctl program. */
const KEYCTL = [
  'chomp(my $arch = `uname -m`);',
  'my $k = { x86_64 => 250, aarch64 => 219 }->{$arch} or die "no keyctl number for $arch\\n";',
].join('\n');

/**
 * Leaves its credential where a later session of another agent may find it: a keyring named with it,
 * linked into the user keyring of its uid (61000 on the host, for every agent), which outlives the session.
 */
const STASH = [
  KEYCTL,
  'my $name = "agentd-test-drop:" . $ENV{API_KEY};',
  'my $u = syscall($k, 0, -4, 1);',
  'my $s = $u < 0 ? -1 : syscall($k, 1, $name);',
  'my $l = $s < 0 ? -1 : syscall($k, 8, $s, $u);',
  'print $l < 0 ? "refused: $!\\n" : "stashed\\n";',
].join('\n');

/** Lists the user keyring of its uid, and what each key in it is called. */
const PEEK = [
  KEYCTL,
  'my $u = syscall($k, 0, -4, 0);',
  'if ($u < 0) { print "refused: $!\\n"; exit 0 }',
  'my $ids = "\\0" x 4096;',
  'my $n = syscall($k, 11, $u, $ids, 4096);',
  'for my $id (unpack("l*", substr($ids, 0, $n > 0 ? $n : 0))) {',
  '  my $d = "\\0" x 4096;',
  '  my $m = syscall($k, 6, $id, $d, 4096);',
  '  print "found: ", substr($d, 0, $m - 1), "\\n" if $m > 0;',
  '}',
  'print "looked\\n";',
].join('\n');

const AGENTS = {
  pry: PRY,
  outlive: OUTLIVE,
  outfill: OUTFILL,
  'exit-300': 'exit 300',
  segv: 'kill -s SEGV $$',
  inodes: INODES,
  'full-memory': FULL_MEMORY,
  // Stops itself (SIGSTOP): sh's wait never returns for a stopped child, and SIGTERM waits for a SIGCONT.
  'self-stopped': 'echo before; kill -s STOP $$; echo after',
} as const;
type Attack = keyof typeof AGENTS;

/**
 * Unlinks from the host's user keyring of uid 61000 what a stash left there, should the profile ever let
 * one through (as uid 61000: setpriv and perl on the host; nothing to do when they are missing).
 */
function unlinkStashed(): void {
  const keyctl = { x64: 250, arm64: 219 }[process.arch as 'x64' | 'arm64'];
  if (keyctl === undefined) return;
  const unlink = [
    `my $k = ${keyctl};`,
    'my $u = syscall($k, 0, -4, 0);',
    'exit 0 if $u < 0;',
    'my $ids = "\\0" x 4096;',
    'my $n = syscall($k, 11, $u, $ids, 4096);',
    'for my $id (unpack("l*", substr($ids, 0, $n > 0 ? $n : 0))) {',
    '  my $d = "\\0" x 4096;',
    '  my $m = syscall($k, 6, $id, $d, 4096);',
    '  syscall($k, 9, $id, $u) if $m > 0 && substr($d, 0, $m - 1) =~ /;agentd-test-drop:/;',
    '}',
  ].join('\n');
  spawnSync('setpriv', ['--reuid', '61000', '--regid', '61000', '--clear-groups', 'perl', '-e', unlink]);
}

interface Reply {
  sessionId: string;
  outcome: string;
  kind?: string;
  exitCode?: number;
  signal?: string;
  message?: string;
  durationMs: number;
}

let d: TestDaemon;
const runs = new Map<Attack, Promise<CliResult>>();

async function attack(
  name: Attack,
): Promise<{ reply: Reply; log: string; output: OutputSummary; dir: string }> {
  const result = await (runs.get(name) as Promise<CliResult>);
  const reply = JSON.parse(result.stdout) as Reply;
  const log = (await d.cli(['logs', reply.sessionId])).stdout;
  const record = d.record(reply.sessionId) as unknown as { output: OutputSummary; recordDir: string };
  return { reply, log, output: record.output, dir: record.recordDir };
}

beforeAll(async () => {
  origin = await startHttpGitServer({ token: TOKEN });
  const files = prepareDaemon({ agents: [] });
  writeDaemonConfig(files, {
    agents: [
      ...Object.entries(AGENTS).map(([name, script]) =>
        agent(
          name,
          script,
          name === 'inodes' || name === 'full-memory'
            ? { resources: { memory: '96m' } }
            : name === 'self-stopped'
              ? { timeout: '6s' }
              : {},
        ),
      ),
      agent('stash', '', { command: ['perl', '-e', STASH] }),
      // Another agent, given no credential: nothing of its output is masked.
      agent('peek', '', { command: ['perl', '-e', PEEK], credentials: [] }),
    ],
    daemon: { max_sessions: Object.keys(AGENTS).length + 2 },
  });
  d = launchDaemon(files, { env });
  await d.ready();
  // All at once: each test reads its own.
  for (const name of Object.keys(AGENTS) as Attack[]) runs.set(name, d.cli(['trigger', name, '--json']));
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(runs.values());
  if (d?.running) {
    // Still ready after all of it, with exactly one outcome per session.
    expect((await d.cli(['status'])).stdout).toMatch(/: ready,/);
    const ids = d
      .logs()
      .filter((l) => l.event === 'session.outcome')
      .map((l) => l.session);
    expect(ids).toHaveLength(Object.keys(AGENTS).length + 2);
    expect(new Set(ids).size).toBe(ids.length);
    expect(await d.stop('SIGTERM', 30_000)).toBe(0);
  }
  const left = await leftoversOfDaemons();
  await cleanupAll();
  await origin?.stop();
  unlinkStashed();
  expect(left, 'podman objects the test daemons left behind').toEqual([]);
});

describe('an agent that pries', () => {
  it('reads neither the repo token nor the bundle, nor any root process but its argv; no socket reaches the daemon or Podman', async () => {
    const { reply, log } = await attack('pry');
    expect(reply.outcome, log).toBe('succeeded');
    const lines = log.trimEnd().split('\n');
    expect(lines.at(-1)).toBe('searched');
    // The setup step and the container's init: their command lines only (the setup script, no value).
    expect(lines.filter((l) => l.startsWith('root process')).length).toBeGreaterThanOrEqual(2);
    expect(lines.filter((l) => l.startsWith('read ') && !l.endsWith('/cmdline'))).toEqual([]);
    expect(lines.filter((l) => /^(token in|found) /.test(l))).toEqual([]);
    // Its own credential it has, as configured.
    expect(lines).toContain('api key in env: 1');
    expect(origin.requests.some((r) => r.authorized)).toBe(true);
  });
});

describe('an agent that will not end', () => {
  it('leaves nothing running at its exit: the session ends on time, succeeded, its container gone', async () => {
    const { reply, log } = await attack('outlive');
    expect(reply).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(log).toContain('leaving\n');
    // Its processes would run 1000 s: the setup step kills them once the command has exited.
    expect(reply.durationMs).toBeLessThan(30_000);
    await waitUntil(
      async () => (await d.leftovers()).containers.every((c) => !c.includes(reply.sessionId)),
      () => 'the container removed',
    );
  });
});

describe('an agent that fills its output directory with what is not a file', () => {
  it('leaves a record of its files and 500 names of one file, 10 MB on disk once, and none of the rest', async () => {
    const { reply, output, dir } = await attack('outfill');
    expect(reply.outcome).toBe('succeeded');
    // The fifo, both symbolic links, and the 36 directories and the file past 64 levels are skipped.
    expect(output).toMatchObject({ files: 502, bytes: 10_000_000, truncated: false, skipped: 40 });
    const out = join(dir, 'out');
    const big = lstatSync(join(out, 'big'));
    expect(big.nlink).toBe(501);
    expect(lstatSync(join(out, 'big.499')).ino).toBe(big.ino);
    const kinds = new Set<string>();
    const walk = (at: string, depth: number): number => {
      let deepest = depth;
      for (const entry of readdirSync(at, { withFileTypes: true })) {
        kinds.add(entry.isDirectory() ? 'dir' : entry.isFile() ? 'file' : 'other');
        if (entry.isDirectory()) deepest = Math.max(deepest, walk(join(at, entry.name), depth + 1));
      }
      return deepest;
    };
    expect(walk(out, 0)).toBe(64);
    expect([...kinds].sort()).toEqual(['dir', 'file']);
    expect(readdirSync(out)).toContain('n'.repeat(255));
    // 500 names of one file are one file on the records' disk.
    const kib = Number(
      execSync(`du -sk ${JSON.stringify(dir)}`)
        .toString()
        .split('\t')[0],
    );
    expect(kib).toBeLessThan(11 * 1024);
  });
});

describe('an agent that lies with its exit', () => {
  it('exits 300: the session says 44, as the kernel does', async () => {
    const { reply } = await attack('exit-300');
    expect(reply).toMatchObject({ outcome: 'failed', exitCode: 44, message: 'command exited with code 44' });
  });

  it('kills itself with SIGSEGV: the session says so, and does not blame memory', async () => {
    const { reply } = await attack('segv');
    expect(reply).toMatchObject({
      outcome: 'failed',
      kind: 'killed',
      exitCode: 139,
      signal: 'SIGSEGV',
      message: 'command killed by SIGSEGV (exit 139)',
    });
  });
});

describe('an agent that fills memory', () => {
  it('with empty files: their inodes count against its memory, and it ends out of memory', async () => {
    // A tmpfs's size bound counts no empty file, and its inodes (by default half the host's pages):
    // about 1 KB of kernel memory each, charged to the container, so 200,000 of them meet 96m first.
    const { reply } = await attack('inodes');
    expect(reply.outcome).toBe('failed');
    expect(reply.message).toMatch(/^out of memory \(limit 96m\)/);
  });

  it('to just under its limit, then floods its output and exits: its output is still archived whole', async () => {
    const { reply, log, output, dir } = await attack('full-memory');
    expect(reply, log.slice(-2000)).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    // The flood's first lines are dropped (log_max_bytes), its last and the end kept (`yes`, cut by
    // timeout, may leave its last line unfinished).
    expect(log.slice(-200)).toMatch(/flood flood[^\n]*\n(flood )*[a-z ]*done\n$/);
    expect(output).toMatchObject({ files: 2, bytes: 2_000_005, truncated: false, skipped: 0 });
    expect(output.missing).toBeUndefined();
    expect(readFileSync(join(dir, 'out', 'result.txt'), 'utf8')).toBe('kept\n');
  });
});

describe('an agent that stops itself', () => {
  it('is timed out on time: the stop signal waits for a SIGCONT, the kill after the grace period does not', async () => {
    const { reply, log } = await attack('self-stopped');
    expect(log).toBe('before\n');
    expect(reply).toMatchObject({
      outcome: 'timed_out',
      exitCode: 137,
      signal: 'SIGKILL',
      message: 'session exceeded its timeout of 6s while running',
    });
    // 6 s, then stop_grace (2 s); Podman's own --timeout (timeout + grace + 10 s) is not what ended it.
    expect(reply.durationMs).toBeLessThan(17_000);
  });
});

describe('an agent that leaves its credential for another agent', () => {
  it("cannot reach the kernel's keyrings, which every session's user shares on the host", async () => {
    // Keyrings are not namespaced: the user keyring of host uid 61000 was every agent's (without
    // user_namespace: auto), and one session's keyring linked there outlived it for any later one to list.
    const run = async (name: string) => {
      const reply = JSON.parse((await d.cli(['trigger', name, '--json'])).stdout) as Reply;
      const log = (await d.cli(['logs', reply.sessionId])).stdout;
      expect(reply.outcome, log).toBe('succeeded');
      return log;
    };
    const stashed = await run('stash');
    const peeked = await run('peek');
    expect(peeked).not.toContain(KEY);
    expect(peeked).not.toContain('found:');
    // ENOSYS, as a kernel without keyrings answers.
    expect(stashed).toBe('refused: Function not implemented\n');
    expect(peeked).toBe('refused: Function not implemented\n');
  });
});

describe('an agent that poses as a podman command of the daemon', () => {
  let next: TestDaemon | undefined;
  let posing: string | undefined;
  afterEach(async () => {
    // A failed test leaves the session running: the stop would wait for it.
    if (next?.running && posing !== undefined) await next.cli(['cancel', posing]);
    if (next?.running) expect(await next.stop('SIGTERM', 30_000)).toBe(0);
  });

  it("does not hold the next daemon's start: it waits for no `secret create` but its own user's", async () => {
    // The instance's secret prefix follows from the state dir, which the mount of the session's work
    // dir shows, and the socket path (here the test's layout; a default install's is /run/agentd/agentd.sock).
    // A process named `... secret create agentd-<instance>-...` was taken for a create a killed daemon
    // left running: every reconciliation (each start, each host's return) waited 10 s for it.
    const pose = [
      `state=$(grep ' /run/agentd/out ' /proc/self/mountinfo | cut -d' ' -f4)`,
      `state=\${state%/work/*}`,
      `id=$(printf "%s\\0%s" "\${state%/state}/run/agentd.sock" "$state" | sha256sum | cut -c1-8)`,
      'echo "prefix agentd-$id-"',
      `bash -c 'sleep 600; :' _ secret create "agentd-$id-0000000000000000-0" - &`,
      'exec sleep 600',
    ].join('\n');
    const files = prepareDaemon({ agents: [] });
    writeDaemonConfig(files, { agents: [agent('poser', pose)] });
    const first = launchDaemon(files, { env });
    await first.ready();
    const { sessionId } = JSON.parse(
      (await first.cli(['trigger', 'poser', '--detach', '--json'])).stdout,
    ) as {
      sessionId: string;
    };
    posing = sessionId;
    await first.waitForLog(
      (l) => l.event === 'session.phase' && l.session === sessionId && l.phase === 'running',
    );
    await waitUntil(
      async () => (await first.cli(['logs', sessionId])).stdout.includes('prefix'),
      () => 'the agent said its prefix',
    );
    expect((await first.cli(['logs', sessionId])).stdout).toBe(`prefix ${files.prefix}\n`);
    // A crash: the session's container runs on, as does the agent's pose.
    first.signal('SIGKILL');
    await first.exited;
    await endProcessGroup(first.pid);
    const started = performance.now();
    next = launchDaemon(files, { env });
    await next.ready();
    const readyMs = performance.now() - started;
    expect(next.logs().filter((l) => l.event === 'daemon.secret_creates_waited')).toEqual([]);
    expect(await next.waitForLog((l) => l.event === 'daemon.recovered')).toMatchObject({
      adopted: [sessionId],
    });
    console.log(`the next daemon was ready in ${Math.round(readyMs)} ms`);
    await next.cli(['cancel', sessionId]);
    expect(await next.waitForOutcome(sessionId)).toMatchObject({ outcome: 'cancelled' });
    expect(next.logs().filter((l) => l.event === 'session.outcome')).toHaveLength(1);
    expect(first.logs().filter((l) => l.event === 'session.outcome')).toEqual([]);
  });
});
