/**
 * Resource limits and capabilities of a session container: the pure rules (sizes, defaults, merging
 * the daemon's defaults with an agent's own) that the schema and the loader share.
 */

/** A byte size as the operator wrote it (normalised text for messages) and in bytes (for Podman). */
export interface Size {
  bytes: number;
  text: string;
}

export interface Resources {
  /** Memory limit of the container (`--memory`). */
  memory: Size;
  /** Memory plus swap (`--memory-swap`); equal to `memory` means no swap. */
  memorySwap: Size;
  /** CPUs the container may use (`--cpus`); unset means no CPU limit. */
  cpus?: number;
  /** Processes and threads the container may have at once (`--pids-limit`). */
  pids: number;
  /** Size of each tmpfs the agent's user can write to: its home (with the clone), /tmp, /var/tmp, /run/lock. */
  disk: Size;
  /** Size of the output directory /agentd/out (a tmpfs): what the agent can leave behind. */
  output: Size;
  /**
   * Size of each of the agent's caches (a filesystem of its own, in a file on this machine); unset: a
   * plain volume on Podman's volume storage, with no bound.
   */
  cache?: Size;
}

/** The limits as written under `resources:` (daemon or agent), after the schema checked each value. */
export interface RawResources {
  memory?: string | number;
  memory_swap?: string | number;
  cpus?: number;
  pids?: number;
  disk?: string | number;
  output?: string | number;
  cache?: string | number;
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Podman refuses a memory limit below 6 MiB. */
export const MIN_MEMORY_BYTES = 6 * 1024 ** 2;
export const MIN_DISK_BYTES = 1024 ** 2;
export const MIN_OUTPUT_BYTES = 1024 ** 2;
/** A cache's filesystem needs a little room of its own (ext4's metadata, lost+found). */
export const MIN_CACHE_BYTES = 16 * 1024 ** 2;
/** The setup step and a clone need a few processes and threads of their own. */
export const MIN_PIDS = 32;
export const MAX_CPUS = 1024;

export const RESOURCE_DEFAULTS = {
  memory: '2g',
  pids: 4096,
  disk: '1g',
  output: '64m',
} as const;

/** Parses `512m`, `2g`, `1.5g`, `64MiB` or a whole number of bytes; undefined when it is none of these. */
export function parseSize(value: string | number): Size | undefined {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value <= 0) return undefined;
    return { bytes: value, text: formatSize(value) };
  }
  // 512m, 512M, 512Mi (as Kubernetes writes it), 512MiB, 512MB; a bare number, or with b, is bytes.
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:ib?|b)?|b)?\s*$/i.exec(value);
  if (!match) return undefined;
  const unit = (match[2] ?? '').toLowerCase();
  const bytes = Math.round(Number(match[1]) * (UNITS[unit] ?? 1));
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return undefined;
  return { bytes, text: `${match[1]}${unit === '' ? '' : unit}` };
}

