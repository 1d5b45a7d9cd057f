import { createHmac, timingSafeEqual } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SessionRecord } from '../../src/sessions/records.js';
import { launchDaemon, leftoversOfDaemons, startDaemon, writeDaemonConfig } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll } from '../helpers/resources.js';

let git: GitServer;

beforeAll(async () => {
  git = await startGitServer();
});

afterAll(async () => {
  await git?.stop();
});

afterEach(async () => {
  const left = await leftoversOfDaemons();
  await cleanupAll();
  expect(left, 'podman objects the test daemons left behind').toEqual([]);
});

const KEY = 'whsec-e2e-6b1d0c9a8f7e';
const CREDENTIAL = 'sk-e2e-notify-3c4d5e6f7a8b';

interface Received {
  at: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  status: number;
}

/**
 * A webhook receiver on 127.0.0.1. `failFirst`: the first delivery it sees is answered with these
 * statuses, one per attempt, before it is taken; every other POST gets 204.
 */
async function receiver(failFirst: number[] = []) {
  const received: Received[] = [];
  let flaky: string | undefined;
  const waiters = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const delivery = String(req.headers['x-agentd-delivery']);
      flaky ??= delivery;
      const status = delivery === flaky ? (failFirst.shift() ?? 204) : 204;
      received.push({ at: Date.now(), headers: req.headers, body: Buffer.concat(chunks), status });
      res.writeHead(status).end();
      for (const check of [...waiters]) check();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    received,
    waitFor: (n: number, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${received.length} of ${n} POSTs`)), timeoutMs);
        const check = () => {
          if (received.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      }),
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** What a receiver does with the signature header: HMAC-SHA256 of the raw body, compared in constant time. */
function signedWith(key: string, received: Received): boolean {
  const header = String(received.headers['x-agentd-signature-256'] ?? '');
  const expected = Buffer.from(`sha256=${createHmac('sha256', key).update(received.body).digest('hex')}`);
  return header.length === expected.length && timingSafeEqual(Buffer.from(header), expected);
}

function agent(name: string, command: string[], extra: Record<string, unknown> = {}) {
  return { name, image: TEST_IMAGE, command, repo: git.url(), network: 'host', ...extra };
}

describe('outcome notifications', () => {
  it('a loopback webhook receiver gets the session record, correctly signed, without secrets', async () => {
    const hook = await receiver();
    try {
      const d = await startDaemon(
        {
          agents: [
            agent('demo', ['sh', '-c', 'echo "key is $API_KEY"; exit 1'], {
              credentials: [{ name: 'API_KEY', source: 'env:AGENTD_E2E_API_KEY' }],
              notify: [{ url: hook.url('/agentd?token=abc'), secret: 'env:AGENTD_E2E_HOOK_KEY' }],
            }),
          ],
          daemon: { notify: [{ url: hook.url('/all'), secret: 'env:AGENTD_E2E_HOOK_KEY' }] },
        },
        { env: { AGENTD_E2E_HOOK_KEY: KEY, AGENTD_E2E_API_KEY: CREDENTIAL } },
      );
      const run = await d.cli(['trigger', 'demo']);
      expect(run.code).toBe(1);
      const id = /session ([0-9a-f]{16}) accepted/.exec(run.stdout)?.[1];
      expect(id, run.stdout).toBeDefined();
      await hook.waitFor(2);
      for (const post of hook.received) {
        expect(signedWith(KEY, post), 'signature').toBe(true);
        expect(signedWith('another key', post)).toBe(false);
        expect(post.headers['content-type']).toBe('application/json');
        expect(post.headers['x-agentd-event']).toBe('session.finished');
        const body = JSON.parse(post.body.toString()) as {
          event: string;
          delivery: string;
          session: SessionRecord;
        };
        expect(body.delivery).toBe(post.headers['x-agentd-delivery']);
        expect(body.session).toMatchObject({ id, agent: 'demo', outcome: 'failed', exitCode: 1 });
        expect(post.body.toString()).not.toContain(CREDENTIAL);
        expect(post.body.toString()).not.toContain(KEY);
      }
      expect(await d.stop()).toBe(0);
      const delivered = d.logs().filter((l) => l.event === 'notify.delivered');
      expect(delivered.map((l) => l.url).sort()).toEqual([`${hook.url('/agentd')}?…`, hook.url('/all')]);
      // The key and the URL's query never reach the daemon's log.
      expect(d.stderr()).not.toContain(KEY);
      expect(d.stderr()).not.toContain('token=abc');
    } finally {
      await hook.close();
    }
  });

  it('a session is notified where its agent said when it was accepted, whatever a reload changes', async () => {
    const [before, after] = [await receiver(), await receiver()];
    try {
      const secret = 'env:AGENTD_E2E_HOOK_KEY';
      const sleeper = (name: string, url: string) =>
        agent(name, ['sh', '-c', 'sleep 4'], { notify: [{ url, secret }] });
      const d = await startDaemon(
        {
          agents: [sleeper('moved', before.url('/moved')), sleeper('gone', before.url('/gone'))],
          daemon: { max_sessions: 2 },
        },
        { env: { AGENTD_E2E_HOOK_KEY: KEY } },
      );
      const ids: string[] = [];
      // Two run, the third waits in the queue.
      for (const name of ['moved', 'gone', 'moved']) {
        const run = await d.cli(['trigger', name, '--detach']);
        expect(run.code, run.stderr).toBe(0);
        ids.push(run.stdout.trim());
      }
      // Meanwhile: one agent's webhook now points elsewhere, the other agent is removed.
      writeDaemonConfig(d.files, {
        agents: [sleeper('moved', after.url('/moved'))],
        daemon: { max_sessions: 2 },
      });
      const reload = await d.cli(['reload']);
      expect(reload.code, reload.stderr).toBe(0);
      // The queued one is cancelled: settled without ever running, it is told where it was accepted too.
      const queued = ids[2] as string;
      expect((await d.cli(['cancel', queued])).code).toBe(0);
      expect((await d.waitForOutcome(queued)).outcome).toBe('cancelled');
      for (const id of ids.slice(0, 2)) expect((await d.waitForOutcome(id)).outcome).toBe('succeeded');
      await before.waitFor(3);
      expect(await d.stop()).toBe(0);
      const sessions = before.received.map(
        (post) => (JSON.parse(post.body.toString()) as { session: SessionRecord }).session.id,
      );
      expect(sessions.sort()).toEqual([...ids].sort());
      expect(after.received).toEqual([]);
    } finally {
      await Promise.all([before.close(), after.close()]);
    }
  });

  it('a failing receiver is retried with backoff, and does not delay the next session', async () => {
    // The first outcome's notification fails twice (503, 500), then it is taken: backoff, then twice
    // that, after the first try. Long enough for a whole second session to run meanwhile.
    const backoffS = 5;
    const hook = await receiver([503, 500]);
    try {
      const d = await startDaemon(
        {
          agents: [
            agent('demo', ['true'], {
              notify: [
                {
                  url: hook.url('/flaky'),
                  secret: 'env:AGENTD_E2E_HOOK_KEY',
                  attempts: 3,
                  backoff: `${backoffS}s`,
                },
              ],
            }),
          ],
        },
        { env: { AGENTD_E2E_HOOK_KEY: KEY } },
      );
      const first = await d.cli(['trigger', 'demo', '--quiet']);
      expect(first.code, first.stderr).toBe(0);
      // The next session runs while the first one's notification is still being retried.
      const second = await d.cli(['trigger', 'demo', '--quiet']);
      expect(second.code, second.stderr).toBe(0);
      await hook.waitFor(4);
      const delivered = await d.waitForLog((l) => l.event === 'notify.delivered' && l.attempts === 3);
      const [a, b] = [
        d.record(delivered.session as string),
        d.records().find((r) => r.id !== delivered.session),
      ];
      if (!a || !b) throw new Error(`records: ${JSON.stringify(d.records())}`);
      // Three POSTs of the first outcome, the same delivery and signature each time, at least half the
      // backoff then half of twice the backoff apart (each wait is drawn between half and all of it).
      const firstSession = d.logs().find((l) => l.event === 'notify.attempt_failed')?.session;
      expect(delivered.session).toBe(firstSession);
      expect(firstSession).toBe(a.id);
      const tries = hook.received.filter((r) => {
        const body = JSON.parse(r.body.toString()) as { session: SessionRecord };
        return body.session.id === firstSession;
      });
      expect(tries.map((t) => t.status)).toEqual([503, 500, 204]);
      // The second session finished while the first one's notification was still being retried.
      expect(Date.parse(b.finishedAt as string)).toBeLessThan(tries[2]?.at ?? 0);
      expect(new Set(tries.map((t) => t.headers['x-agentd-delivery'])).size).toBe(1);
      expect(new Set(tries.map((t) => t.headers['x-agentd-signature-256'])).size).toBe(1);
      const at = tries.map((t) => t.at);
      const gaps = [(at[1] ?? 0) - (at[0] ?? 0), (at[2] ?? 0) - (at[1] ?? 0)];
      expect(gaps[0]).toBeGreaterThanOrEqual(backoffS * 500 - 100);
      expect(gaps[1]).toBeGreaterThanOrEqual(backoffS * 1000 - 100);
      expect(
        d
          .logs()
          .filter((l) => l.event === 'notify.attempt_failed')
          .map((l) => l.final),
      ).toEqual([false, false]);
      expect(await d.stop()).toBe(0);
    } finally {
      await hook.close();
    }
  });

  it.each([
    ['a stop', 'SIGTERM'],
    ['a crash', 'SIGKILL'],
  ] as const)(
    'a notification %s cut short is sent again by the next start: the same delivery, the attempts left',
    async (_, signal) => {
      // Refused once, then a stop while the daemon waits 5-10 s to try again (a waiting delivery stays on disk with when it is due).
      const hook = await receiver([503]);
      try {
        const config = {
          agents: [
            agent('demo', ['true'], {
              notify: [
                {
                  url: hook.url('/hook?token=abc'),
                  secret: 'env:AGENTD_E2E_HOOK_KEY',
                  attempts: 3,
                  backoff: '10s',
                },
              ],
            }),
          ],
        };
        const env = { env: { AGENTD_E2E_HOOK_KEY: KEY } };
        const first = await startDaemon(config, env);
        const run = await first.cli(['trigger', 'demo', '--quiet']);
        expect(run.code, run.stderr).toBe(0);
        await first.waitForLog((l) => l.event === 'notify.attempt_failed' && l.attempt === 1);
        const outbox = join(first.files.stateDir, 'notify');
        if (signal === 'SIGKILL') {
          // Killed once the outbox counts the failed attempt (written before its log line; not the temp file).
          const counted = () =>
            readdirSync(outbox)
              .filter((f) => f.endsWith('.json'))
              .some((f) => readFileSync(join(outbox, f), 'utf8').includes('"made":1'));
          for (let i = 0; i < 100 && !counted(); i++) await new Promise((r) => setTimeout(r, 50));
          expect(await first.stop('SIGKILL')).toBe(null);
        } else {
          expect(await first.stop()).toBe(0);
          expect(first.logs().find((l) => l.event === 'notify.abandoned')?.msg).toContain(
            'the next start sends it again',
          );
        }
        const [file] = readdirSync(outbox);
        const kept = readFileSync(join(outbox, file as string), 'utf8');
        // Neither the URL (its query may be a key) nor the signature's key is kept.
        expect(kept).not.toContain('token=abc');
        expect(kept).not.toContain(KEY);

        const next = launchDaemon(first.files, env);
        await next.ready();
        await hook.waitFor(2);
        const resumed = await next.waitForLog((l) => l.event === 'notify.delivered');
        expect(resumed.attempts).toBe(2);
        expect(next.logs().find((l) => l.event === 'notify.resumed')).toMatchObject({ attempt: 2 });
        expect(hook.received.map((r) => r.status)).toEqual([503, 204]);
        expect(new Set(hook.received.map((r) => r.headers['x-agentd-delivery'])).size).toBe(1);
        expect(new Set(hook.received.map((r) => r.body.toString())).size).toBe(1);
        for (const post of hook.received) expect(signedWith(KEY, post)).toBe(true);
        expect(await next.stop()).toBe(0);
        expect(readdirSync(outbox)).toEqual([]);
        expect(next.stderr()).not.toContain('token=abc');
      } finally {
        await hook.close();
      }
    },
  );
});
