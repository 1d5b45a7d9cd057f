#!/usr/bin/env node
// Writes docs/inspector.png for the README: a daemon started with --inspect, one session finished
// and one running, as headless Chromium shows the inspector page.
//
//   npm run build && node scripts/inspector-screenshot.mjs [output.png]
//
// Needs Podman with localhost/agentd-base:bookworm (set CONTAINERS_CONF if this machine needs it),
// git, and Chromium at /usr/bin/chromium (apt-get install -y chromium) or $CHROMIUM. VERBOSE=1 shows
// the daemon's log.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist', 'cli', 'index.js');
const OUT = resolve(process.argv[2] ?? join(ROOT, 'docs', 'inspector.png'));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'agentd',
  GIT_AUTHOR_EMAIL: 'agentd@example.invalid',
  GIT_COMMITTER_NAME: 'agentd',
  GIT_COMMITTER_EMAIL: 'agentd@example.invalid',
};

function fail(message) {
  process.stderr.write(`inspector-screenshot: ${message}\n`);
  process.exit(1);
}

if (!existsSync(CLI)) fail(`${CLI} is missing; run \`npm run build\` first`);
if (!existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing; install it with \`apt-get install -y chromium\``);

async function freePort() {
  const server = createServer();
  await new Promise((ok, ko) => server.once('error', ko).listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

/** The daemon's log lines as JSON, and a check run on each new one. */
const logEntries = [];
const logWaiters = new Set();

/** One reader for the daemon's stderr: it must be drained, or the daemon blocks on its log writes. */
function followLog(child) {
  createInterface({ input: child.stderr }).on('line', (line) => {
    if (process.env.VERBOSE) process.stderr.write(`  daemon: ${line}\n`);
    try {
      logEntries.push(JSON.parse(line));
    } catch {
      process.stderr.write(`  daemon: ${line}\n`);
    }
    for (const check of [...logWaiters]) check();
  });
}

/** Resolves with the first daemon log entry that matches; rejects when the daemon exits first. */
function waitForLog(child, match, timeoutMs = 60_000) {
  return new Promise((ok, ko) => {
    const check = () => {
      const found = logEntries.find(match);
      if (found) finish(() => ok(found));
      else if (child.exitCode !== null)
        finish(() => ko(new Error(`the daemon exited with ${child.exitCode}`)));
    };
    const finish = (fn) => {
      clearTimeout(timer);
      logWaiters.delete(check);
      child.off('exit', check);
      fn();
    };
    const timer = setTimeout(
      () => finish(() => ko(new Error('timed out waiting for the daemon'))),
      timeoutMs,
    );
    logWaiters.add(check);
    child.on('exit', check);
    check();
  });
}

function exited(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((ok) => {
    const timer = setTimeout(() => ok(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      ok(true);
    });
  });
}

function trigger(socket) {
  return execFileSync(process.execPath, [CLI, 'trigger', 'demo', '--detach'], {
    env: { ...process.env, AGENTD_SOCKET: socket },
    encoding: 'utf8',
  }).trim();
}

const dir = mkdtempSync(join(tmpdir(), 'agentd-screenshot-'));
let gitDaemon;
let daemon;
let browser;
try {
  // A repository the sessions clone, served over git:// on 127.0.0.1 (sessions use the host network).
  const work = join(dir, 'work');
  mkdirSync(work);
  const git = (...args) => execFileSync('git', args, { cwd: work, env: GIT_ENV, stdio: 'ignore' });
  git('init', '--quiet', '--initial-branch=main');
  writeFileSync(join(work, 'README.md'), '# demo\n');
  git('add', '--all');
  git('commit', '--quiet', '-m', 'demo');
  execFileSync('git', ['clone', '--quiet', '--bare', work, join(dir, 'git', 'demo.git')], { env: GIT_ENV });
  const gitPort = await freePort();
  gitDaemon = spawn(
    'git',
    ['daemon', '--export-all', `--base-path=${join(dir, 'git')}`, '--listen=127.0.0.1', `--port=${gitPort}`],
    { detached: true, stdio: 'ignore' },
  );
  await new Promise((ok) => setTimeout(ok, 500));

  const socket = join(dir, 'agentd.sock');
  const config = join(dir, 'agentd.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      daemon: { socket, state_dir: join(dir, 'state'), stop_grace: '1s' },
      agents: [
        {
          name: 'demo',
          image: 'localhost/agentd-base:bookworm',
          command: ['sh', '-c', 'echo working; sleep 4; echo done'],
          network: 'host',
          repo: `git://127.0.0.1:${gitPort}/demo.git`,
        },
      ],
    }),
  );
  daemon = spawn(process.execPath, [CLI, 'start', '--config', config, '--inspect=0'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  followLog(daemon);
  const { url } = await waitForLog(daemon, (e) => e.event === 'inspector.listening');
  await waitForLog(daemon, (e) => e.event === 'daemon.ready');

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.setDefaultTimeout(60_000);
  await page.goto(url);
  await page.waitForSelector('[data-machine="daemon"] [data-state="ready"][data-active="true"]');

  const first = trigger(socket);
  await page.waitForSelector(`[data-session-id="${first}"][data-status="done"]`);
  const second = trigger(socket);
  await page.waitForSelector(`[data-session-id="${second}"] [data-state="run"][data-active="true"]`);
  await page.waitForTimeout(500);
  mkdirSync(dirname(OUT), { recursive: true });
  await page.screenshot({ path: OUT, fullPage: true });
  process.stdout.write(`${OUT}\n`);
} catch (error) {
  process.stderr.write(`inspector-screenshot: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await browser?.close();
  if (daemon && daemon.exitCode === null) {
    // The second SIGTERM cancels the running session; the daemon removes its containers itself.
    daemon.kill('SIGTERM');
    await new Promise((ok) => setTimeout(ok, 200));
    daemon.kill('SIGTERM');
    if (!(await exited(daemon, 30_000))) process.kill(-daemon.pid, 'SIGKILL');
  }
  if (gitDaemon?.pid) {
    try {
      process.kill(-gitDaemon.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
