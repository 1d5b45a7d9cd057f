import {
  type ActorRefFrom,
  assign,
  fromPromise,
  not,
  type SnapshotFrom,
  sendParent,
  setup,
  stateIn,
} from 'xstate';
import type { HostConfig } from '../config/types.js';
import type { SessionOutcome, SessionRequest } from '../sessions/types.js';
import type { AdoptedSession, SessionInput } from './session.machine.js';

/** What reconciling one host removed and found still running. */
export interface ReconcileSummary {
  removedContainers: number;
  removedSecrets: number;
  runningContainers: number;
}

/** A session settled without a session actor: its outcome is recorded and reported at once. */
export interface SettledSession {
  request: SessionRequest;
  outcome: SessionOutcome;
  /**
   * Already recorded (its followers told), by the host's reconciliation that read it from a container,
   * before it removed that container: counted and logged with the rest, never recorded a second time.
   */
  recorded?: true;
}

/** A session whose container still runs: a session actor supervises it from where it is. */
export type AdoptedInput = SessionInput & { adopted: AdoptedSession };

/** A host reconciled (again): what was removed, and its sessions that nobody supervised. */
export interface HostReconciled {
  summary: ReconcileSummary;
  adopted: AdoptedInput[];
  finished: SettledSession[];
  /**
   * Sessions an earlier daemon was killed making the container of, before it started: their records say
   * queued again, and they wait in the daemon's queue (a daemon shutting down leaves them to the next start).
   */
  queued?: SessionInput[];
}

/** A host as placement needs it: its name, slots and labels. */
export type HostInfo = Pick<HostConfig, 'name' | 'maxSessions' | 'labels'>;

export interface HostInput {
  host: HostInfo;
  /** Set when the daemon's start could not reach the host (why): it starts down and is retried. */
  down?: string;
  /** The host's Podman version, when the start's probe read it. */
  version?: string;
  /**
   * With `down`: since when it has been down (ISO), when this actor replaces one that failed, so that
   * daemon.host_down_grace counts from then (see downGraceLeft); else from this actor's start.
   */
  downSince?: string;
  /**
   * With downSince: host_down_grace ended already in this outage and what waited for the host was
   * abandoned (by the actor this one replaces, or by the daemon during its backoff): not a second time.
   */
  lost?: true;
}

export interface HostProbe {
  at: string;
  ok: boolean;
  /** How long the probe took. */
  ms?: number;
  error?: string;
}

export interface HostContext {
  name: string;
  /** As configured, a reload's too: what `agentd hosts` shows (placement reads the daemon's hostInfo). */
  maxSessions: number;
  labels: Record<string, string>;
  /** The host's Podman version, from its last successful probe. */
  version?: string;
  lastProbe?: HostProbe;
  /** Why the host is down (while it is). */
  problem?: string;
  /** When the host went down (while it is). */
  downSince?: string;
  /** From the input: this outage's grace ended before this actor started (see HostInput.lost). */
  lost?: true;
  reconciled?: ReconcileSummary;
}

export type HostEvent =
  | { type: 'drain' }
  | { type: 'undrain' }
  /** A reload's new max_sessions and labels for this host. */
  | { type: 'reconfigure'; maxSessions: number; labels: Record<string, string> };

/** What a host tells the daemon. */
export type HostUpEvent = { type: 'host.up'; host: string } & HostReconciled;
export type HostDownEvent = { type: 'host.down'; host: string; reason: string };
export type HostAdmissionEvent = { type: 'host.admission'; host: string; open: boolean };
/** Down for longer than the grace period: what waited for it since the start is abandoned. */
export type HostLostEvent = { type: 'host.lost'; host: string };
export type HostNotice = HostUpEvent | HostDownEvent | HostAdmissionEvent | HostLostEvent;

export interface ProbeResult {
  version: string;
  ms: number;
}

function notProvided(name: string): never {
  throw new Error(`host machine: actor ${name} must be provided by the daemon`);
}

/**
 * The delay of daemon.host_down_grace (`graceMs`) for a host's actor: what is left of it since the host
 * went down (downSince), which is the whole grace but for an actor that replaces one that failed.
 */
