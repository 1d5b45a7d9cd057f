/**
 * A host's reconciliation (src/daemon/host-reconcile.ts) over a fake PodmanPort that fails where a real
 * host can: the outcome of a session an earlier daemon left, read from its exited container, is never
 * lost with the container. Either the container stays for the next try, or the outcome is recorded
 * before it is removed; each session gets one outcome however the try ends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { ContainerSummary, PodmanPort } from '../../src/adapters/podman.js';
import { workPaths } from '../../src/adapters/session-files.js';
import type { HostConfig } from '../../src/config/types.js';
import { LABEL_AGENT, LABEL_HOST, LABEL_INSTANCE, LABEL_SESSION } from '../../src/constants.js';
import { reconcileHost } from '../../src/daemon/host-reconcile.js';
import { abandonedWaiting } from '../../src/daemon/host-recovery.js';
import type { SettledSession } from '../../src/machines/host.machine.js';
import { containerName } from '../../src/runner/names.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import { AGENTS } from '../helpers/machine-fakes.js';

const INSTANCE = 'a1b2c3d4e5f60718';
const HOST = 'remote';
const S1 = '00000000000000a1';
const STARTED = new Date(Date.now() - 60_000).toISOString();

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A session the earlier daemon recorded running on the remote host (its log is not read there). */
function running(id: string): SessionRecord {
  return {
    version: 1,
    id,
    agent: 'demo',
    repo: 'https://git.example/demo.git',
    acceptedAt: STARTED,
    startedAt: STARTED,
    phase: 'running',
    phases: [{ phase: 'running', at: STARTED }],
    host: HOST,
  };
}

function exited(id: string, exitCode: number): ContainerSummary {
  return {
    Id: `id-${id}`,
    Names: [containerName(INSTANCE, 'demo', id)],
    State: 'exited',
    ExitCode: exitCode,
    Labels: {
      [LABEL_INSTANCE]: INSTANCE,
      [LABEL_SESSION]: id,
      [LABEL_AGENT]: 'demo',
      [LABEL_HOST]: HOST,
    },
  };
}

/** A remote host's Podman holding `containers`; `fail` says which call fails this time, and how. */
class FakeHost {
  containers: ContainerSummary[];
  fail: { listSecretNames?: Error; removeContainers?: Error } = {};
  /** Outcomes recorded, and the containers removed, in the order they happened. */
  readonly events: string[] = [];
  constructor(containers: ContainerSummary[]) {
    this.containers = containers;
  }
  port(): PodmanPort {
    return {
      remote: true,
      listContainers: async () => this.containers.map((c) => ({ ...c })),
      removeContainers: async (names: string[]) => {
        // The batch of a try's end (reconcile's own batch of dead containers may be empty).
        if (names.length === 0) return;
        const error = this.fail.removeContainers;
        this.fail.removeContainers = undefined;
        // Podman removes what it can of a batch and fails for the rest.
        for (const name of names) this.events.push(`removed ${name}`);
        this.containers = this.containers.filter((c) => !names.includes(c.Names[0] ?? ''));
        if (error) throw error;
      },
      listSecretNames: async () => {
        const error = this.fail.listSecretNames;
        this.fail.listSecretNames = undefined;
        if (error) throw error;
        return [];
      },
      secretLabels: async () => new Map(),
      removeSecrets: async () => {},
      listVolumes: async () => [],
    } as unknown as PodmanPort;
  }
}

