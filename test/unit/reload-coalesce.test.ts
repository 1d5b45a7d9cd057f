/**
 * Reloads asked for while one runs (src/daemon/reload.ts): they wait for it, and all of them are answered
 * by one reload after it, which reads the file after every one of them was asked for. A client sending
 * reloads by the thousand (or a burst of SIGHUPs) makes one more reload, not thousands.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Actor } from 'xstate';
import type { ServiceNotifier } from '../../src/adapters/sd-notify.js';
import type { Settings } from '../../src/config/types.js';
import { createReloader } from '../../src/daemon/reload.js';
import type { daemonMachine } from '../../src/machines/daemon.machine.js';

describe('reloads asked for while one runs', () => {
  it('are answered by one reload after it', async () => {
    const reads: (() => void)[] = [];
    let loads = 0;
    // Each read of the file waits until the test lets it fail (an invalid file changes nothing).
    const load = () => {
      loads++;
      return new Promise<Settings>((_, reject) => reads.push(() => reject(new Error(`read ${loads}`))));
    };
    const actor = {
      getSnapshot: () => ({
        context: { agents: [], maxSessions: 1, sessions: {}, queue: [] },
        matches: () => false,
      }),
    } as unknown as Actor<typeof daemonMachine>;
    const notify = { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier;
    const reload = createReloader({
      started: { file: '/etc/agentd/agentd.yaml' } as Settings,
      actor,
      log: pino({ level: 'silent' }),
      notify,
      load,
    });
    const first = reload('request');
    await new Promise((resolve) => setImmediate(resolve));
    expect(loads).toBe(1);
    const later = Array.from({ length: 500 }, (_, i) => reload(i % 2 === 0 ? 'request' : 'SIGHUP'));
    reads.shift()?.();
    expect(await first).toMatchObject({ type: 'reload_failed', message: expect.stringContaining('read 1') });
    await new Promise((resolve) => setImmediate(resolve));
    expect(loads).toBe(2);
    reads.shift()?.();
    const answers = await Promise.all(later);
    expect(new Set(answers.map((a) => a.message)).size).toBe(1);
    expect(answers[0]?.message).toContain('read 2');
    expect(loads).toBe(2);
    // One asked for after that runs on its own.
    const next = reload('request');
    await new Promise((resolve) => setImmediate(resolve));
    reads.shift()?.();
    expect((await next).message).toContain('read 3');
  });

  it('are logged at their level up to 100 at once and 10 a second; the rest at debug', async () => {
    const lines: { event?: string; level: number }[] = [];
    const actor = {
      getSnapshot: () => ({
        context: { agents: [], maxSessions: 1, sessions: {}, queue: [] },
        matches: () => false,
      }),
    } as unknown as Actor<typeof daemonMachine>;
    const reload = createReloader({
      started: { file: '/etc/agentd/agentd.yaml' } as Settings,
      actor,
      log: pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) }),
      notify: { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier,
      load: () => Promise.reject(new Error('not valid')),
    });
    const started = performance.now();
    // One after the other, as a client asking in a loop makes them.
    for (let i = 0; i < 300; i++) await reload('request');
    const seconds = (performance.now() - started) / 1000;
    const reloading = lines.filter((l) => l.event === 'daemon.reloading');
    const failed = lines.filter((l) => l.event === 'daemon.reload_failed');
    expect(reloading).toHaveLength(300);
    const atInfo = reloading.filter((l) => l.level === 30).length;
    expect(atInfo).toBeGreaterThanOrEqual(100);
    expect(atInfo).toBeLessThanOrEqual(100 + Math.ceil(seconds * 10));
    expect(failed.filter((l) => l.level === 50)).toHaveLength(atInfo);
    expect(failed.filter((l) => l.level === 20)).toHaveLength(300 - atInfo);
  });
});

describe('a reload against a tcp:// host that runs until a restart', () => {
  it('is refused when the file gives an agent network: host, though the file moved the host elsewhere', async () => {
    const sent: unknown[] = [];
    const actor = {
      getSnapshot: () => ({
        context: { agents: [], maxSessions: 1, sessions: {}, queue: [] },
        matches: () => false,
      }),
      send: (event: unknown) => sent.push(event),
    } as unknown as Actor<typeof daemonMachine>;
    const loop = { name: 'loop', url: 'tcp://127.0.0.1:8080', insecure: true, maxSessions: 2, labels: [] };
    const started = {
      file: '/etc/agentd/agentd.yaml',
      hosts: [loop],
      agents: [{ name: 'scout', network: 'bridge' }],
      daemon: {},
    } as unknown as Settings;
    // The file the loader accepts: the host now on a Unix socket, the agent on the host's network.
    const next = {
      ...started,
      hosts: [{ ...loop, url: 'unix:///run/podman/podman.sock', insecure: false }],
      agents: [{ name: 'scout', network: 'host' }],
    } as unknown as Settings;
    const reload = createReloader({
      started,
      actor,
      log: pino({ level: 'silent' }),
      notify: { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier,
      load: () => Promise.resolve(next),
    });
    const answer = await reload('request');
    expect(answer).toMatchObject({ type: 'reload_failed' });
    expect(answer.message).toMatch(/hosts\.loop, as it runs until a restart: tcp:\/\/127\.0\.0\.1:8080/);
    expect(answer.message).toMatch(/agent scout \(network: host\)/);
    expect(sent).toEqual([]);
  });
});
