import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instanceIdOf } from '../../src/daemon/instance-id.js';
import { instanceSecretPrefix } from '../../src/runner/names.js';
import { ownInstance } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { listAgentdContainers, listSecrets, TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir, track } from '../helpers/resources.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'index.js');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Handed to the session as a credential: it must never reach the inspector. */
const TOKEN = `inspector-secret-${randomBytes(8).toString('hex')}`;
/** Session states a run settles in (transient ones such as `assemble` never show in a snapshot). */
const SESSION_STATES = ['resolveCredentials', 'run', 'report', 'done'];
const DAEMON_STATES = ['reconciling', 'opening', 'ready', 'shutdown', 'failed'];

let dir: string;
let socket: string;
let prefix: string;
let git: GitServer;
let daemon: ChildProcess;
let daemonLog = '';
let url: string;
let browser: Browser;
let page: Page;

/** The daemon's stderr as JSON entries; waiters are called on every new line. */
const logEntries: Record<string, unknown>[] = [];
const logWaiters = new Set<() => void>();

/** Resolves with the first daemon log entry that matches; rejects with the whole log otherwise. */
function waitForLog(match: (entry: Record<string, unknown>) => boolean, timeoutMs = 30_000) {
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const check = () => {
      const found = logEntries.find(match);
      if (found) finish(() => resolve(found));
      else if (daemon.exitCode !== null || daemon.signalCode !== null) {
        finish(() => reject(new Error(`daemon exited before the expected log line; log:\n${daemonLog}`)));
      }
    };
    const finish = (fn: () => void) => {
      clearTimeout(timer);
      logWaiters.delete(check);
      daemon.off('exit', check);
      fn();
    };
    const timer = setTimeout(
      () =>
        finish(() => reject(new Error(`daemon log line not seen in ${timeoutMs} ms; log:\n${daemonLog}`))),
      timeoutMs,
    );
    logWaiters.add(check);
    daemon.on('exit', check);
    check();
  });
}

function exited(child: ChildProcess, timeoutMs: number): Promise<number | null | 'timeout'> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Reads an SSE stream into a string until stopped. */
function recordStream(streamUrl: string) {
  const controller = new AbortController();
  let text = '';
  const reading = (async () => {
    const response = await fetch(streamUrl, { signal: controller.signal });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    }
  })();
  return {
    stop: async () => {
      controller.abort();
      await reading.catch((error: unknown) => {
        if (!controller.signal.aborted) throw error;
      });
      return text;
    },
  };
}

