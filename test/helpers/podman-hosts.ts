import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { execa } from 'execa';
import { freePort, waitForPort } from './git-server.js';
import { mountsUnder } from './mounts.js';
import { TEST_IMAGE } from './podman.js';
import { makeTempDir, track } from './resources.js';

/**
 * Extra Podman "hosts" on this machine for the fleet tests: each a `podman system service` with its
 * own storage (--root, --runroot, --tmpdir) behind its own unix:// socket, the test image loaded into
 * it. One optional ssh:// host: an sshd the test starts on a loopback port with generated keys, in
 * front of one more such service. Everything lives in one temp dir, removed at the end; storage is
 * never reset (`podman system reset` also touches /etc/cni/net.d), only emptied and deleted.
 */

export interface SideHost {
  name: string;
  dir: string;
  socket: string;
  /** How agentd reaches it: unix://SOCKET, or ssh:// for the ssh host. */
  url: string;
  /** The service's pid while it runs. */
  readonly pid: number | undefined;
  /** SIGKILL to the service alone: its containers (conmon) run on, as on a host whose API died. */
  kill(): Promise<void>;
  /** Starts the service again on the same storage. */
  start(): Promise<void>;
  /** `podman --url unix://SOCKET ARGS`, straight to the service. */
  podman(args: string[], input?: string): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** Containers of that host whose name starts with prefix, with their state and labels. */
  containers(prefix: string): Promise<{ name: string; state: string; labels: Record<string, string> }[]>;
  secrets(prefix: string): Promise<string[]>;
}

export interface SideHosts {
  hosts: SideHost[];
  /** Set when an ssh:// host could be made: its sshd, key and known_hosts. */
  ssh?: { port: number; identity: string; knownHostsHome: string; host: SideHost };
  /** Why there is no ssh:// host, when there is none. */
  noSsh?: string;
  /** Empties every host and removes every service, sshd and directory. */
  close(): Promise<void>;
}

const SSHD = '/usr/sbin/sshd';

/**
 * Starts `names.length` unix:// hosts and, with `ssh`, one more host reached over ssh://. The image
 * is saved once and loaded into each host side by side.
 */
