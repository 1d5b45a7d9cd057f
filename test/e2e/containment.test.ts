/**
 * Containment of a hostile agent with real Podman: limits Podman enforces (and shows in `podman
 * inspect`), the out-of-memory report, a fork bomb, the disk bound, dropped capabilities and
 * no-new-privileges, no user namespaces (the seccomp profile derived from this machine's default, as
 * the daemon does at start) and no core dumps, and the setup step as the command's parent (signals,
 * exit codes).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PodmanClient } from '../../src/adapters/podman.js';
import { prepareSeccompProfile, SECCOMP_PROFILE_FILE } from '../../src/adapters/seccomp-profile.js';
import { parseSize } from '../../src/config/resources.js';
import type { Resources } from '../../src/config/types.js';
import { instanceSecretPrefix } from '../../src/runner/names.js';
import { type Gate, startGate } from '../helpers/gate.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { randomSessionId, testInstanceId } from '../helpers/ids.js';
import { listAgentdContainers, listSecrets, podmanJson, TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir, track } from '../helpers/resources.js';
import { type RunSessionOptions, runSession, testRunner } from '../helpers/run-session.js';

const instanceId = testInstanceId();
const prefix = instanceSecretPrefix(instanceId);
// Podman 4.3's conmon writes a file named `oom` where podman runs: not in the repository (see PodmanClientOptions.cwd).
const podmanCwd = mkdtempSync(join(tmpdir(), 'agentd-e2e-podman-cwd-'));
const podman = new PodmanClient({ cwd: podmanCwd });
const warnings: string[] = [];
// Derived in beforeAll from this machine's default profile, as the daemon does into its state dir.
const seccompProfile = join(podmanCwd, SECCOMP_PROFILE_FILE);
const runner = testRunner(podman, instanceId, warnings, 1000, seccompProfile);
let git: GitServer;
let gate: Gate;

/** Blocks the command (host network) until the test opens the gate; then it goes on, status 0. */
function waitAtGate(): string {
  return `git ls-remote git://127.0.0.1:${gate.port}/gate.git >/dev/null 2>&1 || :`;
}

/**
 * Probes the container while its command waits at the gate, then lets the command go on, whatever
 * the probe came to: the container runs for as long as the probe takes.
 */
function whileHeld<T>(probe: () => Promise<T>): Promise<T> {
  return probe().finally(() => gate.open());
}

function size(text: string) {
  const parsed = parseSize(text);
  if (!parsed) throw new Error(`bad size ${text}`);
  return parsed;
}

function limits(values: {
  memory?: string;
  swap?: string;
  cpus?: number;
  pids?: number;
  disk?: string;
}): Resources {
  const memory = size(values.memory ?? '512m');
  return {
    memory,
    memorySwap: values.swap === undefined ? memory : size(values.swap),
    pids: values.pids ?? 4096,
    disk: size(values.disk ?? '256m'),
    output: size('64m'),
    ...(values.cpus === undefined ? {} : { cpus: values.cpus }),
  };
}

function run(
  options: Omit<RunSessionOptions, 'runner' | 'invocation'> & Partial<Pick<RunSessionOptions, 'runner'>>,
) {
  return runSession({ runner, invocation: { repoUrl: git.url() }, ...options });
}

interface Inspected {
  HostConfig: {
    Memory: number;
    MemorySwap: number;
    NanoCpus: number;
    PidsLimit: number;
    SecurityOpt: string[];
    Tmpfs: Record<string, string>;
  };
  State: { CgroupPath?: string };
  EffectiveCaps: string[];
  BoundingCaps: string[];
  GraphDriver: { Data: { UpperDir: string } };
}

async function inspect(container: string): Promise<Inspected> {
  const [info] = await podmanJson<Inspected[]>(['container', 'inspect', container]);
  if (!info) throw new Error(`no container ${container}`);
  return info;
}

beforeAll(async () => {
  [git, gate] = await Promise.all([startGitServer(), startGate()]);
  // This machine has Podman's default profile (containers-common): sessions here refuse user namespaces.
  const prepared = await prepareSeccompProfile(() => podman.seccompDefault(), podmanCwd);
  expect(prepared).toEqual({ path: seccompProfile, source: expect.any(String) });
});