/** `2147483648` → `2g`; sizes that are not whole units stay in the largest unit that divides them. */
export function formatSize(bytes: number): string {
  for (const unit of ['t', 'g', 'm', 'k'] as const) {
    const size = UNITS[unit] ?? 1;
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

/** Why a size is not acceptable for `key`, or undefined. `describe` renders the value as written. */
export function sizeProblem(value: string | number, min: number, describe: string): string | undefined {
  const size = parseSize(value);
  if (size === undefined) {
    return `${describe} is not a size; write a number with a unit like 512m or 2g (k, m, g, t: powers of 1024)`;
  }
  if (size.bytes < min) {
    const hint =
      typeof value === 'number' || /^\s*\d+\s*$/.test(String(value)) ? `; did you mean ${value}m?` : '';
    return `${describe} is too small; the least is ${formatSize(min)}${hint}`;
  }
  return undefined;
}

/** Linux capabilities by the names Podman takes (without the CAP_ prefix). */
export const CAPABILITIES = [
  'AUDIT_CONTROL',
  'AUDIT_READ',
  'AUDIT_WRITE',
  'BLOCK_SUSPEND',
  'BPF',
  'CHECKPOINT_RESTORE',
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'IPC_LOCK',
  'IPC_OWNER',
  'KILL',
  'LEASE',
  'LINUX_IMMUTABLE',
  'MAC_ADMIN',
  'MAC_OVERRIDE',
  'MKNOD',
  'NET_ADMIN',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_RAW',
  'PERFMON',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYSLOG',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_CHROOT',
  'SYS_MODULE',
  'SYS_NICE',
  'SYS_PACCT',
  'SYS_PTRACE',
  'SYS_RAWIO',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'WAKE_ALARM',
] as const;

/** `net_raw`, `CAP_NET_RAW` → `NET_RAW`; undefined for a name Linux does not have. */
export function capabilityName(raw: string): string | undefined {
  const name = raw.trim().toUpperCase().replace(/^CAP_/, '');
  return (CAPABILITIES as readonly string[]).includes(name) ? name : undefined;
}

/**
 * The limits in force for one agent: each key from the agent, else from the daemon's `resources:`,
 * else the built-in default. `memory_swap` is taken only together with the `memory` it belongs to
 * (an agent that sets its own memory gets no swap unless it sets memory_swap too). The schema has
 * checked every value, and that a memory_swap is not below its memory.
 */
export function resolveResources(agent: RawResources, daemon: RawResources): Resources {
  const size = (value: string | number): Size => {
    const parsed = parseSize(value);
    if (parsed === undefined) throw new Error(`unvalidated size ${String(value)}`);
    return parsed;
  };
  const memory = size(agent.memory ?? daemon.memory ?? RESOURCE_DEFAULTS.memory);
  const swapRaw = agent.memory_swap ?? (agent.memory === undefined ? daemon.memory_swap : undefined);
  const cpus = agent.cpus ?? daemon.cpus;
  const cache = agent.cache ?? daemon.cache;
  return {
    memory,
    memorySwap: swapRaw === undefined ? memory : size(swapRaw),
    ...(cpus === undefined ? {} : { cpus }),
    pids: agent.pids ?? daemon.pids ?? RESOURCE_DEFAULTS.pids,
    disk: size(agent.disk ?? daemon.disk ?? RESOURCE_DEFAULTS.disk),
    output: size(agent.output ?? daemon.output ?? RESOURCE_DEFAULTS.output),
    ...(cache === undefined ? {} : { cache: size(cache) }),
  };
}

/** The built-in limits alone. */
export function defaultResources(): Resources {
  return resolveResources({}, {});
}

/**
 * daemon.records_min_free: the free space the records' filesystem keeps, as a share of its size
 * (`percent`) or in bytes; `{ bytes: 0 }` is no floor.
 */
export type MinFree = { percent: number } | { bytes: number };

/** The most of a filesystem records_min_free may ask to keep free: more would leave records no room. */
export const MIN_FREE_MAX_PERCENT = 50;

/** `5%` (a share), `2g` (a size) or `0` (none); undefined when it is none of these. */
export function parseMinFree(value: string | number): MinFree | undefined {
  if (value === 0 || (typeof value === 'string' && /^\s*0\s*%?\s*$/.test(value))) return { bytes: 0 };
  if (typeof value === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value);
    if (match) {
      const percent = Number(match[1]);
      return percent <= MIN_FREE_MAX_PERCENT ? { percent } : undefined;
    }
  }
  const size = parseSize(value);
  return size === undefined ? undefined : { bytes: size.bytes };
}

/** Why a records_min_free value is not acceptable, or undefined. `describe` renders it as written. */
export function minFreeProblem(value: string | number, describe: string): string | undefined {
  if (parseMinFree(value) !== undefined) return undefined;
  if (typeof value === 'string' && /%\s*$/.test(value))
    return `${describe} is not a share agentd keeps free; write a percentage from 0% to ${MIN_FREE_MAX_PERCENT}%, like 5%`;
  return `${describe} is not a share of the filesystem like 5% or a size like 2g (k, m, g, t: powers of 1024); 0 keeps no floor`;
}

/** As it is written: `5%`, `2g`, `0`. */
export function formatMinFree(minFree: MinFree): string {
  return 'percent' in minFree ? `${minFree.percent}%` : formatSize(minFree.bytes);
}

/** The bytes a floor keeps free on a filesystem of `total` bytes. */
export function minFreeBytes(minFree: MinFree, total: number): number {
  return 'percent' in minFree ? Math.floor((total * minFree.percent) / 100) : minFree.bytes;
}