export async function startSideHosts(names: string[], options: { ssh?: string } = {}): Promise<SideHosts> {
  // A short name: Podman refuses a --runroot longer than 50 characters, and the run's TMPDIR is one level deep.
  const root = makeTempDir('agentd-h-');
  const image = join(root, 'image.tar');
  const all = [...names, ...(options.ssh === undefined ? [] : [options.ssh])];
  const [saved, ...hosts] = await Promise.all([
    execa('podman', ['save', '--quiet', '-o', image, TEST_IMAGE], { timeout: 180_000 }),
    ...all.map((name) => startHost(join(root, name), name)),
  ]);
  void saved;
  await Promise.all(
    hosts.map(async (host) => {
      const loaded = await host.podman(['load', '--quiet', '-i', image]);
      if (loaded.exitCode !== 0) throw new Error(`loading the image into ${host.name}: ${loaded.stderr}`);
    }),
  );
  let closed = false;
  const result: SideHosts = {
    hosts: hosts.slice(0, names.length),
    close: async () => {
      if (closed) return;
      closed = true;
      if (result.ssh) killPid(readPid(join(root, 'ssh', 'sshd.pid')));
      // Every host is emptied even when one fails; the first failure is reported.
      const emptied = await Promise.allSettled(hosts.map((host) => emptyAndStop(host)));
      const failed = emptied.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
  const sshHost = hosts[names.length];
  if (sshHost !== undefined) {
    // Without sshd the host is still there, reached over its unix:// socket like the others.
    if (!existsSync(SSHD)) result.noSsh = `${SSHD} is not installed (apt-get install openssh-server)`;
    else result.ssh = await startSshd(join(root, 'ssh'), sshHost);
    result.hosts.push(sshHost);
  }
  // Whatever happens to the test: no service, sshd or mount is left (cleanupAll removes the dir after).
  track.onCleanup(() => result.close());
  return result;
}

/**
 * What daemons with these instance prefixes left on the side hosts, as `HOST: container NAME (STATE)` /
 * `HOST: secret NAME` lines. Read it once the daemons stopped and before `close()`, which empties every
 * host unseen: a session's container or secret left on a host is a leak like one left locally.
 */
export async function leftoversOnHosts(hosts: SideHost[], prefixes: string[]): Promise<string[]> {
  const left: string[] = [];
  for (const host of hosts) {
    for (const prefix of new Set(prefixes)) {
      for (const c of await host.containers(prefix))
        left.push(`${host.name}: container ${c.name} (${c.state})`);
      for (const secret of await host.secrets(prefix)) left.push(`${host.name}: secret ${secret}`);
    }
  }
  return left;
}

/** A unix:// socket in front of a side host's (proxyInFrontOf). */
export interface HostProxy {
  /** Its socket: agentd reaches the host through it at `unix://SOCKET`. */
  socket: string;
  /** Ends its connections and closes it. */
  close(): Promise<void>;
}

/**
 * A proxy in front of the host `name` of side, its socket `proxy.sock` in the host's dir, for a test to
 * change what the host answers: each request goes to `answer`, which answers it itself or calls
 * `forward` (now or later) to hand it on to the host as it came.
 */
export async function proxyInFrontOf(
  side: SideHosts,
  name: string,
  answer: (req: http.IncomingMessage, res: http.ServerResponse, forward: () => void) => void,
): Promise<HostProxy> {
  const host = side.hosts.find((h) => h.name === name);
  if (host === undefined) throw new Error(`no side host ${name}`);
  const socket = join(host.dir, 'proxy.sock');
  rmSync(socket, { force: true });
  const server = http.createServer((req, res) => {
    const forward = () => {
      const upstream = http.request(
        { socketPath: host.socket, path: req.url, method: req.method, headers: req.headers },
        (reply) => {
          res.writeHead(reply.statusCode ?? 502, reply.headers);
          reply.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    };
    answer(req, res, forward);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    socket,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function startHost(dir: string, name: string): Promise<SideHost> {
  for (const sub of ['root', 'run', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  if (join(dir, 'run').length > 50) {
    throw new Error(
      `host ${name}: Podman refuses the --runroot ${join(dir, 'run')}, longer than 50 characters; use a shorter TMPDIR`,
    );
  }
  const socket = join(dir, 'podman.sock');
  const storage = ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--tmpdir', join(dir, 'tmp')];
  let child: ChildProcess | undefined;
  const run = (args: string[], input?: string) =>
    execa('podman', ['--url', `unix://${socket}`, ...args], {
      reject: false,
      timeout: 120_000,
      ...(input === undefined ? {} : { input }),
    }).then((r) => ({ exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr }));
  const host: SideHost = {
    name,
    dir,
    socket,
    url: `unix://${socket}`,
    get pid() {
      return child !== undefined && child.exitCode === null && child.signalCode === null
        ? child.pid
        : undefined;
    },
    start: async () => {
      // The service's own errors go to a file so that a service that does not come up says why.
      const log = openSync(join(dir, 'service.log'), 'a');
      try {
        child = track.process(
          spawn('podman', [...storage, 'system', 'service', '--time=0', `unix://${socket}`], {
            detached: true,
            stdio: ['ignore', log, log],
            env: process.env,
          }),
        );
      } finally {
        closeSync(log);
      }
      for (let i = 0; i < 300 && host.pid !== undefined; i++) {
        if ((await run(['version', '--format', '{{.Server.Version}}'])).exitCode === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const why = readFileSync(join(dir, 'service.log'), 'utf8').trim().slice(-2000);
      throw new Error(
        `the podman service of host ${name} did not answer on ${socket}: ${why || 'no output'}`,
      );
    },
    kill: async () => {
      const pid = host.pid;
      if (pid === undefined) return;
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      process.kill(pid, 'SIGKILL');
      await exited;
    },
    podman: run,
    containers: async (prefix) => {
      const listed = await run(['ps', '--all', '--format', 'json']);
      if (listed.exitCode !== 0) throw new Error(`podman ps on ${name}: ${listed.stderr}`);
      const entries = (JSON.parse(listed.stdout || '[]') ?? []) as {
        Names?: string[];
        State: string;
        Labels?: Record<string, string> | null;
      }[];
      return entries
        .map((e) => ({ name: e.Names?.[0] ?? '', state: e.State, labels: e.Labels ?? {} }))
        .filter((c) => c.name.startsWith(prefix));
    },
    secrets: async (prefix) => {
      const listed = await run(['secret', 'ls', '--format', '{{.Name}}']);
      if (listed.exitCode !== 0) throw new Error(`podman secret ls on ${name}: ${listed.stderr}`);
      return listed.stdout.split('\n').filter((s) => s !== '' && s.startsWith(prefix));
    },
  };
  return host.start().then(() => host);
}

/** Removes everything in the host's storage through its own service, stops it and unmounts its storage. */
async function emptyAndStop(host: SideHost): Promise<void> {
  if (host.pid === undefined) await host.start().catch(() => undefined);
  const containers = await host.containers('').catch(() => []);
  if (containers.length > 0) {
    await host.podman(['rm', '--force', '--ignore', '--time', '0', ...containers.map((c) => c.name)]);
  }
  const secrets = await host.secrets('').catch(() => []);
  if (secrets.length > 0) await host.podman(['secret', 'rm', ...secrets]);
  const volumes = await host.podman(['volume', 'ls', '--format', '{{.Name}}']);
  const names = volumes.stdout.split('\n').filter(Boolean);
  if (names.length > 0) await host.podman(['volume', 'rm', '--force', ...names]);
  await host.kill();
  // What is left running with this host's storage on its command line would mount it again after the
  // unmount below, and the directory could not be removed; a `podman container cleanup` it starts also
  // creates the storage again when the directory is gone. The daemon's `podman exec` (reading an adopted
  // container's secrets) leaves conmon waiting --exit-delay 300 s to run `podman container cleanup --exec`
  // with this host's --root, long after the test: CI runs of 2026-12-06 left temp roots recreated 5 min
  // after their side hosts were removed, with m/root/overlay mounted. The containers are gone by now:
  // those processes are ended, not waited for.
  await endProcessesUsing(host.dir, 30_000);
  // containers/storage keeps its overlay directory mounted (a private bind mount): unmount what is
  // under this host's dir, deepest first, so the directory can be removed.
  for (let pass = 0; pass < 5; pass++) {
    const mounts = mountsUnder(host.dir);
    if (mounts.length === 0) return;
    for (const point of mounts) await execa('umount', ['-l', point], { reject: false });
  }
  const left = mountsUnder(host.dir);
  if (left.length > 0) throw new Error(`host ${host.name}: still mounted after 5 passes: ${left.join(', ')}`);
}

/** SIGKILLs every process but this one with `dir` on its command line, until none is left. */
async function endProcessesUsing(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const holders = readdirSync('/proc').filter((pid) => {
      if (!/^\d+$/.test(pid) || Number(pid) === process.pid) return false;
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(dir);
      } catch {
        return false; // Gone meanwhile.
      }
    });
    if (holders.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`processes using ${dir} did not end after SIGKILL: ${holders.join(', ')}`);
    }
    for (const pid of holders) killPid(Number(pid), 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * An sshd on 127.0.0.1 with its own host key, accepting one generated client key for root, in front
 * of `host`'s socket; agentd reaches it as ssh://root@127.0.0.1:PORT/SOCKET with `identity`.
 * `knownHostsHome` is a HOME whose ~/.ssh/known_hosts holds the host key, so podman checks it.
 */
async function startSshd(dir: string, host: SideHost): Promise<NonNullable<SideHosts['ssh']>> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keygen = (file: string) => execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
  await Promise.all([keygen(join(dir, 'host_key')), keygen(join(dir, 'client_key'))]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')), { mode: 0o600 });
  const port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'StrictModes no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'AllowStreamLocalForwarding yes',
      '',
    ].join('\n'),
  );
  // sshd wants its privilege separation directory.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  track.process(
    spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { detached: true, stdio: 'ignore' }),
  );
  await waitForPort(port);
  const home = join(dir, 'home');
  mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  const hostKey = readFileSync(join(dir, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  writeFileSync(join(home, '.ssh', 'known_hosts'), `[127.0.0.1]:${port} ${hostKey}\n`, { mode: 0o600 });
  host.url = `ssh://root@127.0.0.1:${port}${host.socket}`;
  return { port, identity: join(dir, 'client_key'), knownHostsHome: home, host };
}

function readPid(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
}

function killPid(pid: number | undefined, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}
