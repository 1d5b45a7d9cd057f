import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { observePodman, type PodmanCall } from '../../src/adapters/podman-observed.js';
import { type DaemonGauges, DaemonMetrics } from '../../src/daemon/metrics.js';
import { unsealedGauge } from '../../src/daemon/metrics-recorder.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import { FakePodman } from '../helpers/fake-podman.js';
import { RECONCILED, sessionInput } from '../helpers/machine-fakes.js';

const GAUGES: DaemonGauges = {
  ready: true,
  running: 2,
  queued: 3,
  maxSessions: 4,
  schedules: [{ agent: 'nightly', next: '2026-06-02T01:00:00.000Z' }],
};

function metrics(gauges = GAUGES, agents: Record<string, string> = { s1: 'demo', s2: 'demo' }) {
  return new DaemonMetrics({ gauges: () => gauges, agentOf: (id) => agents[id] });
}

/** The value of one sample line, e.g. `agentd_queue_depth 3`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function record(id: string, outcome: SessionRecord['outcome'], phases: [string, number][]): SessionRecord {
  const at = (s: number) => new Date(Date.UTC(2026, 5, 1, 10, 0, s)).toISOString();
  const started = phases.find(([p]) => p !== 'queued' && p !== 'finished');
  return {
    version: 1,
    id,
    agent: 'demo',
    repo: 'https://git.example/demo.git',
    acceptedAt: at(0),
    ...(started ? { startedAt: at(started[1]) } : {}),
    finishedAt: at(phases.at(-1)?.[1] ?? 0),
    phase: 'finished',
    phases: phases.map(([phase, s]) => ({ phase, at: at(s) })) as SessionRecord['phases'],
    outcome,
    durationMs: ((phases.at(-1)?.[1] ?? 0) - (started?.[1] ?? 0)) * 1000,
  };
}

describe('metrics', () => {
  it('counts sessions by agent and outcome, their duration and each phase, from the session bus', async () => {
    const m = metrics();
    m.acceptedSession('s1');
    m.acceptedSession('s2');
    m.rejectedTrigger('unknown_agent');
    m.session({ type: 'phase', sessionId: 's1', agent: 'demo', phase: 'resolving' });
    const line = (seq: number, text: string) => ({ seq, time: '', stream: 'stdout' as const, text });
    m.session({ type: 'output', sessionId: 's1', lines: [line(1, 'héllo')] });
    m.session({ type: 'output', sessionId: 's1', lines: [line(2, 'x'.repeat(100))] });
    m.droppedOutput('s1', 2, 'withheld');
    m.session({
      type: 'outcome',
      sessionId: 's1',
      record: record('s1', 'succeeded', [
        ['queued', 0],
        ['resolving', 2],
        ['creating', 3],
        ['cloning', 4],
        ['running', 5],
        ['tearing_down', 65],
        ['finished', 66],
      ]),
    });
    // Cancelled while queued: counted as finished, with no duration (it never left the queue).
    m.session({
      type: 'outcome',
      sessionId: 's2',
      record: record('s2', 'cancelled', [
        ['queued', 0],
        ['finished', 9],
      ]),
    });
    const text = await m.text();
    expect(sample(text, 'agentd_sessions_accepted_total{agent="demo"}')).toBe(2);
    expect(sample(text, 'agentd_triggers_rejected_total{code="unknown_agent"}')).toBe(1);
    expect(sample(text, 'agentd_sessions_started_total{agent="demo"}')).toBe(1);
    expect(sample(text, 'agentd_sessions_finished_total{agent="demo",outcome="succeeded"}')).toBe(1);
    expect(sample(text, 'agentd_sessions_finished_total{agent="demo",outcome="cancelled"}')).toBe(1);
    expect(sample(text, 'agentd_session_duration_seconds_count{agent="demo",outcome="succeeded"}')).toBe(1);
    expect(sample(text, 'agentd_session_duration_seconds_sum{agent="demo",outcome="succeeded"}')).toBe(64);
    expect(
      sample(text, 'agentd_session_duration_seconds_count{agent="demo",outcome="cancelled"}'),
    ).toBeUndefined();
    expect(sample(text, 'agentd_session_phase_duration_seconds_sum{agent="demo",phase="running"}')).toBe(60);
    expect(sample(text, 'agentd_session_phase_duration_seconds_sum{agent="demo",phase="queued"}')).toBe(11);
    expect(sample(text, 'agentd_session_phase_duration_seconds_count{agent="demo",phase="queued"}')).toBe(2);
    expect(sample(text, 'agentd_session_output_bytes_total{agent="demo"}')).toBe(106);
    expect(sample(text, 'agentd_session_output_dropped_lines_total{agent="demo",reason="withheld"}')).toBe(2);
  });

  it('observes no negative session duration (an older record, measured across a clock set back)', async () => {
    const m = metrics();
    m.acceptedSession('s1');
    m.session({
      type: 'outcome',
      sessionId: 's1',
      record: {
        ...record('s1', 'succeeded', [
          ['queued', 0],
          ['resolving', 2],
          ['finished', 9],
        ]),
        durationMs: -6_900_000,
      },
    });
    const text = await m.text();
    expect(sample(text, 'agentd_sessions_finished_total{agent="demo",outcome="succeeded"}')).toBe(1);
    expect(
      sample(text, 'agentd_session_duration_seconds_count{agent="demo",outcome="succeeded"}'),
    ).toBeUndefined();
  });

  it('reads its gauges from the daemon at each scrape, and has the process RSS', async () => {
    const gauges = { ...GAUGES };
    const m = metrics(gauges);
    let text = await m.text();
    expect(sample(text, 'agentd_ready')).toBe(1);
    expect(sample(text, 'agentd_sessions_running')).toBe(2);
    expect(sample(text, 'agentd_queue_depth')).toBe(3);
    expect(sample(text, 'agentd_max_sessions')).toBe(4);
    expect(sample(text, 'agentd_schedule_next_firing_timestamp_seconds{agent="nightly"}')).toBe(1780362000);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(10_000_000);
    Object.assign(gauges, { ready: false, queued: 0, schedules: [] });
    text = await m.text();
    expect(sample(text, 'agentd_ready')).toBe(0);
    expect(sample(text, 'agentd_queue_depth')).toBe(0);
    expect(text).not.toContain('agentd_schedule_next_firing_timestamp_seconds{');
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('counts a schedule and a host whose supervision failed, and forgets them once they run again', async () => {
    const gauges: DaemonGauges = {
      ...GAUGES,
      schedules: [
        { agent: 'nightly', failed: 'the schedule failed ...' },
        { agent: 'hourly', next: GAUGES.schedules[0]?.next as string },
      ],
      failedHosts: ['build2'],
    };
    const m = metrics(gauges);
    let text = await m.text();
    expect(sample(text, 'agentd_schedule_failed{agent="nightly"}')).toBe(1);
    expect(text).not.toContain('agentd_schedule_failed{agent="hourly"}');
    expect(text).not.toContain('agentd_schedule_next_firing_timestamp_seconds{agent="nightly"}');
    expect(sample(text, 'agentd_host_failed{host="build2"}')).toBe(1);
    Object.assign(gauges, { schedules: GAUGES.schedules, failedHosts: [] });
    text = await m.text();
    expect(text).not.toContain('agentd_schedule_failed{');
    expect(text).not.toContain('agentd_host_failed{');
  });

  it('shows the notifications held (under way, waiting, deferred), zero before the notifier exists', async () => {
    const gauges: DaemonGauges = { ...GAUGES };
    const m = metrics(gauges);
    let text = await m.text();
    for (const state of ['under_way', 'waiting', 'deferred'])
      expect(sample(text, `agentd_notifications_held{state="${state}"}`)).toBe(0);
    Object.assign(gauges, { notifications: { underWay: 64, waiting: 10_000, deferred: 17 } });
    text = await m.text();
    expect(sample(text, 'agentd_notifications_held{state="under_way"}')).toBe(64);
    expect(sample(text, 'agentd_notifications_held{state="waiting"}')).toBe(10_000);
    expect(sample(text, 'agentd_notifications_held{state="deferred"}')).toBe(17);
  });

  it('shows the records waiting to be sealed and how long ago the oldest ended, zero when none', async () => {
    const gauges: DaemonGauges = { ...GAUGES };
    const m = metrics(gauges);
    let text = await m.text();
    expect(sample(text, 'agentd_records_unsealed')).toBe(0);
    expect(sample(text, 'agentd_records_unsealed_oldest_seconds')).toBe(0);
    const now = Date.parse('2026-12-07T10:00:00Z');
    Object.assign(gauges, {
      unsealed: unsealedGauge({ count: 3, oldest: { finishedAt: '2026-12-07T09:58:00Z' } }, now),
    });
    text = await m.text();
    expect(sample(text, 'agentd_records_unsealed')).toBe(3);
    expect(sample(text, 'agentd_records_unsealed_oldest_seconds')).toBe(120);
    // A clock set back: never negative.
    expect(
      unsealedGauge({ count: 1, oldest: { finishedAt: '2026-12-07T10:05:00Z' } }, now).oldestSeconds,
    ).toBe(0);
  });

  it('counts reconciliation, schedule firings, notifications and HTTP requests', async () => {
    const m = metrics();
    m.reconciled({
      ...RECONCILED,
      recovery: { queued: [sessionInput('q1')], adopted: [], finished: [] },
    });
    m.firing('nightly', 'triggered');
    m.firing('nightly', 'skipped');
    m.firing('nightly', 'skipped');
    m.notification('delivered');
    m.notificationAttempt('http_5xx');
    m.httpRequest('GET', '/v1/sessions/:id', 200);
    const text = await m.text();
    expect(sample(text, 'agentd_reconcile_removed_total{object="container"}')).toBe(1);
    expect(sample(text, 'agentd_reconcile_removed_total{object="secret"}')).toBe(2);
    expect(sample(text, 'agentd_recovered_sessions_total{how="requeued"}')).toBe(1);
    expect(sample(text, 'agentd_schedule_firings_total{agent="nightly",result="skipped"}')).toBe(2);
    expect(sample(text, 'agentd_notifications_total{result="delivered"}')).toBe(1);
    expect(sample(text, 'agentd_notification_attempts_total{result="http_5xx"}')).toBe(1);
    expect(
      sample(text, 'agentd_http_requests_total{method="GET",route="/v1/sessions/:id",status="200"}'),
    ).toBe(1);
  });
});

describe('observePodman', () => {
  it('tells of every call: its operation, duration and error code; aborted ones as ABORTED', async () => {
    const fake = new FakePodman();
    const calls: PodmanCall[] = [];
    const port = observePodman(fake, (call) => calls.push(call));
    const removed = port.removeSecrets(['a', 'b']);
    fake.pending('removeSecrets')?.succeed();
    await removed;
    const failed = port.removeContainers(['c']);
    fake.pending('removeContainers')?.fail('no such container');
    await expect(failed).rejects.toThrow('no such container');
    const controller = new AbortController();
    const stopped = port.stopContainer('c', 1, controller.signal);
    controller.abort();
    await expect(stopped).rejects.toThrow();
    expect(calls).toEqual([
      { operation: 'removeSecrets', durationMs: expect.any(Number), streaming: false },
      {
        operation: 'removeContainers',
        durationMs: expect.any(Number),
        streaming: false,
        error: 'PODMAN_FAILED',
      },
      { operation: 'stopContainer', durationMs: expect.any(Number), streaming: false, error: 'ABORTED' },
    ]);
    const m = metrics();
    for (const call of calls) m.podmanCall(call, 'local');
    const text = await m.text();
    expect(sample(text, 'agentd_podman_calls_total{operation="removeContainers",host="local"}')).toBe(1);
    expect(
      sample(
        text,
        'agentd_podman_call_errors_total{operation="removeContainers",host="local",code="PODMAN_FAILED"}',
      ),
    ).toBe(1);
    expect(
      sample(text, 'agentd_podman_call_duration_seconds_count{operation="stopContainer",host="local"}'),
    ).toBe(1);
  });

  it('counts an attached run when its container exits, without timing it', async () => {
    const fake = new FakePodman();
    const calls: PodmanCall[] = [];
    const port = observePodman(fake, (call) => calls.push(call));
    const run = port.startAttached('c1', () => {});
    expect(calls).toEqual([]);
    fake.stream()?.exit(0);
    await run.exitCode;
    expect(calls).toEqual([{ operation: 'startAttached', durationMs: expect.any(Number), streaming: true }]);
  });
});

describe('docs/metrics.md', () => {
  it('lists every metric agentd defines, and no other', async () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'metrics.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/^\| `(agentd_[a-z_]+)` \|/gm)].map((m) => m[1]));
    const defined = (await metrics().registry.getMetricsAsJSON())
      .map((m) => m.name)
      .filter((name) => name.startsWith('agentd_'));
    expect([...documented].sort()).toEqual([...new Set(defined)].sort());
  });

  it('gives each metric the type and the labels it has', async () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'metrics.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| `(agentd_[a-z_]+)` \| ([a-z]+) \| ([^|]*) \|/gm)];
    expect(rows.length).toBeGreaterThan(20);
    const registry = metrics().registry;
    for (const [, name, type, labels] of rows) {
      const metric = registry.getSingleMetric(name as string) as
        | { type?: string; labelNames?: readonly string[] }
        | undefined;
      expect({ name, type: metric?.type, labels: [...(metric?.labelNames ?? [])].sort() }).toEqual({
        name,
        type,
        labels: [...(labels as string).matchAll(/`([a-z_]+)`/g)].map((m) => m[1]).sort(),
      });
    }
  });
});

describe('agentd_notification_attempts_total', () => {
  it('names in its HELP every result docs/metrics.md lists for it', async () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'metrics.md'), 'utf8');
    const row = doc.split('\n').find((l) => l.startsWith('| `agentd_notification_attempts_total` |')) ?? '';
    const what = row.split('|')[4] ?? '';
    // The results are the backquoted words before the first parenthesis (which explains one of them).
    const results = [...(what.split('(')[0] ?? '').matchAll(/`([a-z_0-9]+)`/g)].map((m) => m[1] as string);
    expect(results).toContain('redirect');
    const help =
      (await metrics().registry.getMetricsAsJSON()).find(
        (m) => m.name === 'agentd_notification_attempts_total',
      )?.help ?? '';
    for (const result of results) expect(help).toMatch(new RegExp(`\\b${result}\\b`));
  });
});
