import { createHash } from 'node:crypto';
import { compareText } from '../compare.js';
import { formatDuration } from '../duration.js';
import { describeListen } from './http.js';
import { formatMinFree, formatSize, type MinFree } from './resources.js';
import type { AgentConfig, DaemonSettings, HostConfig, HttpSettings, NotifyTarget } from './types.js';
import { shownWebhookUrl } from './webhook-url.js';

/** A daemon setting that differs in the file but only applies when agentd starts again. */
export interface PendingSetting {
  /** The key as written in agentd.yaml, e.g. `daemon.socket`. */
  key: string;
  from: string;
  to: string;
}

/** What a re-read configuration changes compared with the one the daemon runs with. */
export interface ConfigChanges {
  added: string[];
  changed: string[];
  removed: string[];
  maxSessions: { from: number; to: number } | undefined;
  /** Settings that cannot change while the daemon runs (socket, state dir, ...). */
  restartNeeded: PendingSetting[];
}

/** Daemon settings fixed for the life of the process, with their YAML key and how to show a value. */
const FIXED: { field: keyof DaemonSettings; key: string; show: (v: never) => string }[] = [
  { field: 'socket', key: 'daemon.socket', show: (v: string | number) => String(v) },
  { field: 'stateDir', key: 'daemon.state_dir', show: (v: string | number) => String(v) },
  { field: 'stopGraceMs', key: 'daemon.stop_grace', show: (v: number) => formatDuration(v) },
  { field: 'podmanTimeoutMs', key: 'daemon.podman_timeout', show: (v: number) => formatDuration(v) },
  { field: 'pullTimeoutMs', key: 'daemon.pull_timeout', show: (v: number) => formatDuration(v) },
  { field: 'logMaxBytes', key: 'daemon.log_max_bytes', show: (v: string | number) => String(v) },
  { field: 'historyLimit', key: 'daemon.history', show: (v: string | number) => String(v) },
  { field: 'recordsDir', key: 'daemon.records_dir', show: (v: string | number) => String(v) },
  { field: 'recordsMaxAgeMs', key: 'daemon.records_max_age', show: (v: number) => formatDuration(v) },
  { field: 'recordsMaxBytes', key: 'daemon.records_max_size', show: (v: number) => formatSize(v) },
  { field: 'recordsMaxCount', key: 'daemon.records_max_count', show: (v: string | number) => String(v) },
  { field: 'recordsMinFree', key: 'daemon.records_min_free', show: (v: MinFree) => formatMinFree(v) },
  { field: 'hostProbeIntervalMs', key: 'daemon.host_probe_interval', show: (v: number) => formatDuration(v) },
  { field: 'hostProbeTimeoutMs', key: 'daemon.host_probe_timeout', show: (v: number) => formatDuration(v) },
  { field: 'hostDownGraceMs', key: 'daemon.host_down_grace', show: (v: number) => formatDuration(v) },
  {
    field: 'notify',
    key: 'daemon.notify',
    // Every part that can differ, as for daemon.http below: URLs alone named two identical lists when a
    // reload changed a target's secret, attempts, backoff or outcomes.
    show: (v: NotifyTarget[]) =>
      showList(
        v.map(
          (t) =>
            `${shownWebhookUrl(t.url)} (signed with ${t.secret.raw}, ${t.attempts} attempts, backoff ${formatDuration(t.backoffMs)}${t.outcomes ? `, outcomes ${t.outcomes.join('/')}` : ''})`,
        ),
      ),
  },
  {
    field: 'http',
    key: 'daemon.http',
    show: (v: HttpSettings | undefined) =>
      v === undefined
        ? 'off'
        : // Every part that can differ: a reload that changed a token's scopes only would otherwise name
          // two identical lines, and the operator could not tell what the running daemon still allows.
          [
            describeListen(v.listen),
            `tokens ${showList(v.tokens.map((t) => `${t.name} <- ${t.source.raw} (${t.scopes.join(', ')})`))}`,
            ...(v.tls ? [`tls ${v.tls.cert} ${v.tls.key}`] : []),
            `body_limit ${formatSize(v.bodyLimitBytes)}`,
          ].join(', '),
  },
];

function showList(items: readonly string[]): string {
  return items.length === 0 ? 'none' : items.join(' ');
}

/**
 * The hosts a reload leaves in force: the running ones, each with its new max_sessions and labels. A
 * host added, removed or reached differently (url, identity) waits for a restart.
 */
export function hostChanges(
  running: readonly HostConfig[],
  next: readonly HostConfig[],
): { hosts: HostConfig[]; restartNeeded: PendingSetting[] } {
  const reach = (h: HostConfig | undefined) =>
    h === undefined ? 'none' : `${h.url ?? 'local podman'}${h.identity ? ` (identity ${h.identity})` : ''}`;
  const restartNeeded: PendingSetting[] = [];
  const hosts = running.map((host) => {
    const update = next.find((h) => h.name === host.name);
    if (update === undefined || reach(update) !== reach(host)) {
      restartNeeded.push({ key: `hosts.${host.name}`, from: reach(host), to: reach(update) });
      return host;
    }
    return { ...host, maxSessions: update.maxSessions, labels: update.labels };
  });
  for (const added of next.filter((h) => !running.some((r) => r.name === h.name))) {
    restartNeeded.push({ key: `hosts.${added.name}`, from: 'none', to: reach(added) });
  }
  return { hosts, restartNeeded };
}

