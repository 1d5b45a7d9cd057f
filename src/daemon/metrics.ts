import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { PodmanCall } from '../adapters/podman-observed.js';
import type { ReconcileResult } from '../machines/daemon.machine.js';
import type { SessionRecord } from '../sessions/records.js';
import type { BusEvent } from '../sessions/session-bus.js';
import type {
  DroppedReason,
  FiringResult,
  MetricsRecorder,
  NotificationResult,
  RecoveredHow,
} from './metrics-recorder.js';

export type { DroppedReason, FiringResult } from './metrics-recorder.js';

/**
 * The daemon's Prometheus metrics (docs/metrics.md lists every name and label). They are fed from the
 * places where things already pass through one point: the session bus (phases, output, outcomes), the
 * daemon machine's answers (accepted, rejected), the observed PodmanPort, reconciliation and the
 * schedule, notification and HTTP hooks; the gauges read the daemon machine's state when scraped.
 */

/** What the gauges show, read from the daemon machine at each scrape. */
export interface DaemonGauges {
  ready: boolean;
  running: number;
  queued: number;
  maxSessions: number;
  /** Each schedule: its next firing, or `failed` (why) when its supervision failed. */
  schedules: { agent: string; next?: string; failed?: string }[];
  /** The hosts whose supervision failed (they take no new sessions until a reload). */
  failedHosts?: string[];
  /**
   * Outcome notifications not taken yet, each with its entry in the notification outbox: under way (a
   * POST, or a wait between attempts), waiting their turn, or left in the outbox until there is room.
   */
  notifications?: { underWay: number; waiting: number; deferred: number };
  /** Finished sessions whose record waits to be sealed, and how long ago the oldest of them ended. */
  unsealed?: { count: number; oldestSeconds: number };
}

export interface MetricsSources {
  gauges(): DaemonGauges;
  /** The agent of a queued or running session; undefined once it is gone. */
  agentOf(sessionId: string): string | undefined;
}

