import { describe, expect, it, vi } from 'vitest';
import { type Actor, createActor, createMachine, fromPromise } from 'xstate';
import type { AgentConfig } from '../../src/config/types.js';
import type {
  ClientEvent,
  DaemonEmitted,
  DaemonInput,
  daemonMachine,
  HostInfo,
  ReconcileResult,
} from '../../src/machines/daemon.machine.js';
import {
  type HostContext,
  type HostNotice,
  type HostReconciled,
  type HostRef,
  type HostSnapshot,
  hostMachine,
  hostStateOf,
} from '../../src/machines/host.machine.js';
import {
  AGENTS,
  type FakeOptions,
  Fakes,
  RECONCILED,
  request,
  sessionInput,
  settle,
} from '../helpers/machine-fakes.js';

/**
 * The daemon machine over several hosts: placement (most free slots, stable ties, per-host and global
 * limits, FIFO), hosts that are down or drained, and hosts that come back.
 */

const DEMO = AGENTS[0] as AgentConfig;
const PINNED: AgentConfig = { ...DEMO, name: 'pinned', hosts: ['c'] };
const GPU: AgentConfig = { ...DEMO, name: 'gpu', hostLabels: { gpu: 'yes' } };

const HOSTS: HostInfo[] = [
  { name: 'a', maxSessions: 2, labels: {} },
  { name: 'b', maxSessions: 3, labels: {} },
  { name: 'c', maxSessions: 1, labels: { gpu: 'yes' } },
];

interface Daemon {
  actor: Actor<typeof daemonMachine>;
  fakes: Fakes;
  send(event: ClientEvent): DaemonEmitted[];
  trigger(sessionId: string, agent?: string): DaemonEmitted[];
  /** Running session ids with their host, in spawn order. */
  placed(): Record<string, string | undefined>;
  queued(): string[];
  hostState(name: string): string | undefined;
  /** What the host's actor holds (what `agentd hosts` shows). */
  host(name: string): HostContext | undefined;
}

async function startDaemon(
  options: FakeOptions & {
    maxSessions?: number;
    hosts?: HostInfo[];
    /** `manual`: the test settles `fakes.reconcile`. */
    reconciled?: ReconcileResult | 'manual';
    /** Hosts whose probes fail from the start, and why. */
    unreachable?: Record<string, string>;
    /** The sessions of an earlier daemon that wait for each host since the start. */
    waiting?: Record<string, string[]>;
  } & Pick<DaemonInput, 'keys' | 'keyWindowMs'> = {},
): Promise<Daemon> {
  const fakes = new Fakes({ ...options, reconcile: options.reconciled ?? RECONCILED });
  // Before the start: a probe due on a short interval must not find a host reachable that the test
  // means to be down (on a loaded machine the first one can run before the test's next line).
  for (const [host, why] of Object.entries(options.unreachable ?? {})) fakes.unreachable.set(host, why);
  for (const [host, ids] of Object.entries(options.waiting ?? {})) fakes.waiting.set(host, ids);
  const actor = createActor(fakes.daemon(), {
    input: {
      agents: [...AGENTS, PINNED, GPU],
      maxSessions: options.maxSessions ?? 10,
      hosts: options.hosts ?? HOSTS,
      ...(options.keys ? { keys: options.keys } : {}),
      ...(options.keyWindowMs ? { keyWindowMs: options.keyWindowMs } : {}),
    },
  });
  let answers: DaemonEmitted[] = [];
  actor.on('*', (event) => answers.push(event));
  actor.start();
  await settle();
  const send = (event: ClientEvent) => {
    answers = [];
    actor.send(event);
    return answers;
  };
  return {
    actor,
    fakes,
    send,
    trigger: (sessionId, agent = 'demo') => send({ type: 'trigger', sessionId, agent }),
    placed: () =>
      Object.fromEntries(
        Object.entries(actor.getSnapshot().context.sessions).map(([id, ref]) => [
          id,
          ref.getSnapshot().context.host,
        ]),
      ),
    queued: () => actor.getSnapshot().context.queue.map((s) => s.request.sessionId),
    host: (name) =>
      actor
        .getSnapshot()
        .context.hosts.find((h) => h.getSnapshot().context.name === name)
        ?.getSnapshot().context,
    hostState: (name) => {
      const ref = actor.getSnapshot().context.hosts.find((h) => h.getSnapshot().context.name === name);
      return ref === undefined ? undefined : hostStateOf(ref.getSnapshot());
    },
  };
}

