import { describe, expect, it } from 'vitest';
import { describeChanges, describeRestartNeeded, diffConfiguration } from '../../src/config/diff.js';
import type { DaemonSettings, HttpSettings } from '../../src/config/types.js';
import { AGENTS } from '../helpers/machine-fakes.js';

const DAEMON: DaemonSettings = {
  socket: '/run/agentd/agentd.sock',
  stateDir: '/var/lib/agentd',
  maxSessions: 4,
  stopGraceMs: 10_000,
  podmanTimeoutMs: 60_000,
  pullTimeoutMs: 600_000,
  logMaxBytes: 1_048_576,
  historyLimit: 200,
  recordsDir: '/var/lib/agentd/records',
  recordsMaxAgeMs: 30 * 86_400_000,
  recordsMaxBytes: 10 * 1024 ** 3,
  recordsMaxCount: 100_000,
  recordsMinFree: { percent: 5 },
  hostProbeIntervalMs: 10_000,
  hostProbeTimeoutMs: 5_000,
  hostDownGraceMs: 600_000,
  notify: [],
};
const [DEMO, NOREPO] = AGENTS as [(typeof AGENTS)[number], (typeof AGENTS)[number]];

describe('diffConfiguration', () => {
  it('finds nothing in the same file, whatever the key order', () => {
    const reordered = Object.fromEntries(Object.entries(DEMO).reverse()) as typeof DEMO;
    const changes = diffConfiguration(
      { agents: AGENTS, maxSessions: 4, daemon: DAEMON },
      { agents: [NOREPO, reordered], daemon: DAEMON },
    );
    expect(changes).toEqual({
      added: [],
      changed: [],
      removed: [],
      maxSessions: undefined,
      restartNeeded: [],
    });
    expect(describeChanges(changes)).toBe('no agent or max_sessions change');
  });

  it('names added, changed and removed agents, max_sessions and the settings that need a restart', () => {
    const changes = diffConfiguration(
      { agents: AGENTS, maxSessions: 4, daemon: DAEMON },
      {
        agents: [
          { ...DEMO, env: { LEVEL: 'debug' } },
          { ...NOREPO, name: 'fresh' },
        ],
        daemon: { ...DAEMON, maxSessions: 8, socket: '/tmp/a.sock', stopGraceMs: 2000 },
      },
    );
    expect(changes).toEqual({
      added: ['fresh'],
      changed: ['demo'],
      removed: ['norepo'],
      maxSessions: { from: 4, to: 8 },
      restartNeeded: [
        { key: 'daemon.socket', from: '/run/agentd/agentd.sock', to: '/tmp/a.sock' },
        { key: 'daemon.stop_grace', from: '10.0s', to: '2.0s' },
      ],
    });
    expect(describeChanges(changes)).toBe('added fresh; changed demo; removed norepo; max_sessions 4 -> 8');
    expect(describeRestartNeeded(changes.restartNeeded)).toMatch(
      /^daemon\.socket \(\/run\/agentd\/agentd\.sock -> \/tmp\/a\.sock\), daemon\.stop_grace \(10\.0s -> 2\.0s\) cannot change while agentd runs/,
    );
  });

  it('shows a changed records_max_size as a size, as it is written (10g -> 40m), not in bytes', () => {
    const changes = diffConfiguration(
      { agents: AGENTS, maxSessions: 4, daemon: DAEMON },
      { agents: AGENTS, daemon: { ...DAEMON, recordsMaxBytes: 40 * 1024 ** 2 } },
    );
    expect(changes.restartNeeded).toEqual([{ key: 'daemon.records_max_size', from: '10g', to: '40m' }]);
    expect(describeRestartNeeded(changes.restartNeeded)).toMatch(
      /^daemon\.records_max_size \(10g -> 40m\) cannot change while agentd runs/,
    );
  });

  it('shows a changed records_min_free as it is written (5% -> 2g)', () => {
    const changes = diffConfiguration(
      { agents: AGENTS, maxSessions: 4, daemon: { ...DAEMON, recordsMinFree: { percent: 5 } } },
      { agents: AGENTS, daemon: { ...DAEMON, recordsMinFree: { bytes: 2 * 1024 ** 3 } } },
    );
    expect(changes.restartNeeded).toEqual([{ key: 'daemon.records_min_free', from: '5%', to: '2g' }]);
  });

  it('names daemon.notify and daemon.http when they change: they need a restart', () => {
    const source = { kind: 'env' as const, name: 'K', raw: 'env:K' };
    const changes = diffConfiguration(
      { agents: AGENTS, maxSessions: 4, daemon: DAEMON },
      {
        agents: AGENTS,
        daemon: {
          ...DAEMON,
          notify: [{ url: 'https://hooks.example/x', secret: source, attempts: 5, backoffMs: 2000 }],
          http: {
            listen: { kind: 'tcp', host: '127.0.0.1', port: 7391 },
            tokens: [{ name: 'ci', source, scopes: ['read'] }],
            bodyLimitBytes: 1024,
          },
        },
      },
    );
    expect(changes.restartNeeded).toEqual([
      {
        key: 'daemon.notify',
        from: 'none',
        to: 'https://hooks.example/x (signed with env:K, 5 attempts, backoff 2.0s)',
      },
      { key: 'daemon.http', from: 'off', to: '127.0.0.1:7391, tokens ci <- env:K (read), body_limit 1k' },
    ]);
    // The same settings again change nothing.
    const same = diffConfiguration(
      { agents: AGENTS, maxSessions: 4, daemon: DAEMON },
      { agents: AGENTS, daemon: DAEMON },
    );
    expect(same.restartNeeded).toEqual([]);
  });

  it("says what differs in daemon.http when the listen address and token names do not: a token's scopes or source, tls, body_limit", () => {
    const source = { kind: 'env' as const, name: 'K', raw: 'env:K' };
    const http: HttpSettings = {
      listen: { kind: 'tcp', host: '127.0.0.1', port: 7391 },
      tokens: [{ name: 'ci', source, scopes: ['admin'] }],
      bodyLimitBytes: 1024,
    };
    const pending = (next: HttpSettings) =>
      diffConfiguration(
        { agents: AGENTS, maxSessions: 4, daemon: { ...DAEMON, http } },
        { agents: AGENTS, daemon: { ...DAEMON, http: next } },
      ).restartNeeded;
    // An operator who took admin from a token reads what the running daemon still lets it do.
    const [scopes] = pending({ ...http, tokens: [{ name: 'ci', source, scopes: ['read'] }] });
    expect(scopes).toEqual({
      key: 'daemon.http',
      from: '127.0.0.1:7391, tokens ci <- env:K (admin), body_limit 1k',
      to: '127.0.0.1:7391, tokens ci <- env:K (read), body_limit 1k',
    });
    const moved = { kind: 'file' as const, path: '/etc/agentd/ci.token', raw: 'file:/etc/agentd/ci.token' };
    for (const next of [
      { ...http, tokens: [{ name: 'ci', source: moved, scopes: ['admin' as const] }] },
      { ...http, bodyLimitBytes: 2048 },
      { ...http, tls: { cert: '/etc/agentd/cert.pem', key: '/etc/agentd/key.pem' } },
    ]) {
      const [change] = pending(next);
      expect(change?.from).not.toBe(change?.to);
    }
    expect(pending({ ...http, tls: { cert: '/c.pem', key: '/k.pem' } })[0]?.to).toBe(
      '127.0.0.1:7391, tokens ci <- env:K (admin), tls /c.pem /k.pem, body_limit 1k',
    );
  });

  it('shows a changed webhook URL without its query (a token for some services)', () => {
    const source = { kind: 'env' as const, name: 'K', raw: 'env:K' };
    const target = (url: string) => [{ url, secret: source, attempts: 5, backoffMs: 2000 }];
    const changes = diffConfiguration(
      {
        agents: AGENTS,
        maxSessions: 4,
        daemon: { ...DAEMON, notify: target('https://hooks.example/x?token=OLDSECRET') },
      },
      { agents: AGENTS, daemon: { ...DAEMON, notify: target('https://hooks.example/x?token=NEWSECRET') } },
    );
    expect(changes.restartNeeded).toEqual([
      {
        key: 'daemon.notify',
        from: 'https://hooks.example/x?… (signed with env:K, 5 attempts, backoff 2.0s)',
        to: 'https://hooks.example/x?… (signed with env:K, 5 attempts, backoff 2.0s)',
      },
    ]);
  });

  it("says what differs in daemon.notify when the URLs do not: a target's secret, attempts, backoff, outcomes", () => {
    const source = { kind: 'env' as const, name: 'K', raw: 'env:K' };
    const target = { url: 'https://hooks.example/x', secret: source, attempts: 5, backoffMs: 2000 };
    const pending = (next: Partial<typeof target> & { outcomes?: ['failed'] }) =>
      diffConfiguration(
        { agents: AGENTS, maxSessions: 4, daemon: { ...DAEMON, notify: [target] } },
        { agents: AGENTS, daemon: { ...DAEMON, notify: [{ ...target, ...next }] } },
      ).restartNeeded;
    expect(pending({ attempts: 2 })).toEqual([
      {
        key: 'daemon.notify',
        from: 'https://hooks.example/x (signed with env:K, 5 attempts, backoff 2.0s)',
        to: 'https://hooks.example/x (signed with env:K, 2 attempts, backoff 2.0s)',
      },
    ]);
    for (const next of [
      { secret: { kind: 'env' as const, name: 'L', raw: 'env:L' } },
      { backoffMs: 60_000 },
      { outcomes: ['failed'] as ['failed'] },
    ]) {
      const [change] = pending(next);
      expect(change?.from).not.toBe(change?.to);
    }
  });
});

describe("a reload's summary of many changed agents", () => {
  it('names at most 20 agents of each change and counts the rest, however many the file has', () => {
    const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    const summary = (n: number) =>
      describeChanges({
        added: names('added', n),
        changed: names('changed', n),
        removed: names('removed', n),
        maxSessions: undefined,
        restartNeeded: [],
      });
    // 75,000 one-line agents added made a 591 KB message; now its size does not grow with their number.
    expect(summary(75_000).length).toBeLessThan(2_000);
    expect(summary(75_000).length - summary(100).length).toBeLessThan(20);
    expect(summary(75_000)).toContain('added added-0, added-1,');
    expect(summary(75_000)).toContain('added-19 and 74,980 more; changed changed-0,');
    expect(summary(75_000)).not.toContain('added-20');
    // Up to 20 are all named, as before.
    expect(summary(20)).toContain('added-19; changed');
    expect(summary(20)).not.toContain('more');
  });
});