const SESSION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600];
const PHASE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600];
const CALL_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class DaemonMetrics implements MetricsRecorder {
  readonly registry = new Registry();
  /** Sessions seen on the bus, by id: output is counted per agent without a lookup per line. */
  private readonly agents = new Map<string, string>();

  private readonly hostRestarts = this.counter(
    'agentd_host_restarts_total',
    'Host actors started again after their supervision failed, by the backoff (host.restarted; a reload is not counted).',
    ['host'],
  );
  private readonly scheduleRestarts = this.counter(
    'agentd_schedule_restarts_total',
    'Schedules started again after their supervision failed, by the backoff (schedule.restarted; a reload is not counted).',
    ['agent'],
  );
  private readonly accepted = this.counter(
    'agentd_sessions_accepted_total',
    'Triggers accepted as sessions (recorded, then queued or started).',
    ['agent'],
  );
  private readonly rejected = this.counter(
    'agentd_triggers_rejected_total',
    'Triggers turned away, by rejection code.',
    ['code'],
  );
  private readonly started = this.counter(
    'agentd_sessions_started_total',
    'Sessions that left the queue and began (resolving their credentials).',
    ['agent'],
  );
  private readonly finished = this.counter(
    'agentd_sessions_finished_total',
    'Sessions that ended, by outcome (also those cancelled while queued and those settled by crash recovery).',
    ['agent', 'outcome'],
  );
  private readonly duration = new Histogram({
    name: 'agentd_session_duration_seconds',
    help: 'From leaving the queue to the outcome, of sessions that left the queue.',
    labelNames: ['agent', 'outcome'],
    buckets: SESSION_BUCKETS,
    registers: [this.registry],
  });
  private readonly phase = new Histogram({
    name: 'agentd_session_phase_duration_seconds',
    help: 'Time spent in each phase (queued, resolving, creating, cloning, running, tearing_down), from the session record.',
    labelNames: ['agent', 'phase'],
    buckets: PHASE_BUCKETS,
    registers: [this.registry],
  });
  private readonly outputBytes = this.counter(
    'agentd_session_output_bytes_total',
    'Bytes of session output (masked lines, without line ends) delivered to the log and followers.',
    ['agent'],
  );
  private readonly droppedLines = this.counter(
    'agentd_session_output_dropped_lines_total',
    'Output lines not kept: withheld (masking impossible) or log_full (state dir full; followers still got them).',
    ['agent', 'reason'],
  );
  private readonly podmanCalls = this.counter(
    'agentd_podman_calls_total',
    'Podman operations, by PodmanPort method and host.',
    ['operation', 'host'],
  );
  private readonly podmanErrors = this.counter(
    'agentd_podman_call_errors_total',
    'Podman operations that failed, by method, host and error code (ABORTED: cut short by agentd).',
    ['operation', 'host', 'code'],
  );
  private readonly podmanLatency = new Histogram({
    name: 'agentd_podman_call_duration_seconds',
    help: 'Duration of podman operations (not attached runs and log follows, which last as long as their container).',
    labelNames: ['operation', 'host'],
    buckets: CALL_BUCKETS,
    registers: [this.registry],
  });
  private readonly reconcileRemoved = this.counter(
    'agentd_reconcile_removed_total',
    'Podman objects an earlier run left that reconciliation at start removed.',
    ['object'],
  );
  private readonly recoveredSessions = this.counter(
    'agentd_recovered_sessions_total',
    'Sessions of an earlier daemon recovered at start (or by a host down at start, once back): requeued, adopted (container still running) or settled.',
    ['how'],
  );
  private readonly firings = this.counter(
    'agentd_schedule_firings_total',
    'Schedule firings: triggered a session, skipped (overlap), missed (daemon degraded) or rejected.',
    ['agent', 'result'],
  );
  private readonly notifications = this.counter(
    'agentd_notifications_total',
    'Outcome notifications: delivered, failed (all attempts failed, or a 4xx answer ended it), deferred (too many waiting: left in the outbox until there is room) or dropped (too many waiting, and left: not sent).',
    ['result'],
  );
  private readonly notificationAttempts = this.counter(
    'agentd_notification_attempts_total',
    'POSTs of outcome notifications, by result (ok, or the failure: http_4xx, http_5xx, redirect, timeout, network, secret).',
    ['result'],
  );
  private readonly httpRequests = this.counter(
    'agentd_http_requests_total',
    'HTTP API requests, by method, route pattern and status.',
    ['method', 'route', 'status'],
  );

  constructor(private readonly sources: MetricsSources) {
    // process_resident_memory_bytes and the other process and Node.js runtime metrics.
    collectDefaultMetrics({ register: this.registry });
    const gauge = (name: string, help: string, read: (g: DaemonGauges) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read(sources.gauges()));
        },
      });
    gauge('agentd_ready', '1 while the daemon accepts triggers (ready), 0 otherwise.', (g) =>
      g.ready ? 1 : 0,
    );
    gauge('agentd_sessions_running', 'Sessions running now.', (g) => g.running);
    gauge('agentd_queue_depth', 'Accepted sessions waiting for a slot.', (g) => g.queued);
    gauge('agentd_max_sessions', 'The max_sessions in force.', (g) => g.maxSessions);
    new Gauge({
      name: 'agentd_schedule_next_firing_timestamp_seconds',
      help: "The next firing of each agent's schedule, in seconds since the epoch.",
      labelNames: ['agent'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { agent, next } of sources.gauges().schedules) {
          if (next !== undefined) this.set({ agent }, Date.parse(next) / 1000);
        }
      },
    });
    new Gauge({
      name: 'agentd_schedule_failed',
      help: "1 for each agent's schedule whose supervision failed: it fires no more until it is started again after its backoff, or by a reload or a restart.",
      labelNames: ['agent'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { agent, failed } of sources.gauges().schedules) {
          if (failed !== undefined) this.set({ agent }, 1);
        }
      },
    });
    new Gauge({
      name: 'agentd_notifications_held',
      help: 'Outcome notifications not taken yet (each kept in the notification outbox): under_way, waiting their turn, or deferred (left in the outbox until there is room; past 4096 of those, more are dropped).',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const held = sources.gauges().notifications ?? { underWay: 0, waiting: 0, deferred: 0 };
        this.set({ state: 'under_way' }, held.underWay);
        this.set({ state: 'waiting' }, held.waiting);
        this.set({ state: 'deferred' }, held.deferred);
      },
    });
    new Gauge({
      name: 'agentd_records_unsealed',
      help: 'Finished sessions whose sealed record waits for room (their output and log held in the state dir until it is sealed; session.record_unsealed says why).',
      registers: [this.registry],
      collect() {
        this.set(sources.gauges().unsealed?.count ?? 0);
      },
    });
    new Gauge({
      name: 'agentd_records_unsealed_oldest_seconds',
      help: 'How long ago the oldest session whose record waits to be sealed ended; 0 when none waits.',
      registers: [this.registry],
      collect() {
        this.set(sources.gauges().unsealed?.oldestSeconds ?? 0);
      },
    });
    new Gauge({
      name: 'agentd_host_failed',
      help: '1 for each host whose supervision failed: it takes no new sessions until it is started again after its backoff (and reconciled), or by a reload or a restart.',
      labelNames: ['host'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const host of sources.gauges().failedHosts ?? []) this.set({ host }, 1);
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The metrics in Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** A session's phase, output or outcome as the session bus publishes it. */
  session(event: BusEvent): void {
    if (event.type === 'phase') {
      if (event.phase === 'resolving') this.started.inc({ agent: this.agentOf(event.sessionId) });
    } else if (event.type === 'output') {
      let bytes = event.bytes;
      if (bytes === undefined) {
        bytes = 0;
        for (const line of event.lines) bytes += Buffer.byteLength(line.text);
      }
      this.outputBytes.inc({ agent: this.agentOf(event.sessionId) }, bytes);
    } else {
      this.agents.delete(event.sessionId);
      this.outcome(event.record);
    }
  }

  acceptedSession(sessionId: string): void {
    this.accepted.inc({ agent: this.agentOf(sessionId) });
  }

  rejectedTrigger(code: string): void {
    this.rejected.inc({ code });
  }

  droppedOutput(sessionId: string, lines: number, reason: DroppedReason): void {
    this.droppedLines.inc({ agent: this.agentOf(sessionId), reason }, lines);
  }

  /** One call to the Podman of `host` (a name under `hosts:`; `local` without them). */
  podmanCall(call: PodmanCall, host: string): void {
    const labels = { operation: call.operation, host };
    this.podmanCalls.inc(labels);
    if (call.error !== undefined) this.podmanErrors.inc({ ...labels, code: call.error });
    if (!call.streaming) this.podmanLatency.observe(labels, call.durationMs / 1000);
  }

  reconciled({ summary, recovery }: ReconcileResult): void {
    this.reconcileRemoved.inc({ object: 'container' }, summary.removedContainers);
    this.reconcileRemoved.inc({ object: 'secret' }, summary.removedSecrets);
    this.recovered('requeued', recovery.queued.length);
    this.recovered('adopted', recovery.adopted.length);
    this.recovered('settled', recovery.finished.length);
  }

  recovered(how: RecoveredHow, count: number): void {
    this.recoveredSessions.inc({ how }, count);
  }

  restarted(kind: 'host' | 'schedule', name: string): void {
    if (kind === 'host') this.hostRestarts.inc({ host: name });
    else this.scheduleRestarts.inc({ agent: name });
  }

  firing(agent: string, result: FiringResult): void {
    this.firings.inc({ agent, result });
  }

  notification(result: NotificationResult): void {
    this.notifications.inc({ result });
  }

  notificationAttempt(result: string): void {
    this.notificationAttempts.inc({ result });
  }

  httpRequest(method: string, route: string, status: number): void {
    this.httpRequests.inc({ method, route, status: String(status) });
  }

  private outcome(record: SessionRecord): void {
    const { agent } = record;
    this.finished.inc({ agent, outcome: record.outcome ?? 'unknown' });
    // A negative duration (recorded by an earlier version across a clock set back) is no observation.
    if (record.startedAt !== undefined && record.durationMs !== undefined && record.durationMs >= 0) {
      this.duration.observe({ agent, outcome: record.outcome ?? 'unknown' }, record.durationMs / 1000);
    }
    const phases = record.phases;
    for (let i = 0; i + 1 < phases.length; i++) {
      const from = phases[i] as { phase: string; at: string };
      const to = phases[i + 1] as { phase: string; at: string };
      const seconds = (Date.parse(to.at) - Date.parse(from.at)) / 1000;
      if (seconds >= 0) this.phase.observe({ agent, phase: from.phase }, seconds);
    }
  }

  private agentOf(sessionId: string): string {
    let agent = this.agents.get(sessionId);
    if (agent === undefined) {
      agent = this.sources.agentOf(sessionId) ?? 'unknown';
      if (agent !== 'unknown') this.agents.set(sessionId, agent);
    }
    return agent;
  }

  private counter(name: string, help: string, labelNames: string[]): Counter {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }
}