/** Waits until `check` holds (hosts probe on real, short timers). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('placement over hosts', () => {
  it('spreads a burst to the host with the most free slots, ties to the first listed, within each limit', async () => {
    const d = await startDaemon();
    for (const id of ['s1', 's2', 's3', 's4', 's5', 's6', 's7']) d.trigger(id);
    expect(d.placed()).toEqual({ s1: 'b', s2: 'a', s3: 'b', s4: 'a', s5: 'b', s6: 'c' });
    // Every host is full: the seventh waits, and says so.
    expect(d.queued()).toEqual(['s7']);
    expect(d.trigger('s8')).toEqual([
      expect.objectContaining({ type: 'trigger.accepted', sessionId: 's8', queued: true, position: 2 }),
    ]);
    // A slot frees on c: the oldest waiting session takes it.
    await settle();
    d.fakes.run('s6').finish();
    await settle();
    expect(d.placed().s7).toBe('c');
    expect(d.queued()).toEqual(['s8']);
  });

  it('keeps the daemon-wide limit and the FIFO order over all hosts', async () => {
    const d = await startDaemon({ maxSessions: 3 });
    for (const id of ['s1', 's2', 's3', 's4', 's5']) d.trigger(id);
    expect(Object.keys(d.placed())).toEqual(['s1', 's2', 's3']);
    expect(d.queued()).toEqual(['s4', 's5']);
    await settle();
    d.fakes.run('s2').finish();
    await settle();
    expect(Object.keys(d.placed())).toEqual(['s1', 's3', 's4']);
    expect(d.queued()).toEqual(['s5']);
  });

  it('runs a pinned agent only on its host; it waits there without holding back the others', async () => {
    const d = await startDaemon();
    d.trigger('p1', 'pinned');
    d.trigger('p2', 'pinned');
    d.trigger('s1');
    expect(d.placed()).toEqual({ p1: 'c', s1: 'b' });
    expect(d.queued()).toEqual(['p2']);
    await settle();
    d.fakes.run('s1').finish();
    await settle();
    // A slot on b does not help p2.
    expect(d.queued()).toEqual(['p2']);
    d.fakes.run('p1').finish();
    await settle();
    expect(d.placed()).toEqual({ p2: 'c' });
  });

  it('runs an agent with host_labels only on hosts that have them', async () => {
    const d = await startDaemon();
    d.trigger('g1', 'gpu');
    d.trigger('g2', 'gpu');
    expect(d.placed()).toEqual({ g1: 'c' });
    expect(d.queued()).toEqual(['g2']);
  });
});

describe('hosts that are down', () => {
  it('starts without a host it cannot reach: the others take sessions', async () => {
    const d = await startDaemon({
      reconciled: { ...RECONCILED, down: [{ host: 'b', reason: 'connection refused' }] },
    });
    expect(d.actor.getSnapshot().value).toBe('ready');
    expect(d.hostState('b')).toBe('down');
    for (const id of ['s1', 's2', 's3', 's4']) d.trigger(id);
    expect(d.placed()).toEqual({ s1: 'a', s2: 'a', s3: 'c' });
    expect(d.queued()).toEqual(['s4']);
  });

  it('marks a host that fails its probe down: new sessions go elsewhere; it is reconciled when it answers again', async () => {
    const d = await startDaemon({ probeIntervalMs: 10 });
    d.trigger('s1');
    expect(d.placed()).toEqual({ s1: 'b' });
    d.fakes.unreachable.set('b', 'dial unix /run/podman.sock: connection refused');
    await until(() => d.hostState('b') === 'down', 'b down');
    d.trigger('s2');
    d.trigger('s3');
    expect(d.placed()).toEqual({ s1: 'b', s2: 'a', s3: 'a' });
    // Its session stays: it is not lost because the host does not answer; its runner is told.
    expect(d.fakes.run('s1').finished).toBe(false);
    expect(d.fakes.hostNotices).toEqual([{ sessionId: 's1', type: 'host.down' }]);
    const snapshot = d.actor.getSnapshot().context.hosts[1]?.getSnapshot();
    expect(snapshot?.context.problem).toMatch(/connection refused/);
    d.fakes.unreachable.delete('b');
    await until(() => d.hostState('b') === 'up', 'b up');
    expect(d.fakes.reconciledHosts).toEqual(['b']);
    expect(d.fakes.hostNotices).toEqual([
      { sessionId: 's1', type: 'host.down' },
      { sessionId: 's1', type: 'host.up' },
    ]);
    d.trigger('s4');
    expect(d.placed().s4).toBe('b');
  });

  it('adopts and settles the sessions a host that comes back reports, and starts queued sessions there', async () => {
    const d = await startDaemon({
      probeIntervalMs: 10,
      hosts: [{ name: 'a', maxSessions: 1, labels: {} }],
      reconciled: { ...RECONCILED, down: [{ host: 'a', reason: 'no route to host' }] },
      unreachable: { a: 'no route to host' },
    });
    d.trigger('q1');
    expect(d.queued()).toEqual(['q1']);
    d.fakes.hostRecovery.set('a', {
      summary: { removedContainers: 1, removedSecrets: 0, runningContainers: 1 },
      adopted: [
        { ...sessionInput('r1'), host: 'a', adopted: { container: 'agentd-x-demo-r1', phase: 'running' } },
      ],
      finished: [{ request: request('r2'), outcome: { outcome: 'failed', phase: 'running', exitCode: 3 } }],
    });
    d.fakes.unreachable.delete('a');
    await until(() => d.hostState('a') === 'up', 'a up');
    await settle();
    expect(d.fakes.reportsOf('r2')).toEqual([
      {
        sessionId: 'r2',
        outcome: { outcome: 'failed', phase: 'running', exitCode: 3 },
        via: 'reportSettled',
      },
    ]);
    // The adopted session holds a's only slot: q1 waits for it.
    expect(d.placed()).toEqual({ r1: 'a' });
    expect(d.fakes.run('r1').input.adopted).toEqual({ container: 'agentd-x-demo-r1', phase: 'running' });
    d.fakes.run('r1').finish();
    await settle();
    expect(d.placed()).toEqual({ q1: 'a' });
  });

  it('lets go of the key of a session a host that comes back settles, as of a session that ends', async () => {
    const keyWindowMs = 30_000;
    // r2 was running on `a` when the earlier daemon stopped: its record had no end, so its key stands.
    const d = await startDaemon({
      probeIntervalMs: 10,
      hosts: [{ name: 'a', maxSessions: 1, labels: {} }],
      reconciled: { ...RECONCILED, down: [{ host: 'a', reason: 'no route to host' }] },
      unreachable: { a: 'no route to host' },
      keys: [{ key: 'k', sessionId: 'r2', agent: 'demo' }],
      keyWindowMs,
    });
    const existing = {
      type: 'trigger.accepted',
      sessionId: 'r2',
      queued: false,
      position: 0,
      existing: true,
    };
    expect(d.send({ type: 'trigger', sessionId: 's1', agent: 'demo', key: 'k' })).toEqual([existing]);
    d.fakes.hostRecovery.set('a', {
      summary: { removedContainers: 1, removedSecrets: 0, runningContainers: 0 },
      adopted: [],
      finished: [{ request: request('r2'), outcome: { outcome: 'failed', phase: 'running', exitCode: 3 } }],
    });
    d.fakes.unreachable.delete('a');
    await until(() => d.hostState('a') === 'up', 'a up');
    await settle();
    expect(d.fakes.reportsOf('r2')).toHaveLength(1);
    // Only Date is faked: the machine reads the clock, the test moves it (timers stay real).
    const settledAt = Date.now();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(settledAt + keyWindowMs - 1_000);
      expect(d.send({ type: 'trigger', sessionId: 's2', agent: 'demo', key: 'k' })).toEqual([existing]);
      // Past the window the key makes a new session, as after any other end (it answered r2 for ever).
      vi.setSystemTime(settledAt + keyWindowMs + 1_000);
      expect(d.send({ type: 'trigger', sessionId: 's3', agent: 'demo', key: 'k' })).toEqual([
        { type: 'trigger.accepted', sessionId: 's3', queued: false, position: 0 },
      ]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('runs the sessions a host that comes back hands back as never started, before newer queued ones', async () => {
    const d = await startDaemon({
      probeIntervalMs: 10,
      hosts: [{ name: 'a', maxSessions: 1, labels: {} }],
      reconciled: { ...RECONCILED, down: [{ host: 'a', reason: 'no route to host' }] },
      unreachable: { a: 'no route to host' },
    });
    d.trigger('q1');
    expect(d.queued()).toEqual(['q1']);
    // The earlier daemon was killed while `podman run` made r3's container: it never started.
    d.fakes.hostRecovery.set('a', {
      summary: { removedContainers: 1, removedSecrets: 0, runningContainers: 0 },
      adopted: [],
      finished: [],
      queued: [sessionInput('r3')],
    });
    d.fakes.unreachable.delete('a');
    await until(() => d.hostState('a') === 'up', 'a up');
    await settle();
    expect(d.placed()).toEqual({ r3: 'a' });
    expect(d.fakes.run('r3').input.adopted).toBeUndefined();
    expect(d.fakes.reportsOf('r3')).toEqual([]);
    d.fakes.run('r3').finish();
    await settle();
    expect(d.placed()).toEqual({ q1: 'a' });
  });

  it('abandons what waited since the start for a host that stays down past the grace period', async () => {
    const d = await startDaemon({
      probeIntervalMs: 5,
      downGraceMs: 30,
      reconciled: { ...RECONCILED, down: [{ host: 'c', reason: 'connection refused' }] },
      unreachable: { c: 'connection refused' },
    });
    await until(() => d.fakes.abandonedHosts.length > 0, 'c abandoned');
    expect(d.fakes.abandonedHosts).toEqual(['c']);
    expect(d.hostState('c')).toBe('down');
  });

  it('lets go of the keys of what it abandoned, as of sessions that end', async () => {
    const keyWindowMs = 30_000;
    // e1 was running on c when the earlier daemon stopped: its record had no end, so its key stands.
    const d = await startDaemon({
      probeIntervalMs: 5,
      downGraceMs: 30,
      reconciled: { ...RECONCILED, down: [{ host: 'c', reason: 'connection refused' }] },
      unreachable: { c: 'connection refused' },
      waiting: { c: ['e1'] },
      keys: [{ key: 'k', sessionId: 'e1', agent: 'demo' }],
      keyWindowMs,
    });
    await until(() => d.fakes.abandonedHosts.length > 0, 'c abandoned');
    await settle();
    const abandonedAt = Date.now();
    // Only Date is faked: the machine reads the clock, the test moves it (timers stay real).
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(abandonedAt + keyWindowMs - 1_000);
      expect(d.send({ type: 'trigger', sessionId: 's1', agent: 'demo', key: 'k' })).toEqual([
        { type: 'trigger.accepted', sessionId: 'e1', queued: false, position: 0, existing: true },
      ]);
      // Past the window the key makes a new session (it answered e1 until history pruned its record).
      vi.setSystemTime(abandonedAt + keyWindowMs + 1_000);
      expect(d.send({ type: 'trigger', sessionId: 's2', agent: 'demo', key: 'k' })).toEqual([
        { type: 'trigger.accepted', sessionId: 's2', queued: false, position: 0 },
      ]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('drain and undrain', () => {
  it('places nothing new on a drained host; running sessions finish; undrain takes it back', async () => {
    const d = await startDaemon();
    d.trigger('s1');
    expect(d.placed()).toEqual({ s1: 'b' });
    expect(d.send({ type: 'drain', host: 'b', requestId: 'r' })).toEqual([
      { type: 'drain.applied', requestId: 'r', host: 'b', drained: true },
    ]);
    await settle();
    for (const id of ['s2', 's3', 's4', 's5']) d.trigger(id);
    expect(d.placed()).toEqual({ s1: 'b', s2: 'a', s3: 'a', s4: 'c' });
    expect(d.queued()).toEqual(['s5']);
    expect(d.fakes.run('s1').cancelRequested).toBe(false);
    d.send({ type: 'undrain', host: 'b' });
    await settle();
    expect(d.placed().s5).toBe('b');
  });

  it('refuses an unknown host, naming the known ones', async () => {
    const d = await startDaemon();
    expect(d.send({ type: 'drain', host: 'zz' })).toEqual([
      { type: 'drain.rejected', host: 'zz', reason: 'no host "zz"; known hosts: a, b, c' },
    ]);
  });
});

describe('reload', () => {
  it("applies a host's new max_sessions: queued sessions start in the new slots at once", async () => {
    const d = await startDaemon({ hosts: [{ name: 'a', maxSessions: 1, labels: {} }] });
    d.trigger('s1');
    d.trigger('s2');
    expect(d.queued()).toEqual(['s2']);
    // Nothing else happens after the reload: it alone starts s2, before it is answered.
    d.send({
      type: 'reload',
      agents: AGENTS,
      maxSessions: 10,
      hosts: [{ name: 'a', maxSessions: 2, labels: {} }],
    });
    expect(d.placed()).toEqual({ s1: 'a', s2: 'a' });
    expect(d.queued()).toEqual([]);
    await settle();
    expect(d.host('a')?.maxSessions).toBe(2);
  });

  it("applies a host's new labels: a session waiting for a host with them starts there at once", async () => {
    const d = await startDaemon();
    d.trigger('g1', 'gpu');
    d.trigger('g2', 'gpu');
    expect(d.placed()).toEqual({ g1: 'c' });
    expect(d.queued()).toEqual(['g2']);
    d.send({
      type: 'reload',
      agents: [...AGENTS, PINNED, GPU],
      maxSessions: 10,
      hosts: HOSTS.map((h) => (h.name === 'b' ? { ...h, labels: { gpu: 'yes' } } : h)),
    });
    expect(d.placed()).toEqual({ g1: 'c', g2: 'b' });
    await settle();
    expect(d.host('b')?.labels).toEqual({ gpu: 'yes' });
  });

  it('applies host changes a reload made while the start reconciled', async () => {
    const d = await startDaemon({ reconciled: 'manual', hosts: [{ name: 'a', maxSessions: 1, labels: {} }] });
    expect(
      d.send({
        type: 'reload',
        agents: [...AGENTS, PINNED, GPU],
        maxSessions: 10,
        hosts: [{ name: 'a', maxSessions: 2, labels: { gpu: 'yes' } }],
      }),
    ).toEqual([expect.objectContaining({ type: 'reload.applied' })]);
    d.fakes.reconcile.resolve(RECONCILED);
    await settle();
    expect(d.host('a')).toMatchObject({ maxSessions: 2, labels: { gpu: 'yes' } });
    d.trigger('s1');
    d.trigger('g1', 'gpu');
    expect(d.placed()).toEqual({ s1: 'a', g1: 'a' });
  });

  it('places a queued session where its agent may run now: a reload that moves the agent moves it', async () => {
    const d = await startDaemon();
    d.trigger('p1', 'pinned');
    d.trigger('p2', 'pinned');
    expect(d.queued()).toEqual(['p2']);
    // Host c is busy; the operator moves the agent to b (with the old host list it waits for c).
    d.send({ type: 'reload', agents: [...AGENTS, { ...PINNED, hosts: ['b'] }, GPU], maxSessions: 10 });
    await settle();
    expect(d.placed()).toEqual({ p1: 'c', p2: 'b' });
    expect(d.queued()).toEqual([]);
  });
});

describe('the host machine over an outage', () => {
  /**
   * One host actor under a parent that keeps what it says, with its probe and reconciliation as the
   * test says: `reconcile` answers each reconciliation (a rejection, or a promise the test settles).
   */
  function hostUnder(options: {
    probeIntervalMs: number;
    downGraceMs: number;
    reconcile: () => Promise<HostReconciled>;
  }) {
    const notices: HostNotice[] = [];
    const host = hostMachine.provide({
      actors: {
        probe: fromPromise(async () => ({ version: '4.3.1', ms: 1 })),
        reconcileHost: fromPromise(() => options.reconcile()),
      },
      delays: { probeInterval: options.probeIntervalMs, downGrace: options.downGraceMs },
    });
    const parent = createMachine({
      types: {} as { events: HostNotice },
      invoke: {
        id: 'host',
        src: host,
        input: { host: { name: 'b', maxSessions: 1, labels: {} }, down: 'connection refused' },
      },
      on: { '*': { actions: ({ event }) => notices.push(event) } },
    });
    const actor = createActor(parent).start();
    const child = () => actor.getSnapshot().children.host as HostRef;
    return { actor, notices, child, lost: () => notices.filter((n) => n.type === 'host.lost').length };
  }

  it('abandons what waited for a host that answers but keeps failing to reconcile, once, within the grace and a probe interval', async () => {
    // The machine's clock, not the wall's: a loaded machine delays real timers by more than the grace.
    vi.useFakeTimers();
    try {
      const h = hostUnder({
        probeIntervalMs: 10,
        downGraceMs: 150,
        reconcile: async () => {
          throw new Error('podman ps: malformed JSON');
        },
      });
      await vi.advanceTimersByTimeAsync(140);
      expect(h.lost()).toBe(0);
      expect(h.notices.filter((n) => n.type === 'host.down').length).toBeGreaterThan(1);
      // The grace counts from when it went down, not from each failed reconciliation.
      await vi.advanceTimersByTimeAsync(10 + 10 + 5);
      expect(h.lost()).toBe(1);
      expect(h.child().getSnapshot().context.problem).toMatch(
        /reconciliation failed: podman ps: malformed JSON/,
      );
      // Retried on: still down, never lost twice in one outage.
      await vi.advanceTimersByTimeAsync(100);
      expect(h.lost()).toBe(1);
      expect(hostStateOf(h.child().getSnapshot())).not.toBe('up');
      h.actor.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('does not abandon while a reconciliation runs past the grace: its failure does, its success recovers them', async () => {
    const attempts: { resolve: (r: HostReconciled) => void; reject: (e: Error) => void }[] = [];
    const h = hostUnder({
      probeIntervalMs: 5,
      downGraceMs: 40,
      reconcile: () => new Promise((resolve, reject) => attempts.push({ resolve, reject })),
    });
    await until(() => attempts.length === 1, 'a reconciliation');
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(hostStateOf(h.child().getSnapshot())).toBe('reconciling');
    expect(h.lost()).toBe(0);
    attempts[0]?.reject(new Error('cannot remove container x'));
    await until(() => h.lost() === 1, 'host.lost after the failed reconciliation');
    await until(() => attempts.length === 2, 'retried');
    attempts[1]?.resolve({
      summary: { removedContainers: 0, removedSecrets: 0, runningContainers: 0 },
      adopted: [],
      finished: [],
    });
    await until(() => hostStateOf(h.child().getSnapshot()) === 'up', 'up');
    expect(h.notices.map((n) => n.type)).toEqual(['host.down', 'host.lost', 'host.up']);
    h.actor.stop();
  });
});

describe('a shutdown while a host is reconciled after its outage', () => {
  /** One reconciliation of a host that came back: the test settles it; `signal` is its podman calls'. */
  interface Reconciliation {
    host: string;
    signal: AbortSignal;
    resolve(result: HostReconciled): void;
    reject(error: Error): void;
  }

  /**
   * The daemon over one host `a`, down at start and answering its next probe: its reconciliation waits
   * for the test, as one of a slow host (many containers to remove) does. The daemon runs `s1` on `b`.
   */
  async function reconcilingAfterOutage(options: { running?: boolean; onCancel?: 'note' } = {}) {
    const reconciliations: Reconciliation[] = [];
    const fakes = new Fakes({
      ...(options.onCancel === undefined ? {} : { onCancel: options.onCancel }),
      probeIntervalMs: 5,
      reconcile: { ...RECONCILED, down: [{ host: 'a', reason: 'no route to host' }] },
    });
    const host = fakes.host().provide({
      actors: {
        reconcileHost: fromPromise(
          ({ input, signal }) =>
            new Promise<HostReconciled>((resolve, reject) =>
              reconciliations.push({ host: input.host, signal, resolve, reject }),
            ),
        ),
      },
    });
    const actor = createActor(fakes.daemon().provide({ actors: { host } }), {
      input: {
        agents: AGENTS,
        maxSessions: 10,
        hosts: [
          { name: 'a', maxSessions: 2, labels: {} },
          { name: 'b', maxSessions: 2, labels: {} },
        ],
      },
    }).start();
    await settle();
    expect(actor.getSnapshot().value).toBe('ready');
    if (options.running) {
      // Placed on b: a is not reconciled yet.
      actor.send({ type: 'trigger', sessionId: 's1', agent: 'demo' });
      await settle();
      expect(fakes.run('s1').finished).toBe(false);
    }
    await until(() => reconciliations.length === 1, "a's reconciliation");
    const hostA = () => actor.getSnapshot().context.hosts[0]?.getSnapshot();
    expect(hostA() && hostStateOf(hostA() as NonNullable<ReturnType<typeof hostA>>)).toBe('reconciling');
    return { actor, fakes, reconciliation: reconciliations[0] as Reconciliation, reconciliations };
  }

  /** What a's reconciliation settled: a session whose exited container it removed, and one still running. */
  const SETTLED: HostReconciled = {
    summary: { removedContainers: 1, removedSecrets: 1, runningContainers: 1 },
    adopted: [
      { ...sessionInput('r1'), host: 'a', adopted: { container: 'agentd-x-demo-r1', phase: 'running' } },
    ],
    finished: [{ request: request('r2'), outcome: { outcome: 'failed', phase: 'running', exitCode: 3 } }],
  };

  it('waits for the reconciliation and records what it settled, then stops; its running session is left', async () => {
    const { actor, fakes, reconciliation } = await reconcilingAfterOutage();
    actor.send({ type: 'shutdown' });
    // Nothing runs, but the exited container's outcome is only in the reconciliation under way.
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'draining' });
    expect(reconciliation.signal.aborted).toBe(false);
    reconciliation.resolve(SETTLED);
    await settle();
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'stopped' });
    expect(fakes.reportsOf('r2')).toEqual([
      {
        sessionId: 'r2',
        outcome: { outcome: 'failed', phase: 'running', exitCode: 3 },
        via: 'reportSettled',
      },
    ]);
    // The still running container is not adopted by a daemon that stops: the next start adopts it.
    expect(fakes.started).toEqual([]);
    expect(fakes.reportsOf('r1')).toEqual([]);
    actor.stop();
  });

  it('waits for the reconciliation even when the last running session finishes first', async () => {
    const { actor, fakes, reconciliation } = await reconcilingAfterOutage({ running: true });
    actor.send({ type: 'shutdown' });
    fakes.run('s1').finish();
    await settle();
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'draining' });
    expect(reconciliation.signal.aborted).toBe(false);
    reconciliation.resolve(SETTLED);
    await settle();
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'stopped' });
    expect(fakes.reportsOf('r2')).toHaveLength(1);
    actor.stop();
  });

  it('stops once a reconciliation that fails has ended (nothing was settled)', async () => {
    const { actor, fakes, reconciliation } = await reconcilingAfterOutage();
    actor.send({ type: 'shutdown' });
    reconciliation.reject(new Error('podman rm: timed out after 30s'));
    await settle();
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'stopped' });
    expect(fakes.reports).toEqual([]);
    actor.stop();
  });

  it('stops at once on a second shutdown while only the reconciliation is waited for', async () => {
    const { actor, fakes } = await reconcilingAfterOutage();
    actor.send({ type: 'shutdown' });
    actor.send({ type: 'shutdown' });
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'stopped' });
    expect(fakes.reports).toEqual([]);
    actor.stop();
  });

  it('on a second shutdown, cancels the running sessions and cuts the reconciliation short: no wait for it', async () => {
    const { actor, fakes, reconciliation, reconciliations } = await reconcilingAfterOutage({
      running: true,
      onCancel: 'note',
    });
    actor.send({ type: 'shutdown' });
    actor.send({ type: 'shutdown' });
    await settle();
    expect(fakes.run('s1').cancelRequested).toBe(true);
    // The hosts are watched no more: the reconciliation's podman calls are aborted, none starts again.
    expect(reconciliation.signal.aborted).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(reconciliations).toHaveLength(1);
    // A third signal while the session tears down changes nothing; its end is the daemon's.
    actor.send({ type: 'shutdown' });
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'draining' });
    fakes.run('s1').finish('cancelled');
    await settle();
    expect(actor.getSnapshot().value).toEqual({ shutdown: 'stopped' });
    expect(fakes.reportsOf('s1')).toEqual([
      expect.objectContaining({ outcome: expect.objectContaining({ outcome: 'cancelled' }) }),
    ]);
    // What `agentd hosts` shows of it: the last it knew.
    expect(hostStateOf(actor.getSnapshot().context.hosts[0]?.getSnapshot() as HostSnapshot)).toBe(
      'reconciling',
    );
    actor.stop();
  });
});
