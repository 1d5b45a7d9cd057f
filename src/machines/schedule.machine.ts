import { type ActorRefFrom, assign, not, sendParent, setup } from 'xstate';
import type { ScheduleConfig } from '../config/types.js';
import { missedFiring, nextFiring } from '../sessions/schedule.js';

/**
 * One agent's schedule: it waits for the next firing with a delayed transition and tells the daemon
 * machine when it fires. What a firing does (a session, or nothing while one still runs) is the
 * daemon's rule; this machine only keeps time.
 */

export interface ScheduleInput {
  agent: string;
  schedule: ScheduleConfig;
  /**
   * Since when this schedule, as configured now, has been watched without a firing going unseen (its
   * last firing, or when a daemon first watched it). A catch-up runs the newest firing after it.
   * Unset: nothing was missed that any daemon knows of.
   */
  since?: string;
}

export interface ScheduleContext {
  agent: string;
  schedule: ScheduleConfig;
  since?: string;
  /** The next firing (ISO time); unset when the expression never fires again. */
  next?: string;
  /**
   * The newest firing sent (at start, `since`): firings are planned after it, never again at or before
   * it, though the clock went back; its progress never goes back either.
   */
  lastFired?: string;
}

/** Sent to the daemon machine: the schedule of `agent` fired at `firing` (ISO time). */
export type ScheduleFiredEvent = { type: 'schedule.fired'; agent: string; firing: string; catchUp: boolean };

/**
 * The longest single wait. A wait is re-planned from the clock when it ends, so a clock that jumps
 * (NTP, a suspended host) delays a firing by at most this much; setTimeout cannot wait longer than
 * 2^31-1 ms anyway.
 */
export const MAX_WAIT_MS = 60_000;

/**
 * A firing at most this late still runs as itself: a timer runs late on a loaded machine. Later, the
 * daemon was paused (its process or host suspended, the clock set forward): like cron daemons, it runs
 * once, for the newest firing missed meanwhile, not the oldest (whose {date} would be days off).
 */
export const LATE_MS = 60_000;

/**
 * A clock this far behind the last firing is taken as set right, not as stepped back: the schedule goes
 * on from it (with a warning), so that a firing recorded at a bogus future time cannot hold the schedule
 * back for ever.
 */
export const CLOCK_BEHIND_MAX_MS = 24 * 3_600_000;