export function diffConfiguration(
  running: { agents: AgentConfig[]; maxSessions: number; daemon: DaemonSettings },
  next: { agents: AgentConfig[]; daemon: DaemonSettings },
): ConfigChanges {
  const before = new Map(running.agents.map((a) => [a.name, a]));
  const after = new Map(next.agents.map((a) => [a.name, a]));
  const changes: ConfigChanges = {
    added: [...after.keys()].filter((name) => !before.has(name)),
    changed: [...after.keys()].filter((name) => {
      const old = before.get(name);
      return old !== undefined && !sameAgent(old, after.get(name));
    }),
    removed: [...before.keys()].filter((name) => !after.has(name)),
    maxSessions:
      running.maxSessions === next.daemon.maxSessions
        ? undefined
        : { from: running.maxSessions, to: next.daemon.maxSessions },
    restartNeeded: [],
  };
  for (const { field, key, show } of FIXED) {
    const [from, to] = [running.daemon[field], next.daemon[field]];
    if (canonical(from) !== canonical(to)) {
      changes.restartNeeded.push({ key, from: show(from as never), to: show(to as never) });
    }
  }
  return changes;
}

/**
 * How many agents a reload's message and log line name in each of added, changed and removed: a 4 MiB
 * file of 75,000 one-line agents made a 591 KB reply and log line that named them all.
 */
export const MAX_NAMED_AGENTS = 20;

/** At most MAX_NAMED_AGENTS of the names, then how many more: "a, b and 75,000 more". */
export function someNames(names: readonly string[], max = MAX_NAMED_AGENTS): string {
  if (names.length <= max) return names.join(', ');
  // Thousands by hand: toLocaleString loads ICU's locale data, 8 MB of RSS for the daemon's whole life.
  const more = String(names.length - max).replace(/\B(?=(\d{3})+$)/g, ',');
  return `${names.slice(0, max).join(', ')} and ${more} more`;
}

/** What a reload's reply and log line list: at most `max` names of each, in the file's order, and how many. */
export interface ListedChanges {
  agents: string[];
  added: string[];
  changed: string[];
  removed: string[];
  counts: { agents: number; added: number; changed: number; removed: number };
}

/**
 * The first MAX_NAMED_AGENTS names of the agents in force and of each change, with how many there are:
 * a reply naming every one was 921 KB for a 4 MiB file of 52,000 one-line agents that all changed (the
 * agents in force and the changed ones, each a list of them all), and 460 KB when none had.
 */
export function listedChanges(
  agents: readonly string[],
  changes: Pick<ConfigChanges, 'added' | 'changed' | 'removed'>,
  max = MAX_NAMED_AGENTS,
): ListedChanges {
  return {
    agents: agents.slice(0, max),
    added: changes.added.slice(0, max),
    changed: changes.changed.slice(0, max),
    removed: changes.removed.slice(0, max),
    counts: {
      agents: agents.length,
      added: changes.added.length,
      changed: changes.changed.length,
      removed: changes.removed.length,
    },
  };
}

/** One line an operator reads: what the reload did. */
export function describeChanges(changes: ConfigChanges): string {
  const parts = [
    changes.added.length > 0 ? `added ${someNames(changes.added)}` : '',
    changes.changed.length > 0 ? `changed ${someNames(changes.changed)}` : '',
    changes.removed.length > 0 ? `removed ${someNames(changes.removed)}` : '',
    changes.maxSessions ? `max_sessions ${changes.maxSessions.from} -> ${changes.maxSessions.to}` : '',
  ].filter(Boolean);
  return parts.length > 0 ? parts.join('; ') : 'no agent or max_sessions change';
}

/** Names each setting that waits for a restart, with both values. */
export function describeRestartNeeded(pending: readonly PendingSetting[]): string {
  return `${pending.map((p) => `${p.key} (${p.from} -> ${p.to})`).join(', ')} cannot change while agentd runs: the running daemon keeps the old value until it is restarted`;
}

/**
 * Two definitions of an agent are the same when their JSON with sorted keys is. The same object is the
 * same without that (some 50 µs an agent): a reload's parse thread hands back the running definitions of
 * the agents it found unchanged.
 */
export function sameAgent(a: AgentConfig, b: AgentConfig | undefined): boolean {
  return a === b || (b !== undefined && canonical(a) === canonical(b));
}

/**
 * What sameAgent compares, as a short digest: a reload's thread hands these back, and the next reload's
 * thread is given them instead of the definitions, which cost the daemon's thread a copy (200 ms for
 * 12,500 agents).
 */
export function agentFingerprint(agent: AgentConfig): string {
  return createHash('sha256').update(canonical(agent)).digest('base64');
}

/** JSON with sorted keys: two definitions are the same agent when this is equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => compareText(a, b)))
      : v,
  );
}