afterAll(async () => {
  await Promise.allSettled([git?.stop(), gate?.close()]);
  rmSync(podmanCwd, { recursive: true, force: true });
});

beforeEach(() => {
  // Each test's warnings are its own, and each test's commands wait at a closed gate.
  warnings.length = 0;
  gate.hold();
});

afterEach(async () => {
  const containers = await listAgentdContainers(prefix);
  const secrets = await listSecrets(prefix);
  for (const c of containers) track.container(c.name);
  for (const s of secrets) track.secret(s);
  await cleanupAll();
  expect(
    containers.map((c) => `${c.name} (${c.state})`),
    'containers left behind',
  ).toEqual([]);
  expect(secrets, 'secrets left behind').toEqual([]);
  // A `podman run` cut short while it creates the container can leave the container's shm mount busy
  // for a moment (Podman 4.3 unmounts it in its own cleanup process): the first `rm` then fails with
  // EBUSY and teardown's second try removes it, as it is there for. Nothing else may go wrong.
  const podmanRace = /userdata\/shm: device or resource busy/;
  expect(warnings.filter((warning) => !podmanRace.test(warning))).toEqual([]);
});

describe('limits', () => {
  it('reach podman as its own flags: podman inspect of a running session shows them', async () => {
    let probe: Promise<Inspected> | undefined;
    let container = '';
    const session = await run({
      spec: {
        command: ['sh', '-c', `echo ready; ${waitAtGate()}`],
        resources: limits({ memory: '256m', swap: '384m', cpus: 0.5, pids: 128, disk: '64m' }),
      },
      onEvent: (event) => {
        if (event.type === 'container') container = event.name;
        if (event.type === 'output' && event.line === 'ready') probe = whileHeld(() => inspect(container));
      },
    });
    expect(session.result.outcome).toBe('succeeded');
    const info = await (probe as Promise<Inspected>);
    expect(info.HostConfig).toMatchObject({
      Memory: 256 * 1024 ** 2,
      MemorySwap: 384 * 1024 ** 2,
      NanoCpus: 500_000_000,
      PidsLimit: 128,
      SecurityOpt: ['no-new-privileges', `seccomp=${seccompProfile}`],
    });
    const mounts = info.HostConfig.Tmpfs;
    expect(Object.keys(mounts).sort()).toEqual([
      '/agentd/out',
      '/home/e2e-agent',
      '/run/lock',
      '/tmp',
      '/var/tmp',
    ]);
    for (const options of Object.values(mounts)) {
      expect(options).toContain(`size=${64 * 1024 ** 2}`);
      expect(options).toContain('nosuid');
    }
    // Everything dropped but what the root setup step needs.
    expect(info.EffectiveCaps.sort()).toEqual(['CAP_CHOWN', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID']);
    expect(info.BoundingCaps.sort()).toEqual(['CAP_CHOWN', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID']);
  });

  it('applies the defaults when the session names none: 2g without swap, 4096 pids, 1g tmpfs', async () => {
    let probe: Promise<Inspected> | undefined;
    let container = '';
    const session = await run({
      spec: { command: ['sh', '-c', `echo ready; ${waitAtGate()}`] },
      onEvent: (event) => {
        if (event.type === 'container') container = event.name;
        if (event.type === 'output' && event.line === 'ready') probe = whileHeld(() => inspect(container));
      },
    });
    expect(session.result.outcome).toBe('succeeded');
    const info = await (probe as Promise<Inspected>);
    expect(info.HostConfig).toMatchObject({
      Memory: 2 * 1024 ** 3,
      MemorySwap: 2 * 1024 ** 3,
      NanoCpus: 0,
      PidsLimit: 4096,
    });
    expect(info.HostConfig.Tmpfs['/home/e2e-agent']).toContain(`size=${1024 ** 3}`);
  });
});

describe('out of memory', () => {
  it('ends a memory hog failed with the reason and the limit, not a bare exit 137', async () => {
    const session = await run({
      spec: {
        // tail keeps the whole "line" of /dev/zero in memory: it grows until the OOM killer ends it.
        command: ['sh', '-c', 'printf "no newline before the hog"; exec tail /dev/zero'],
        resources: limits({ memory: '64m' }),
        timeoutMs: 60_000,
      },
    });
    expect(session.result).toMatchObject({
      outcome: 'failed',
      exitCode: 137,
      signal: 'SIGKILL',
      phase: 'running',
      message: 'out of memory (limit 64m): command killed by SIGKILL (exit 137)',
    });
    // The agent's last output without a newline is kept; the setup step's report is not output.
    expect(session.lines).toEqual(['no newline before the hog']);
    expect(session.log()).not.toContain('@@agentd-');
  });

  it('ends a session whose clone runs out of memory failed while cloning, and says so', async () => {
    // 48 MiB of base64 of random bytes (36 MiB packed), checked out into the home tmpfs, which counts
    // against memory: git is OOM-killed during the clone.
    const big = randomBytes(36 * 1024 * 1024).toString('base64');
    const url = await git.addRepo('big', { 'big.txt': big });
    const session = await runSession({
      runner,
      invocation: { repoUrl: url },
      spec: { command: ['true'], resources: limits({ memory: '32m' }), timeoutMs: 120_000 },
    });
    expect(session.result).toMatchObject({ outcome: 'failed', phase: 'cloning' });
    expect(
      session.result.message?.startsWith(`git clone of ${url} failed: out of memory (limit 32m): `),
    ).toBe(true);
    // The command never ran.
    expect(session.phases).not.toContain('running');
  });

  it('says out of memory when the memory is held by files in its tmpfs, not by any process', async () => {
    // The tmpfs pages belong to no process, so every process is as small as another to the OOM killer:
    // it took the root setup step (its report, with the OOM kill and the status, lost with it) before
    // the agent's own. The agent's processes go first now (oom_score_adj 1000).
    const fill =
      'for d in /tmp /var/tmp /run/lock "$HOME"; do head -c 60m /dev/zero > "$d/fill" 2>/dev/null; done';
    const session = await run({
      spec: {
        command: ['sh', '-c', `${fill}; echo filled; x=$(head -c 8m /dev/zero | tr "\\0" a); echo survived`],
        resources: limits({ memory: '64m', disk: '16m' }),
        timeoutMs: 60_000,
      },
    });
    expect(session.result).toMatchObject({
      outcome: 'failed',
      phase: 'running',
      message: expect.stringMatching(/^out of memory \(limit 64m\): /),
    });
    expect(session.log()).not.toContain('@@agentd-');
  });

  it('says why a command that exited 0 after the OOM killer struck a child of it failed', async () => {
    const session = await run({
      spec: {
        command: ['sh', '-c', 'tail /dev/zero; echo "tail ended with $?"; exit 0'],
        resources: limits({ memory: '64m' }),
        timeoutMs: 60_000,
      },
    });
    expect(session.result).toMatchObject({
      outcome: 'failed',
      exitCode: 0,
      message: 'out of memory (limit 64m): command exited with code 0 after the OOM killer struck',
    });
    // sh's own note ("Killed") on its stderr, then the command's line.
    expect(session.lines).toContain('tail ended with 137');
  });

  it('does not blame memory for a SIGKILL that is not the OOM killer', async () => {
    const session = await run({
      spec: { command: ['sh', '-c', 'kill -KILL $$'], resources: limits({ memory: '64m' }) },
    });
    expect(session.result).toMatchObject({
      outcome: 'failed',
      exitCode: 137,
      signal: 'SIGKILL',
      message: 'command killed by SIGKILL (exit 137)',
    });
  });
});

describe('processes', () => {
  it('contains a fork bomb at the pids limit while another session runs to success', async () => {
    let container: string | undefined;
    let cgroup: string | undefined;
    let pidsSeen = 0;
    let pidsMax = '';
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        if (cgroup === undefined && container !== undefined) {
          // Where the host keeps the running container's pids controller (cgroup v1, else v2).
          const path = (await inspect(container)).State.CgroupPath;
          if (path) {
            const v1 = join('/sys/fs/cgroup/pids', path);
            cgroup = existsSync(v1) ? v1 : join('/sys/fs/cgroup', path);
          }
        }
        if (cgroup !== undefined) {
          try {
            pidsSeen = Math.max(pidsSeen, Number(readFileSync(join(cgroup, 'pids.current'), 'utf8')));
            pidsMax = readFileSync(join(cgroup, 'pids.max'), 'utf8').trim();
          } catch {
            // Already gone.
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const controller = new AbortController();
    const bomb = run({
      spec: {
        // The classic bomb, in bash, which retries a fork that fails (dash gives up at once); `exec
        // sleep` keeps the command alive without a fork it could not get.
        command: ['bash', '-c', 'b() { b | b & }; b; exec sleep 60'],
        resources: limits({ pids: 64, cpus: 0.5 }),
      },
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === 'container') container = event.name;
      },
    });
    // Once the bomb has filled most of its budget, an ordinary session runs beside it.
    const deadline = Date.now() + 30_000;
    while (pidsSeen <= 32 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const other = await run({ spec: { command: ['sh', '-c', 'echo "fine: $(git log --oneline | wc -l)"'] } });
    controller.abort();
    const bombed = await bomb;
    sampling = false;
    await sampler;

    expect(other.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(other.lines).toEqual(['fine: 2']);
    expect(bombed.result.outcome).toBe('cancelled');
    // It filled its pids budget and never went past it.
    expect(pidsMax).toBe('64');
    expect(pidsSeen).toBeGreaterThan(32);
    expect(pidsSeen).toBeLessThanOrEqual(64);
    expect(bombed.lines.join('\n')).toMatch(/Cannot fork|Resource temporarily unavailable/);
  });
});

describe('disk', () => {
  it('stops writes past the bound inside the container; the host keeps its space', async () => {
    let probe: Promise<number> | undefined;
    let container = '';
    const script = [
      'for d in "$HOME" /tmp /var/tmp; do',
      '  if dd if=/dev/zero of="$d/fill" bs=1M count=64 2>/dev/null; then echo "$d: wrote 64m"; else echo "$d: full"; fi',
      'done',
      'df -k "$HOME" | tail -1 | awk \'{ print "home size " $2 "k" }\'',
      'if { echo x > /usr/local/x; } 2>/dev/null; then echo "image: writable"; else echo "image: denied"; fi',
      'echo ready',
      waitAtGate(),
    ].join('\n');
    const session = await run({
      spec: { command: ['sh', '-c', script], resources: limits({ memory: '256m', disk: '16m' }) },
      onEvent: (event) => {
        if (event.type === 'container') container = event.name;
        if (event.type === 'output' && event.line === 'ready') {
          probe = whileHeld(async () => {
            // What the container wrote to the host's disk: its overlay upper directory.
            const upper = (await inspect(container)).GraphDriver.Data.UpperDir;
            const du = await execa('du', ['-sk', upper]);
            return Number(du.stdout.split('\t')[0]);
          });
        }
      },
    });
    expect(session.result.outcome).toBe('succeeded');
    expect(session.lines).toEqual([
      '/home/e2e-agent: full',
      '/tmp: full',
      '/var/tmp: full',
      'home size 16384k',
      'image: denied',
      'ready',
    ]);
    expect(await probe).toBeLessThan(1024);
  });

  describe('with a world-writable VOLUME in the image', () => {
    const image = `localhost/agentd-e2e-volume:${randomSessionId()}`;

    beforeAll(async () => {
      const dir = makeTempDir('agentd-e2e-volume-');
      writeFileSync(
        join(dir, 'Containerfile'),
        [
          `FROM ${TEST_IMAGE}`,
          'RUN mkdir /data && echo shipped > /data/shipped && chmod 1777 /data',
          'VOLUME /data',
        ].join('\n'),
      );
      await execa('podman', ['build', '--pull=never', '--quiet', '-t', image, dir], { timeout: 120_000 });
    });

    afterAll(async () => {
      await execa('podman', ['rmi', '--force', image], { reject: false });
    });

    it("mounts it as a tmpfs with the image's files, not as a volume on the host's disk that podman rm leaves", async () => {
      let probe: Promise<{ Type: string; Destination: string }[]> | undefined;
      let container = '';
      const script = [
        'cat /data/shipped',
        'if dd if=/dev/zero of=/data/fill bs=1M count=8 2>/dev/null; then echo "data: wrote 8m"; fi',
        'grep " /data " /proc/mounts | cut -d" " -f3',
        'echo ready',
        waitAtGate(),
      ].join('\n');
      const session = await run({
        spec: { image, command: ['sh', '-c', script], resources: limits({ memory: '256m', disk: '16m' }) },
        onEvent: (event) => {
          if (event.type === 'container') container = event.name;
          if (event.type === 'output' && event.line === 'ready') {
            probe = whileHeld(async () => {
              const info = (await inspect(container)) as unknown as {
                Mounts: { Type: string; Destination: string }[];
              };
              return info.Mounts;
            });
          }
        },
      });
      expect(session.result.outcome).toBe('succeeded');
      // Its writes count against the session's memory, like the disk bound's tmpfs mounts.
      expect(session.lines).toEqual(['shipped', 'data: wrote 8m', 'tmpfs', 'ready']);
      // Podman's default made an anonymous volume of it, under its storage, kept after the container.
      expect((await probe)?.filter((m) => m.Type === 'volume')).toEqual([]);
    });
  });
});

describe('privileges', () => {
  it('runs the agent as uid 61000, nobody on the host: a host process of uid 1000 cannot read its credentials', async () => {
    const value = `value-of-the-key-${randomBytes(8).toString('hex')}`;
    let probe: Promise<{ pid: string; uid: number; readByUid1000: boolean }[]> | undefined;
    const session = await run({
      spec: {
        command: ['sh', '-c', `echo "uid $(id -u)"; echo ready; ${waitAtGate()}`],
        credentials: [{ name: 'KEY', value: Buffer.from(value) }],
      },
      onEvent: (event) => {
        if (event.type === 'output' && event.line === 'ready') {
          probe = whileHeld(async () => {
            // The agent's processes, seen from the host: those with the value in their environment.
            const found = [];
            for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
              let environ: string;
              try {
                environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
              } catch {
                continue;
              }
              if (!environ.includes(`KEY=${value}`)) continue;
              const read = await execa(
                'setpriv',
                ['--reuid', '1000', '--regid', '1000', '--clear-groups', 'cat', `/proc/${pid}/environ`],
                { reject: false, stripFinalNewline: false },
              );
              found.push({
                pid,
                uid: statSync(`/proc/${pid}`).uid,
                readByUid1000: read.exitCode === 0 && read.stdout.includes(value),
              });
            }
            return found;
          });
        }
      },
    });
    const processes = await (probe as Promise<{ pid: string; uid: number; readByUid1000: boolean }[]>);
    expect(processes.length).toBeGreaterThan(0);
    for (const process of processes) expect(process).toMatchObject({ readByUid1000: false, uid: 61000 });
    expect(session.result.outcome).toBe('succeeded');
    expect(session.lines[0]).toBe('uid 61000');
  });

  it('gives the agent no capabilities and no way to gain any; the setup step has only its four', async () => {
    const session = await run({
      spec: {
        command: [
          'sh',
          '-c',
          'grep -E "^(CapInh|CapPrm|CapEff|CapAmb|NoNewPrivs):" /proc/self/status; echo "setup $(grep ^CapEff: /proc/$PPID/status)"; id -u',
        ],
      },
    });
    expect(session.result.outcome).toBe('succeeded');
    expect(session.lines.slice(0, 5)).toEqual([
      'CapInh:\t0000000000000000',
      'CapPrm:\t0000000000000000',
      'CapEff:\t0000000000000000',
      'CapAmb:\t0000000000000000',
      'NoNewPrivs:\t1',
    ]);
    // CHOWN (bit 0), KILL (5), SETGID (6), SETUID (7).
    expect(session.lines[5]).toBe('setup CapEff:\t00000000000000e1');
    expect(session.lines[6]).toMatch(/^[1-9]\d*$/);
  });

  it('refuses the agent a user namespace and core dumps; forks, threads and exec still work', async () => {
    const session = await run({
      spec: {
        command: [
          'sh',
          '-c',
          [
            'unshare -U true 2>/dev/null && echo "user namespace: made" || echo "user namespace: refused"',
            'unshare -Urnm true 2>/dev/null && echo "root in one: yes" || echo "root in one: no"',
            'unshare -U true 2>&1 | tail -1',
            'echo "core $(ulimit -c), hard $(ulimit -Hc)"',
            '(ulimit -c unlimited) 2>/dev/null && echo "core: raised" || echo "core: stays off"',
            'sh -c "true & wait" && echo "fork and exec: ok"',
            // Threads through glibc: clone3 answers ENOSYS, and pthread_create falls back to clone.
            'seq 1 3000000 > /tmp/numbers',
            'sort --parallel=4 -S 256M -n /tmp/numbers > /tmp/sorted & p=$!',
            'threads=1; while kill -0 $p 2>/dev/null; do n=$(ls /proc/$p/task 2>/dev/null | wc -l); [ "$n" -gt "$threads" ] && threads=$n; done',
            'wait $p && echo "sort: $(tail -1 /tmp/sorted), threads: $([ "$threads" -gt 1 ] && echo yes || echo no)"',
            'echo "clone: $(git log --oneline | wc -l) commits"',
          ].join('\n'),
        ],
      },
    });
    expect(session.result.outcome).toBe('succeeded');
    expect(session.lines).toEqual([
      'user namespace: refused',
      'root in one: no',
      'unshare: unshare failed: Operation not permitted',
      'core 0, hard 0',
      'core: stays off',
      'fork and exec: ok',
      'sort: 3000000, threads: yes',
      'clone: 2 commits',
    ]);
  });

  it('lets an agent opt into a capability with cap_add, visibly', async () => {
    let probe: Promise<Inspected> | undefined;
    let container = '';
    const session = await run({
      spec: {
        command: ['sh', '-c', `grep -E "^(CapEff|CapAmb):" /proc/self/status; echo ready; ${waitAtGate()}`],
        capAdd: ['NET_RAW'],
      },
      onEvent: (event) => {
        if (event.type === 'container') container = event.name;
        if (event.type === 'output' && event.line === 'ready') probe = whileHeld(() => inspect(container));
      },
    });
    expect(session.result.outcome).toBe('succeeded');
    // NET_RAW is bit 13.
    expect(session.lines.slice(0, 2)).toEqual(['CapEff:\t0000000000002000', 'CapAmb:\t0000000000002000']);
    expect((await (probe as Promise<Inspected>)).EffectiveCaps).toContain('CAP_NET_RAW');
  });

  describe.each([
    ['uid', 'useradd --no-create-home -K UID_MAX=61000 --uid 61000 squatter', 'user'],
    ['gid', 'groupadd -K GID_MAX=61000 --gid 61000 squatters', 'group'],
  ])('with %s 61000 taken in the image', (id, command, what) => {
    const image = `localhost/agentd-e2e-${id}-taken:${randomSessionId()}`;

    beforeAll(async () => {
      const dir = makeTempDir(`agentd-e2e-${id}-taken-`);
      writeFileSync(join(dir, 'Containerfile'), [`FROM ${TEST_IMAGE}`, `RUN ${command}`].join('\n'));
      await execa('podman', ['build', '--pull=never', '--quiet', '-t', image, dir], { timeout: 120_000 });
    });

    afterAll(async () => {
      await execa('podman', ['rmi', '--force', image], { reject: false });
    });

    it('fails the setup, saying so, instead of sharing it', async () => {
      const session = await run({ spec: { image, command: ['sh', '-c', 'echo ran'] } });
      expect(session.result.outcome).toBe('failed');
      expect(session.result.message).toContain(
        `setup failed: agentd: ${id} 61000, which agentd gives the agent's ${what}, is taken in this image`,
      );
      expect(session.lines).not.toContain('ran');
    });
  });

  describe('with a setuid-root binary in the image', () => {
    const image = `localhost/agentd-e2e-setuid:${randomSessionId()}`;

    beforeAll(async () => {
      const dir = makeTempDir('agentd-e2e-setuid-');
      writeFileSync(
        join(dir, 'Containerfile'),
        [
          `FROM ${TEST_IMAGE}`,
          'RUN cp /usr/bin/id /usr/local/bin/suid-id && cp /bin/cat /usr/local/bin/suid-cat && ' +
            'chmod 4755 /usr/local/bin/suid-id /usr/local/bin/suid-cat',
        ].join('\n'),
      );
      await execa('podman', ['build', '--pull=never', '--quiet', '-t', image, dir], { timeout: 120_000 });
    });

    afterAll(async () => {
      await execa('podman', ['rmi', '--force', image], { reject: false });
    });

    it('does not give the agent root', async () => {
      const session = await run({
        spec: {
          image,
          command: [
            'sh',
            '-c',
            [
              'stat -c "%A %U" /usr/local/bin/suid-id',
              'echo "euid $(suid-id -u)"',
              'suid-cat /etc/shadow >/dev/null 2>&1 && echo "shadow: read" || echo "shadow: denied"',
              'suid-cat /run/secrets/agentd/bundle.0 >/dev/null 2>&1 && echo "secret: read" || echo "secret: denied"',
            ].join('\n'),
          ],
          credentials: [{ name: 'KEY', value: Buffer.from('value-of-the-key-1234') }],
        },
      });
      expect(session.result.outcome).toBe('succeeded');
      expect(session.lines).toEqual(['-rwsr-xr-x root', 'euid 61000', 'shadow: denied', 'secret: denied']);
    });
  });
});

describe('the setup step as the command parent', () => {
  it('forwards the stop signal to the command, which can finish cleanly within the grace time', async () => {
    const graceful = testRunner(podman, instanceId, warnings, 8000, seccompProfile);
    const controller = new AbortController();
    let abortedAt = 0;
    const session = await run({
      runner: graceful,
      spec: {
        command: ['sh', '-c', 'trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done'],
      },
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === 'output' && event.line === 'ready') {
          abortedAt = performance.now();
          controller.abort();
        }
      },
    });
    expect(session.result).toMatchObject({ outcome: 'cancelled', phase: 'running' });
    expect(session.lines).toEqual(['ready', 'got TERM']);
    // From the cancel to the command's exit (teardown begins once it exited), well inside the 8 s
    // grace: the command heard SIGTERM, no SIGKILL was needed.
    const exitedAt = session.events.find(
      ({ event }) => event.type === 'phase' && event.phase === 'tearing_down',
    )?.at;
    expect(abortedAt).toBeGreaterThan(0);
    expect((exitedAt ?? Number.POSITIVE_INFINITY) - abortedAt).toBeLessThan(6000);
  });

  it.each([
    ['TERM', 143, 'SIGTERM'],
    ['INT', 130, 'SIGINT'],
    ['QUIT', 131, 'SIGQUIT'],
  ])('reports a command ended by SIG%s with its exit code and name', async (sig, exitCode, signal) => {
    const session = await run({ spec: { command: ['sh', '-c', `kill -${sig} $$; sleep 5`] } });
    expect(session.result).toMatchObject({
      outcome: 'failed',
      exitCode,
      signal,
      message: `command killed by ${signal} (exit ${exitCode})`,
    });
  });

  it('keeps an exit code and output that ends without a newline', async () => {
    const session = await run({ spec: { command: ['sh', '-c', 'echo one; printf two; exit 7'] } });
    expect(session.result).toMatchObject({
      outcome: 'failed',
      exitCode: 7,
      message: 'command exited with code 7',
    });
    expect(session.lines).toEqual(['one', 'two']);
  });
});