export const scheduleMachine = setup({
  types: {
    context: {} as ScheduleContext,
    input: {} as ScheduleInput,
  },
  guards: {
    clockFarBehind: ({ context }) =>
      context.lastFired !== undefined && Date.parse(context.lastFired) - Date.now() > CLOCK_BEHIND_MAX_MS,
    missedFiring: ({ context }) => missed(context) !== undefined,
    firesAgain: ({ context }) => context.next !== undefined,
    isDue: ({ context }) => context.next !== undefined && Date.parse(context.next) <= Date.now(),
  },
  delays: {
    untilNext: ({ context }) =>
      context.next === undefined
        ? MAX_WAIT_MS
        : Math.min(MAX_WAIT_MS, Math.max(0, Date.parse(context.next) - Date.now())),
  },
  actions: {
    planNext: assign(({ context }) => {
      const now = Date.now();
      const last = context.lastFired === undefined ? undefined : Date.parse(context.lastFired);
      // A clock set back plans from the last firing: what fired is not fired again.
      const from = last === undefined || last <= now ? now : last;
      return { next: nextFiring(context.schedule, new Date(from))?.toISOString() };
    }),
    /** A last firing the clock is far behind (see CLOCK_BEHIND_MAX_MS) is forgotten. */
    forgetLastFired: assign({ lastFired: undefined }),
    noteFired: assign({ lastFired: ({ context }) => context.next }),
    noteMissedFired: assign({ lastFired: ({ context }) => missed(context)?.toISOString() }),
    skipToNewest: assign({
      next: ({ context }) => {
        const planned = context.next as string;
        const now = new Date();
        if (now.getTime() - Date.parse(planned) <= LATE_MS) return planned;
        return missedFiring(context.schedule, new Date(planned), now)?.toISOString() ?? planned;
      },
    }),
    /** Side effect (provided): keep `since` where the next daemon finds it (state dir), for catch_up. */
    recordProgress: (_, _params: { agent: string; schedule: ScheduleConfig; since: string }) => {},
    /** Side effect (provided): the clock is far behind the last firing, which is forgotten. */
    warnClockBehind: (_, _params: { agent: string; lastFired: string; now: string }) => {},
    fireMissed: sendParent(
      ({ context }): ScheduleFiredEvent => ({
        type: 'schedule.fired',
        agent: context.agent,
        firing: (missed(context) as Date).toISOString(),
        catchUp: true,
      }),
    ),
    fire: sendParent(
      ({ context }): ScheduleFiredEvent => ({
        type: 'schedule.fired',
        agent: context.agent,
        firing: context.next as string,
        catchUp: false,
      }),
    ),
  },
}).createMachine({
  id: 'schedule',
  description:
    "One agent's schedule (`schedule:`): waits for each firing of its cron expression and tells the daemon, which decides whether it becomes a session.",
  context: ({ input }) => ({
    agent: input.agent,
    schedule: input.schedule,
    ...(input.since === undefined ? {} : { since: input.since, lastFired: input.since }),
  }),
  initial: 'starting',
  states: {
    starting: {
      description:
        'With `catch_up: latest`, the newest firing missed while no daemon watched (after `since`) fires once, now. Otherwise missed firings are not replayed.',
      always: [
        {
          guard: 'missedFiring',
          target: 'waiting',
          actions: [
            'fireMissed',
            'noteMissedFired',
            {
              type: 'recordProgress',
              params: ({ context }) => ({
                agent: context.agent,
                schedule: context.schedule,
                since: new Date().toISOString(),
              }),
            },
          ],
        },
        {
          target: 'waiting',
          actions: {
            type: 'recordProgress',
            params: ({ context }) => ({
              agent: context.agent,
              schedule: context.schedule,
              since: context.since ?? new Date().toISOString(),
            }),
          },
        },
      ],
    },
    waiting: {
      description:
        'Waits until the next firing after the last one (re-planned from the clock at least every minute): a clock set back fires nothing twice; one over a day behind the last firing is taken as set right, with a warning. An expression that never fires again ends here.',
      entry: 'planNext',
      always: [
        {
          guard: 'clockFarBehind',
          target: 'waiting',
          reenter: true,
          actions: [
            {
              type: 'warnClockBehind',
              params: ({ context }) => ({
                agent: context.agent,
                lastFired: context.lastFired as string,
                now: new Date().toISOString(),
              }),
            },
            'forgetLastFired',
          ],
        },
        { guard: not('firesAgain'), target: 'exhausted' },
      ],
      after: { untilNext: 'due' },
    },
    due: {
      description:
        'The wait ended: a firing that is due is sent to the daemon; after a pause (a suspended process or host, a clock set forward) over a minute past it, only the newest firing missed meanwhile, once. An early wake waits again.',
      always: [
        {
          guard: 'isDue',
          target: 'waiting',
          actions: [
            'skipToNewest',
            'fire',
            'noteFired',
            {
              type: 'recordProgress',
              params: ({ context }) => ({
                agent: context.agent,
                schedule: context.schedule,
                since: context.next as string,
              }),
            },
          ],
        },
        { target: 'waiting' },
      ],
    },
    exhausted: {
      description: 'The expression has no future firing (a date that never comes); nothing more happens.',
    },
  },
});

export type ScheduleRef = ActorRefFrom<typeof scheduleMachine>;

function missed(context: ScheduleContext): Date | undefined {
  if (context.schedule.catchUp !== 'latest' || context.since === undefined) return undefined;
  return missedFiring(context.schedule, new Date(context.since), new Date());
}