export function downGraceLeft(graceMs: number): (args: { context: { downSince?: string } }) => number {
  return ({ context }) => {
    const since = Date.parse(context.downSince ?? '');
    return Number.isNaN(since) ? graceMs : Math.max(0, graceMs - Math.max(0, Date.now() - since));
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export const hostMachine = setup({
  types: {
    context: {} as HostContext,
    events: {} as HostEvent,
    input: {} as HostInput,
  },
  actors: {
    /** A cheap podman call to the host with a deadline: its version. */
    probe: fromPromise<ProbeResult, { host: string }>(async () => notProvided('probe')),
    /** Reconciles the host and plans the recovery of its sessions that nobody supervises. */
    reconcileHost: fromPromise<HostReconciled, { host: string }>(async () => notProvided('reconcileHost')),
  },
  delays: {
    /** Provided: daemon.host_probe_interval. */
    probeInterval: 10_000,
    /** Provided: daemon.host_down_grace, what is left of it since the host went down (downGraceLeft). */
    downGrace: downGraceLeft(600_000),
  },
  guards: {
    startsDown: ({ context }) => context.problem !== undefined,
    /** A reconciliation runs: the sessions waiting for the host are its to recover (or, if it fails, to abandon). */
    reconciling: stateIn('#host.connection.away.link.reconciling'),
    /** This outage's grace ended before this actor started (HostInput.lost). */
    lostBefore: ({ context }) => context.lost === true,
  },
  actions: {
    probed: assign((_, probe: ProbeResult) => ({
      version: probe.version,
      lastProbe: { at: new Date().toISOString(), ok: true, ms: probe.ms },
    })),
    probeFailed: assign((_, { error }: { error: unknown }) => ({
      lastProbe: { at: new Date().toISOString(), ok: false, error: messageOf(error) },
    })),
    markDown: assign(({ context }, reason: string) => ({
      problem: reason,
      downSince: context.downSince ?? new Date().toISOString(),
    })),
    markUp: assign((_, summary: ReconcileSummary) => ({
      problem: undefined,
      downSince: undefined,
      lost: undefined,
      reconciled: summary,
    })),
    reconfigure: assign((_, update: { maxSessions: number; labels: Record<string, string> }) => update),
    notifyUp: sendParent(({ context }, reconciled: HostReconciled) => ({
      type: 'host.up' as const,
      host: context.name,
      ...reconciled,
    })),
    notifyDown: sendParent(({ context }) => ({
      type: 'host.down' as const,
      host: context.name,
      reason: context.problem ?? 'unreachable',
    })),
    notifyLost: sendParent(({ context }) => ({ type: 'host.lost' as const, host: context.name })),
    notifyAdmission: sendParent(({ context }, open: boolean) => ({
      type: 'host.admission' as const,
      host: context.name,
      open,
    })),
  },
}).createMachine({
  id: 'host',
  description:
    "One Podman host sessions run on: reached, reconciled and its sessions recovered before it takes any, probed on an interval while up, retried while down; drained by the operator or not. The daemon's placement reads it.",
  type: 'parallel',
  context: ({ input }) => ({
    name: input.host.name,
    maxSessions: input.host.maxSessions,
    labels: input.host.labels,
    ...(input.down === undefined
      ? {}
      : {
          problem: input.down,
          downSince: input.downSince ?? new Date().toISOString(),
          ...(input.downSince !== undefined && input.lost ? { lost: true as const } : {}),
        }),
    ...(input.version === undefined ? {} : { version: input.version }),
  }),
  on: {
    reconfigure: { actions: { type: 'reconfigure', params: ({ event }) => event } },
  },
  states: {
    connection: {
      description: 'Whether the host can be reached, and whether it is known to be in order.',
      initial: 'starting',
      states: {
        starting: {
          description:
            "The daemon's start reconciled every host at once; one it could not reach is down (and did not hold back the others).",
          always: [{ guard: 'startsDown', target: 'away' }, { target: 'up' }],
        },
        up: {
          description: 'Reachable and reconciled: it takes sessions (unless drained). Probed on an interval.',
          tags: ['reachable'],
          initial: 'waiting',
          states: {
            waiting: {
              description: 'Until the next probe.',
              after: { probeInterval: 'probing' },
            },
            probing: {
              description:
                'A cheap podman call with a deadline. A failure marks the host down: it gets no new sessions, and its sessions wait for it.',
              invoke: {
                src: 'probe',
                input: ({ context }) => ({ host: context.name }),
                onDone: {
                  target: 'waiting',
                  actions: { type: 'probed', params: ({ event }) => event.output },
                },
                onError: {
                  target: '#host.connection.away',
                  actions: [
                    { type: 'probeFailed', params: ({ event }) => ({ error: event.error }) },
                    { type: 'markDown', params: ({ event }) => messageOf(event.error) },
                    'notifyDown',
                  ],
                },
              },
            },
          },
        },
        away: {
          description:
            'Not in order since it went down: unreachable, or answering again and being reconciled. Entered once per outage: a reconciliation that fails sends it back to `down` inside, so the grace period counts from when it went down and does not start over.',
          type: 'parallel',
          states: {
            link: {
              description: 'Whether it answers, and whether its reconciliation went through.',
              initial: 'down',
              states: {
                down: {
                  description:
                    "Unreachable, or its reconciliation failed: no new sessions. Its running sessions' containers run on; they are re-attached when it comes back, or settled `abandoned` after daemon.host_down_grace.",
                  tags: ['down'],
                  initial: 'waiting',
                  states: {
                    waiting: {
                      description: 'Until the next try.',
                      after: { probeInterval: 'retrying' },
                    },
                    retrying: {
                      description:
                        'Probe it again; once it answers, it is reconciled before it takes sessions.',
                      invoke: {
                        src: 'probe',
                        input: ({ context }) => ({ host: context.name }),
                        onDone: {
                          target: '#host.connection.away.link.reconciling',
                          actions: { type: 'probed', params: ({ event }) => event.output },
                        },
                        onError: {
                          target: 'waiting',
                          actions: { type: 'probeFailed', params: ({ event }) => ({ error: event.error }) },
                        },
                      },
                    },
                  },
                },
                reconciling: {
                  description:
                    'Reachable again: remove what this instance left on it (dead containers, orphan secrets) and recover its sessions nobody supervises (adopt the running and those whose log says what ran, settle the rest) before it takes new ones. A failure (a malformed answer, an object that cannot be removed) leaves it down, retried every probe interval.',
                  tags: ['settling'],
                  invoke: {
                    src: 'reconcileHost',
                    input: ({ context }) => ({ host: context.name }),
                    onDone: {
                      target: '#host.connection.up',
                      actions: [
                        { type: 'markUp', params: ({ event }) => event.output.summary },
                        { type: 'notifyUp', params: ({ event }) => event.output },
                      ],
                    },
                    onError: {
                      target: 'down',
                      actions: [
                        { type: 'probeFailed', params: ({ event }) => ({ error: event.error }) },
                        {
                          type: 'markDown',
                          params: ({ event }) => `reconciliation failed: ${messageOf(event.error)}`,
                        },
                        'notifyDown',
                      ],
                    },
                  },
                },
              },
            },
            grace: {
              description:
                'daemon.host_down_grace, counted from when the host went down (this outage), however often it is retried or fails to reconcile.',
              initial: 'counting',
              states: {
                counting: {
                  description:
                    "The sessions of an earlier run waiting for the host still wait; none do when this outage's grace ended before this actor started (it replaces one that failed): they were abandoned then.",
                  always: { guard: 'lostBefore', target: 'lost' },
                  after: { downGrace: 'expired' },
                },
                expired: {
                  description:
                    'The grace is over: what waited for the host is abandoned (`host.lost`) at once, or, while a reconciliation runs, when it fails (one that succeeds recovers those sessions itself).',
                  always: {
                    guard: not('reconciling'),
                    target: 'lost',
                    actions: 'notifyLost',
                  },
                },
                lost: {
                  description:
                    'What waited for it was abandoned; when it answers again it is reconciled, and what is left of those sessions removed.',
                },
              },
            },
          },
        },
      },
    },
    admission: {
      description: 'Whether the operator lets new sessions be placed here (`agentd hosts drain NAME`).',
      initial: 'open',
      states: {
        open: {
          description: 'New sessions may be placed here.',
          on: { drain: { target: 'drained', actions: { type: 'notifyAdmission', params: false } } },
        },
        drained: {
          description: 'No new sessions; running ones finish.',
          tags: ['drained'],
          on: { undrain: { target: 'open', actions: { type: 'notifyAdmission', params: true } } },
        },
      },
    },
  },
});

export type HostRef = ActorRefFrom<typeof hostMachine>;
export type HostSnapshot = SnapshotFrom<typeof hostMachine>;

/** How `agentd hosts` names the state of a host; `failed`: its actor failed (see hostFailure). */
export type HostState = 'up' | 'down' | 'reconciling' | 'failed';

export function hostStateOf(snapshot: HostSnapshot): HostState {
  if (snapshot.status === 'error') return 'failed';
  if (snapshot.hasTag('reachable')) return 'up';
  if (snapshot.hasTag('settling')) return 'reconciling';
  return 'down';
}

/**
 * The host takes new sessions: its actor runs (one that failed keeps the tags of the state it failed
 * in), and it is reachable, reconciled and not drained.
 */
export function hostAccepts(snapshot: HostSnapshot): boolean {
  return snapshot.status === 'active' && snapshot.hasTag('reachable') && !snapshot.hasTag('drained');
}

/**
 * Why the host's actor failed (an exception in one of its actions), said to the operator with what it
 * means and what to do; undefined while it runs.
 */
export function hostFailure(
  snapshot: HostSnapshot,
  /** What comes of it (its retry), as the daemon machine says it (retryNote). */
  then = '`agentd reload` (or a restart) probes and reconciles it again',
): string | undefined {
  if (snapshot.status !== 'error') return undefined;
  const { error } = snapshot;
  return `the daemon's supervision of this host failed: ${messageOf(error)}; no new sessions go there, its running sessions go on: ${then}`;
}
