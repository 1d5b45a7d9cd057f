import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { readNoFollow, writeFileAtomic } from '../adapters/state-files.js';
import type { AgentConfig, ScheduleConfig } from '../config/types.js';
import { errorFields, errorMessage } from '../errors.js';

const fileSchema = z.object({
  version: z.literal(1),
  agents: z.record(
    z.string(),
    z.object({ cron: z.string(), timezone: z.string().optional(), since: z.string() }),
  ),
});
type ScheduleFile = z.infer<typeof fileSchema>;

/**
 * The largest schedules.json read: an entry per scheduled agent, each well under 4 KiB however long its
 * expression (the config file holds at most 4 MiB). A larger file is not agentd's and is not read.
 */
const SCHEDULES_MAX_BYTES = 16 * 1024 * 1024;

/**
 * What a daemon remembers of its schedules across restarts (`schedules.json` in the state dir): per
 * agent, since when its schedule has been watched without a firing going unseen. Only `catch_up:
 * latest` reads it; a schedule whose expression or time zone changed starts afresh.
 */
export class ScheduleLog {
  private readonly path: string;
  private entries: ScheduleFile['agents'] = {};
  private warned = false;
  /** The write waiting for the end of this turn of the event loop. */
  private pending: NodeJS.Immediate | undefined;

  constructor(
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.path = join(stateDir, 'schedules.json');
  }

  /** Reads the file once, at start; returns `since` for each agent whose schedule is unchanged. */
  load(agents: readonly AgentConfig[]): Record<string, string> {
    try {
      this.entries = fileSchema.parse(
        JSON.parse(readNoFollow(this.path, SCHEDULES_MAX_BYTES).toString('utf8')),
      ).agents;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.warn(
          { event: 'daemon.schedules_unreadable', file: this.path, ...errorFields(error) },
          `ignored ${this.path} (${errorMessage(error)}): no missed firing is caught up this time`,
        );
      }
      this.entries = {};
    }
    const since: Record<string, string> = {};
    const kept: ScheduleFile['agents'] = {};
    for (const agent of agents) {
      const entry = Object.hasOwn(this.entries, agent.name) ? this.entries[agent.name] : undefined;
      if (!agent.schedule || !entry || !sameTiming(agent.schedule, entry)) continue;
      // A `since` that is no time (a damaged or hand-edited file) made the schedule's first plan throw,
      // and the daemon crashed at every start: that agent's progress is dropped instead.
      if (!Number.isFinite(Date.parse(entry.since))) {
        this.log.warn(
          { event: 'daemon.schedules_unreadable', file: this.path, agent: agent.name },
          `ignored agent ${agent.name}'s entry in ${this.path} (its since, ${JSON.stringify(entry.since.slice(0, 40))}, is not a time): no missed firing of its schedule is caught up this time`,
        );
        continue;
      }
      since[agent.name] = entry.since;
      kept[agent.name] = entry;
    }
    // A schedule removed or changed is forgotten: brought back later, it starts afresh, never catching up
    // a firing from when it was not configured.
    this.entries = kept;
    return since;
  }

  /**
   * Keeps a schedule's progress. The file is written once the event loop's turn ends, for every schedule
   * that fired in it: schedules firing at the same second (many agents on `* * * * *`, or at start) would
   * otherwise each rewrite the whole file, n writes of n entries (1,000 schedules held the event loop
   * for about a second).
   */
  record(agent: string, schedule: ScheduleConfig, since: string): void {
    this.entries[agent] = {
      cron: schedule.cron,
      ...(schedule.timezone === undefined ? {} : { timezone: schedule.timezone }),
      since,
    };
    this.pending ??= setImmediate(() => this.flush());
  }

  /** Writes what was recorded and not yet written (at the stop, too); a state dir that takes no write is said once and otherwise ignored. */
  flush(): void {
    if (this.pending === undefined) return;
    clearImmediate(this.pending);
    this.pending = undefined;
    const file: ScheduleFile = { version: 1, agents: this.entries };
    try {
      writeFileAtomic(this.path, `${JSON.stringify(file)}\n`, { operation: 'record schedule progress' });
      this.warned = false;
    } catch (error) {
      if (this.warned) return;
      this.warned = true;
      this.log.warn(
        { event: 'daemon.schedules_unwritten', file: this.path, ...errorFields(error) },
        `could not record schedule progress (${errorMessage(error)}); a catch-up after a restart may miss a firing`,
      );
    }
  }
}

function sameTiming(
  schedule: ScheduleConfig,
  entry: { cron: string; timezone?: string | undefined },
): boolean {
  return schedule.cron === entry.cron && schedule.timezone === entry.timezone;
}
