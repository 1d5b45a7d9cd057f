import { readdirSync, readFileSync } from 'node:fs';

/**
 * `podman secret create` commands on this machine that name a secret starting with `prefix` and that this
 * process did not start: those a killed daemon of the instance left running (its children live on after
 * a SIGKILL unless a service manager ends them, and a `podman secret` command must never be killed: see
 * README). Their pids; none where /proc cannot be read. Remote hosts are reached by a podman CLI running
 * here, so their creates are found too.
 */
export function leftSecretCreates(prefix: string, self: number = process.pid, proc = '/proc'): number[] {
  let entries: string[];
  try {
    entries = readdirSync(proc);
  } catch {
    return [];
  }
  const parents = new Map<number, number>();
  const creates: number[] = [];
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
        creates.push(pid);
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
