/**
 * The start's reconciliation of a pool of hosts: one host that answers its probe but then stalls (its
 * Podman's `ps` hangs on a lock) must not hold back the start, and with it every other host's sessions.
 */
import { describe, expect, it } from 'vitest';
import { reconcileAtStart, StartReconciliations } from '../../src/daemon/start-hosts.js';

/** A reconciliation that ends when the test says so. */
function pending<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The start's result, or 'stuck' when it did not come within `ms`. */
async function within<T>(ms: number, work: Promise<T>): Promise<T | 'stuck'> {
  return Promise.race([work, new Promise<'stuck'>((resolve) => setTimeout(() => resolve('stuck'), ms))]);
}

describe('reconciling the hosts at start', () => {
  it('does not wait past the bound for a host that answers but stalls: it is down, the others are up', async () => {
    const late = new StartReconciliations<string>();
    const stalled = pending<string>();
    const started = Date.now();
    const results = await within(
      2_000,
      reconcileAtStart(['fast', 'stalled'], {
        required: false,
        waitMs: 200,
        probe: async () => '4.3.1',
        reconcile: (host) => (host === 'stalled' ? stalled.promise : Promise.resolve(`${host} reconciled`)),
        late,
      }),
    );
    expect(results).not.toBe('stuck');
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(results).toEqual([
      { host: 'fast', reconciled: 'fast reconciled', version: '4.3.1' },
      {
        host: 'stalled',
        version: '4.3.1',
        down: expect.stringContaining(
          'its reconciliation was not done within 200ms (3 x daemon.host_probe_timeout)',
        ),
      },
    ]);
    // The reconciliation goes on; the host's actor takes it over, no second one beside it.
    let fresh = 0;
    const taken = late.take('stalled', async () => `${++fresh}`, new AbortController().signal);
    stalled.resolve('stalled reconciled');
    expect(await taken).toBe('stalled reconciled');
    expect(fresh).toBe(0);
    // Taken once: the next reconciliation is a fresh one.
    expect(await late.take('stalled', async () => `${++fresh}`, new AbortController().signal)).toBe('1');
  });

  it('waits for a host that reconciles in time, and reports a failure in time as the reason it is down', async () => {
    const results = await reconcileAtStart(['slowish', 'broken', 'away'], {
      required: false,
      waitMs: 1_000,
      probe: async (host) => {
        if (host === 'away') throw new Error('probe the host: cannot reach the Podman host');
        return '4.3.1';
      },
      reconcile: async (host) => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        if (host === 'broken') throw new Error('list containers failed');
        return host;
      },
      late: new StartReconciliations<string>(),
    });
    expect(results).toEqual([
      { host: 'slowish', reconciled: 'slowish', version: '4.3.1' },
      { host: 'broken', down: 'list containers failed' },
      { host: 'away', down: 'probe the host: cannot reach the Podman host' },
    ]);
  });

  it('without hosts, waits for the local Podman however long, and fails the start with it', async () => {
    const slow = pending<string>();
    const work = reconcileAtStart(['local'], {
      required: true,
      waitMs: 10,
      probe: async () => '4.3.1',
      reconcile: () => slow.promise,
      late: new StartReconciliations<string>(),
    });
    expect(await within(100, work)).toBe('stuck');
    slow.reject(new Error('podman is not installed'));
    await expect(work).rejects.toThrow('podman is not installed');
  });

  it('abandons what waits for the host only after the reconciliation it left going has ended', async () => {
    const late = new StartReconciliations<string>();
    const stalled = pending<string>();
    await late.wait('h', stalled.promise, 10);
    const settled = late.settled('h');
    expect(settled).toBeDefined();
    expect(await within(50, settled as Promise<void>)).toBe('stuck');
    stalled.resolve('recovered');
    expect(await within(50, settled as Promise<void>)).toBeUndefined();
    // None left going: nothing to wait for.
    expect(new StartReconciliations<string>().settled('h')).toBeUndefined();
  });

  it('forgets a late reconciliation that failed: the next one is fresh; an abort stops waiting for one taken over', async () => {
    const late = new StartReconciliations<string>();
    const failing = pending<string>();
    await late.wait('h', failing.promise, 10);
    failing.reject(new Error('list containers failed'));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(await late.take('h', async () => 'fresh', new AbortController().signal)).toBe('fresh');
    const stalled = pending<string>();
    await late.wait('h', stalled.promise, 10);
    const abort = new AbortController();
    const taken = late.take('h', async () => 'fresh', abort.signal);
    abort.abort(new Error('the daemon stops'));
    await expect(taken).rejects.toThrow('the daemon stops');
  });

  it("hands the daemon's end what no host's actor took over, once it has ended", async () => {
    const late = new StartReconciliations<string>();
    const [left, taken, failing] = [pending<string>(), pending<string>(), pending<string>()];
    await late.wait('left', left.promise, 10);
    await late.wait('taken', taken.promise, 10);
    await late.wait('failing', failing.promise, 10);
    void late.take('taken', async () => 'fresh', new AbortController().signal).catch(() => {});
    const untaken = late.untaken();
    expect(await within(50, untaken)).toBe('stuck');
    left.resolve('left reconciled');
    failing.reject(new Error('list containers failed'));
    taken.resolve('taken reconciled');
    expect(await untaken).toEqual(new Map([['left', 'left reconciled']]));
    expect(await late.untaken()).toEqual(new Map());
  });
});
