import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * `podman secret create` commands on this machine that name a secret starting with `prefix` and that this
 * process did not start: those a killed daemon of the instance left running (its children live on after
 * a SIGKILL unless a service manager ends them, and a `podman secret` command must never be killed: see
 * README). Their pids; none where /proc cannot be read. Remote hosts are reached by a podman CLI running
 * here, so their creates are found too. Only processes of this daemon's user (`uid`) in its pid namespace
 * count, as a daemon's podman runs: a session's processes are in /proc too, and an agent that names its
 * own `secret create ...` of this instance (the prefix follows from the state dir, which its mounts show)
 * held every reconciliation of the daemon for the whole wait (10 s at each start and each host's return).
 */
export function leftSecretCreates(
  prefix: string,
  self: number = process.pid,
  proc = '/proc',
  uid: number | undefined = process.getuid?.(),
): number[] {
  let entries: string[];
  try {
    entries = readdirSync(proc);
  } catch {
    return [];
  }
  const parents = new Map<number, number>();
  const creates: number[] = [];
  const pidNamespace = (pid: string): string | undefined => {
    try {
      return readlinkSync(`${proc}/${pid}/ns/pid`);
    } catch {
      return undefined;
    }
  };
  const ownNamespace = pidNamespace(String(self));
  // Its real uid as this daemon sees it (a rootless podman's own user namespace maps it back to the
  // daemon's), and its pid namespace where both can be read (a rootless container's root is the
  // daemon's uid too).
  const runsAsDaemon = (pid: string): boolean => {
    if (uid !== undefined) {
      const real = /^Uid:\s+(\d+)/m.exec(readFileSync(`${proc}/${pid}/status`, 'latin1'))?.[1];
      if (real === undefined || Number(real) !== uid) return false;
    }
    const namespace = pidNamespace(pid);
    return ownNamespace === undefined || namespace === undefined || namespace === ownNamespace;
  };
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      // The parent's pid is the 4th field, after the command name in parentheses (which may hold spaces).
      const stat = readFileSync(`${proc}/${entry}/stat`, 'latin1');
      parents.set(pid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      const argv = readFileSync(`${proc}/${entry}/cmdline`, 'latin1').split('\0');
      const at = argv.indexOf('secret');
      if (at >= 0 && argv[at + 1] === 'create' && argv.some((arg, i) => i > at + 1 && arg.startsWith(prefix)))
        if (runsAsDaemon(entry)) creates.push(pid);
    } catch {
      // Ended while it was read.
    }
  }
  // Not this process's own: its podman calls run under a shell of its own (stdin), podman under itself.
  const ours = (pid: number): boolean => {
    for (let at: number | undefined = pid, hops = 0; at !== undefined && at > 1 && hops < 64; hops++) {
      if (at === self) return true;
      at = parents.get(at);
    }
    return false;
  };
  return creates.filter((pid) => !ours(pid));
}

/**
 * Waits until no left `secret create` of the instance runs (see leftSecretCreates), at most `timeoutMs`:
 * one that finished after the secrets were reconciled would leave its secret, and the credential value
 * in it, in Podman until the next start. Resolves with how many there were at first.
 */
export async function settleLeftSecretCreates(
  prefix: string,
  timeoutMs: number,
  signal?: AbortSignal,
  find: () => number[] = () => leftSecretCreates(prefix),
): Promise<number> {
  const first = find().length;
  if (first === 0) return 0;
  const deadline = performance.now() + timeoutMs;
  while (find().length > 0 && performance.now() < deadline) {
    signal?.throwIfAborted();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return first;
}
