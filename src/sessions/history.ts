import { compareText } from '../compare.js';
import { parseDuration } from '../duration.js';
import type { SessionRecord } from './records.js';
import type { Outcome } from './types.js';

/** The most records one history query returns. */
export const HISTORY_MAX_LIMIT = 1000;
/** What a query returns when it names no limit. */
export const HISTORY_DEFAULT_LIMIT = 50;

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/**
 * When a `since` text starts (ms since the epoch): an ISO 8601 date or time (`2026-11-26`,
 * `2026-11-26T08:00:00Z`), or a duration back from now (`2h`, `90m`). Undefined when it is neither.
 */
export function parseSince(text: string, now: number): number | undefined {
  const back = parseDuration(text);
  if (back !== undefined) return now - back;
  if (!ISO_TIME.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

export const SINCE_RULE =
  'is neither a time (2026-11-26 or 2026-11-26T08:00:00Z) nor a duration back from now (2h, 90m)';

/** The filters of a history query, wherever it comes from (the `history` request, `agentd history`). */
export type HistoryFilter = {
  agent?: string | undefined;
  outcome?: Outcome | undefined;
  workUnit?: string | undefined;
  since?: string | undefined;
  limit?: number | undefined;
};

export interface HistoryPage {
  /** Newest accepted first. */
  sessions: SessionRecord[];
  /** Records that matched beyond the limit. */
  more: number;
}

/**
 * Every session record the daemon keeps (finished ones up to `daemon.history`, and every unfinished
 * one), by session id, in memory: history and `show` never read the state dir. The daemon keeps it
 * current as records are written and pruned.
 */
export class SessionIndex {
  private readonly byId = new Map<string, SessionRecord>();

  constructor(records: Iterable<SessionRecord> = []) {
    for (const record of records) this.byId.set(record.id, record);
  }

  set(record: SessionRecord): void {
    this.byId.set(record.id, record);
  }

  delete(id: string): void {
    this.byId.delete(id);
  }

  get(id: string): SessionRecord | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }

  /** The newest finished records, newest first. */
  recent(count: number): SessionRecord[] {
    return this.finished().slice(0, count);
  }

  /** The finished records beyond the newest `keep`, newest first: what history retention removes. */
  beyond(keep: number): SessionRecord[] {
    return this.finished().slice(keep);
  }

  private finished(): SessionRecord[] {
    return [...this.byId.values()]
      .filter((r) => r.outcome !== undefined)
      .sort((a, b) => compareText(b.finishedAt ?? '', a.finishedAt ?? ''));
  }

  query(filter: HistoryFilter, now = Date.now()): HistoryPage {
    return queryHistory(this.byId.values(), filter, now);
  }
}

/** The records that match every filter given, newest accepted first, at most `limit` of them. */
export function queryHistory(
  records: Iterable<SessionRecord>,
  filter: HistoryFilter,
  now = Date.now(),
): HistoryPage {
  const since = filter.since === undefined ? undefined : parseSince(filter.since, now);
  const matching = [...records]
    .filter(
      (r) =>
        (filter.agent === undefined || r.agent === filter.agent) &&
        (filter.outcome === undefined || r.outcome === filter.outcome) &&
        (filter.workUnit === undefined || r.workUnit === filter.workUnit) &&
        (since === undefined || Date.parse(r.acceptedAt) >= since),
    )
    .sort((a, b) => compareText(b.acceptedAt, a.acceptedAt) || compareText(b.id, a.id));
  const limit = filter.limit ?? HISTORY_DEFAULT_LIMIT;
  return { sessions: matching.slice(0, limit), more: Math.max(0, matching.length - limit) };
}