function daemon(fake: FakeHost, records: SessionRecord[]) {
  const stateDir = mkdtempSync(join(tmpdir(), 'agentd-host-reconcile-'));
  dirs.push(stateDir);
  const waiting = new Map([[HOST, records]]);
  const recorded: SettledSession[] = [];
  const host: HostConfig = {
    name: HOST,
    maxSessions: 2,
    labels: {},
    url: 'unix:///nowhere.sock',
  } as HostConfig;
  const deps = {
    instanceId: INSTANCE,
    log: pino({ level: 'silent' }),
    ports: () => fake.port(),
    waiting,
    supervisedOn: () => new Set<string>(),
    agents: () => AGENTS,
    hosts: [host],
    // Every waiting session has its record: its id is used.
    journal: {
      used: (id: string) => records.some((r) => r.id === id),
      rebuilt: () => {},
      requeued: (id: string) => fake.events.push(`requeued ${id}`),
    },
    files: { paths: (id: string) => workPaths(stateDir, id) },
    pruneCacheImages: async () => {},
    record: async (sessions: readonly SettledSession[]) => {
      for (const s of sessions) {
        fake.events.push(`recorded ${s.request.sessionId}`);
        recorded.push(s);
      }
    },
  };
  /**
   * Every outcome the daemon gives: what the reconciliations recorded, what their results hand on that
   * they did not record, and what a host failure would abandon of what still waits (abandonWaiting).
   */
  const outcomes = (results: readonly SettledSession[]) => [
    ...recorded,
    ...results.filter((s) => !s.recorded),
    ...abandonedWaiting(waiting.get(HOST) ?? [], HOST, 600_000, 'injected: host actor failed'),
  ];
  return { deps, waiting, recorded, outcomes };
}

describe("a host's reconciliation that fails part way", () => {
  it('keeps an exited container whose outcome is not recorded yet: the next try reads it (its secrets could not be listed)', async () => {
    const fake = new FakeHost([exited(S1, 0)]);
    const { deps, outcomes } = daemon(fake, [running(S1)]);
    fake.fail.listSecretNames = new Error('unexpected EOF (the ssh connection dropped)');
    await expect(reconcileHost(deps, HOST, new AbortController().signal)).rejects.toThrow('unexpected EOF');
    // The host is down and retried: the next try finds the container and reads how the command ended.
    const again = await reconcileHost(deps, HOST, new AbortController().signal);
    const all = outcomes(again.finished);
    expect(all.map((s) => [s.request.sessionId, s.outcome.outcome, s.outcome.exitCode])).toEqual([
      [S1, 'succeeded', 0],
    ]);
    expect(fake.containers).toEqual([]);
  });

  it('records an outcome read from a container before it removes the container: a removal that fails, or a host actor that fails, loses nothing', async () => {
    const fake = new FakeHost([exited(S1, 1)]);
    const { deps, outcomes } = daemon(fake, [running(S1)]);
    const controller = new AbortController();
    fake.fail.removeContainers = new Error(
      'injected: the host actor failed while its reconciliation removed',
    );
    await expect(reconcileHost(deps, HOST, controller.signal)).rejects.toThrow('injected');
    // Nothing was handed to the daemon; the failed host's waiting sessions are abandoned: S1 is not one.
    const all = outcomes([]);
    expect(all.map((s) => [s.request.sessionId, s.outcome.outcome, s.outcome.exitCode])).toEqual([
      [S1, 'failed', 1],
    ]);
    const name = containerName(INSTANCE, 'demo', S1);
    expect(fake.events.filter((e) => e.endsWith(S1) || e.endsWith(name))).toEqual([
      `recorded ${S1}`,
      `removed ${name}`,
    ]);
    // A reload (or the next try) reconciles the host again: S1 is not settled a second time.
    const again = await reconcileHost(deps, HOST, new AbortController().signal);
    expect(outcomes(again.finished)).toHaveLength(1);
  });
});

describe("a host's reconciliation of a session whose container never started", () => {
  it('removes the container, says the record is queued again and hands the session to the queue, with no outcome', async () => {
    // The earlier daemon was killed while `podman run` had made the container and not started it yet.
    const never: ContainerSummary = {
      ...exited(S1, 0),
      State: 'created',
      StartedAt: -62135596800,
      ExitedAt: -62135596800,
    };
    const creating: SessionRecord = {
      ...running(S1),
      phase: 'creating',
      phases: [{ phase: 'creating', at: STARTED }],
    };
    const fake = new FakeHost([never]);
    const { deps, outcomes, waiting } = daemon(fake, [creating]);
    const result = await reconcileHost(deps, HOST, new AbortController().signal);
    expect(result.queued?.map((q) => q.request.sessionId)).toEqual([S1]);
    expect(outcomes(result.finished)).toEqual([]);
    const name = containerName(INSTANCE, 'demo', S1);
    // Its container (of the same name as the run's next one) is gone before the record says queued.
    expect(fake.events).toEqual([`removed ${name}`, `requeued ${S1}`]);
    expect(fake.containers).toEqual([]);
    expect(waiting.has(HOST)).toBe(false);
  });
});