const chart = (sessionId?: string) =>
  sessionId === undefined
    ? '[data-machine="daemon"]'
    : `[data-machine="session"][data-session-id="${sessionId}"]`;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the inspector test drives a real headless Chromium. ` +
        'Install it with `apt-get install -y chromium` (CI installs it in .ci/run).',
    );
  }
  dir = makeTempDir('agentd-inspector-');
  socket = join(dir, 'agentd.sock');
  const stateDir = join(dir, 'state');
  prefix = instanceSecretPrefix(instanceIdOf(socket, stateDir));
  // Its containers and secrets are noted for the run's teardown check and removed whatever happens.
  ownInstance({ prefix });
  git = await startGitServer();
  track.onCleanup(() => git.stop());
  const config = join(dir, 'agentd.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      daemon: { socket, state_dir: stateDir, stop_grace: '1s' },
      agents: [
        {
          name: 'demo',
          image: TEST_IMAGE,
          command: ['sh', '-c', 'sleep 1; echo done'],
          network: 'host',
          repo: git.url(),
          credentials: [{ name: 'DEMO_TOKEN', source: 'env:AGENTD_INSPECTOR_TEST_TOKEN' }],
        },
      ],
    }),
  );

  daemon = track.process(
    spawn(process.execPath, [CLI, 'start', '--config', config, '--inspect=0'], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, AGENTD_INSPECTOR_TEST_TOKEN: TOKEN },
    }),
  );
  createInterface({ input: daemon.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    daemonLog += `${line}\n`;
    try {
      logEntries.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // Not a log line (a crash trace): it is in daemonLog for error messages.
    }
    for (const check of [...logWaiters]) check();
  });
  const listening = await waitForLog((e) => e.event === 'inspector.listening');
  url = String(listening.url);
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  await waitForLog((e) => e.event === 'daemon.ready');

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  track.onCleanup(() => browser.close());
  page = await browser.newPage();
  page.setDefaultTimeout(30_000);
});

afterAll(async () => {
  // Let the daemon tear its sessions down itself (a second SIGTERM cancels them), then remove leftovers.
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    daemon.kill('SIGTERM');
    if ((await exited(daemon, 10_000)) === 'timeout') {
      daemon.kill('SIGTERM');
      await exited(daemon, 15_000);
    }
  }
  // What the stopped daemon left is a leak: read before cleanupAll removes it, then asserted.
  const left: string[] = [];
  if (prefix !== undefined) {
    for (const c of await listAgentdContainers(prefix)) left.push(`container ${c.name} (${c.state})`);
    for (const s of await listSecrets(prefix)) left.push(`secret ${s}`);
  }
  await cleanupAll();
  expect(left, 'podman objects the inspector daemon left behind').toEqual([]);
});

describe('agentd start --inspect', () => {
  it('serves the machine structure', async () => {
    const response = await fetch(`${url}machines.json`);
    expect(response.status).toBe(200);
    const json = (await response.json()) as {
      daemon: { root: { states: { key: string; states: { key: string }[] }[] }; transitions: object[] };
      session: { root: { states: { key: string }[] } };
    };
    const daemonStates = json.daemon.root.states.map((s) => s.key);
    expect(daemonStates).toEqual(expect.arrayContaining(DAEMON_STATES));
    expect(json.daemon.root.states.find((s) => s.key === 'shutdown')?.states.map((s) => s.key)).toEqual(
      expect.arrayContaining(['draining', 'stopped']),
    );
    expect(json.daemon.transitions).toContainEqual(
      expect.objectContaining({ source: 'ready', targets: ['shutdown'], event: 'shutdown' }),
    );
    expect(json.daemon.transitions).toContainEqual(
      expect.objectContaining({ source: 'ready', event: 'trigger', guard: 'sessionIdInUse' }),
    );
    expect(json.daemon.transitions).toContainEqual(
      expect.objectContaining({ source: 'reconciling', targets: ['opening'], event: 'done: reconcile' }),
    );
    expect(json.session.root.states.map((s) => s.key)).toEqual(
      expect.arrayContaining([...SESSION_STATES, 'assemble']),
    );
    // Pages from other host names (DNS rebinding) get nothing.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      get(url, { headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject);
    });
    expect(status).toBe(403);
  });

  it('draws the daemon chart with ready active', async () => {
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    await page.goto(url);
    await page.waitForSelector(`${chart()} [data-state="ready"][data-active="true"]`);
    await page.waitForSelector('body[data-connected="true"]');
    const active = await page
      .locator(`${chart()} [data-active="true"]`)
      .evaluateAll((boxes) => boxes.map((b) => b.getAttribute('data-state')));
    expect(active).toEqual(['ready']);
    // Every state of the machine is drawn, nested ones inside their parent.
    for (const state of DAEMON_STATES) {
      expect(await page.locator(`${chart()} [data-state="${state}"]`).count()).toBe(1);
    }
    expect(
      await page.locator(`${chart()} [data-state="shutdown"] [data-state="shutdown.draining"]`).count(),
    ).toBe(1);
    // The replay on connect brought the start-up events.
    expect(await page.locator('#events li[data-event="xstate.init"][data-target="daemon"]').count()).toBe(1);
    expect(problems, 'errors in the page').toEqual([]);
  });

  it('shows a session chart appear, run and finish, and lists its events', async () => {
    const stream = recordStream(`${url}events`);
    const firstSession = page.waitForSelector('[data-machine="session"]');
    const runActive = page.waitForSelector('[data-machine="session"] [data-state="run"][data-active="true"]');
    const trigger = execa(process.execPath, [CLI, 'trigger', 'demo'], {
      env: { AGENTD_SOCKET: socket },
      reject: false,
      timeout: 90_000,
    });

    // Awaited below; this keeps an early failure of the other wait from being an unhandled rejection.
    runActive.catch(() => {});
    const sessionChart = await firstSession.catch(async (error: unknown) => {
      const r = await trigger;
      throw new Error(
        `no session chart appeared (${String(error)}); trigger exited ${r.exitCode}:\n${r.stdout}\n${r.stderr}\ndaemon log:\n${daemonLog}`,
      );
    });
    const sessionId = await sessionChart.getAttribute('data-session-id');
    expect(sessionId).toMatch(/^[0-9a-f]{16}$/);
    await runActive;
    const result = await trigger;
    expect(
      result.exitCode,
      `trigger failed:\n${result.stdout}\n${result.stderr}\ndaemon log:\n${daemonLog}`,
    ).toBe(0);
    expect(result.stdout).toContain(`session ${sessionId} accepted`);
    expect(result.stdout).toContain('done');

    const session = chart(sessionId ?? '');
    await page.waitForSelector(`${session}[data-status="done"].finished`);
    // The session's own boxes; its runner's chart is drawn inside it.
    const own = `${session} > .children`;
    await page.waitForSelector(`${own} [data-state="done"][data-active="true"]`);
    expect(await page.locator(`${own} [data-active="true"]`).count()).toBe(1);
    // The page kept the trail: every state of the session was active at some point.
    for (const state of SESSION_STATES) {
      expect(await page.locator(`${own} [data-state="${state}"]`).getAttribute('data-visited')).toBe('true');
    }
    // The runner's chart, inside the session's: it went through the container's phases to its end
    // (on the local Podman `podman run` creates the container in the attachment: no creatingContainer).
    const runner = `${session} [data-machine="runner"][data-session-id="${sessionId}"]`;
    await page.waitForSelector(`${runner} [data-state="done"][data-active="true"]`);
    for (const state of [
      'live.creatingSecrets',
      'live.attached.progress.cloning',
      'live.attached.progress.running',
      'tearingDown',
    ]) {
      expect(await page.locator(`${runner} [data-state="${state}"]`).getAttribute('data-visited')).toBe(
        'true',
      );
    }
    // The daemon went back to (stayed in) ready.
    expect(await page.locator(`${chart()} [data-state="ready"]`).getAttribute('data-active')).toBe('true');

    // Events: the trigger from the socket, the session's own, the session reporting back; newest first.
    await page.waitForSelector(`#events li[data-event="session.finished"][data-target="daemon"]`);
    const events = await page
      .locator('#events li')
      .evaluateAll((items) =>
        items.map((li) => ({ event: li.getAttribute('data-event'), target: li.getAttribute('data-target') })),
      );
    const index = (event: string, target: string) =>
      events.findIndex((e) => e.event === event && e.target === target);
    expect(index('trigger', 'daemon')).toBeGreaterThanOrEqual(0);
    expect(index('xstate.init', sessionId ?? '')).toBeGreaterThanOrEqual(0);
    expect(index('xstate.done.actor.runner', sessionId ?? '')).toBeGreaterThanOrEqual(0);
    // The runner's events are listed too: the setup step's markers as they came.
    expect(index('setup.running', sessionId ?? '')).toBeGreaterThanOrEqual(0);
    expect(index('session.finished', 'daemon')).toBeLessThan(index('trigger', 'daemon'));
    expect(await page.locator('#events li').first().textContent()).not.toBe('');

    // Nothing but ids, state values, statuses and event types left the daemon: no context, no payloads.
    const raw = await stream.stop();
    const messages = raw
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
    expect(
      messages.some(
        (m) =>
          m.kind === 'snapshot' &&
          m.machine === 'session' &&
          m.sessionId === sessionId &&
          typeof m.value === 'object' &&
          m.value !== null &&
          'run' in m.value,
      ),
    ).toBe(true);
    expect(
      messages.some((m) => m.kind === 'snapshot' && m.machine === 'runner' && m.sessionId === sessionId),
    ).toBe(true);
    const allowed = new Set([
      'kind',
      'actorId',
      'machine',
      'sessionId',
      'value',
      'status',
      'event',
      'source',
      'at',
    ]);
    for (const m of messages) expect(Object.keys(m).filter((k) => !allowed.has(k))).toEqual([]);
    for (const text of [raw, await page.content()]) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(git.url());
    }
  });

  it('closes the inspector when the daemon stops', async () => {
    daemon.kill('SIGTERM');
    expect(await exited(daemon, 30_000), `daemon log:\n${daemonLog}`).toBe(0);
    await page.waitForSelector('body[data-connected="false"]');
    await expect(fetch(url)).rejects.toThrow();
  });
});
