/**
 * An exception nobody caught in the daemon's process (logUncaught, src/daemon/uncaught.ts), as a real
 * process on the built modules: the JSON log says `daemon.crashed` with why before Node ends the
 * process as it always does (its stack on stderr, exit code 1); the same for a promise rejection nobody
 * handled: a process that installs it as `agentd start` does, and a real `agentd start` whose process
 * is made to throw from outside its code (a module preloaded with NODE_OPTIONS).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { gitAndGate, leftoversAfterCleanup, startDaemon } from '../helpers/daemon.js';
import { makeTempDir } from '../helpers/resources.js';

const { agent } = gitAndGate();

afterEach(async () => {
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

const DIST = join(import.meta.dirname, '..', '..', 'dist');

function crash(how: string): Promise<{ code: number | null; stderr: string }> {
  const script = `
    const { createLogger } = await import(${JSON.stringify(pathToFileURL(join(DIST, 'adapters', 'logger.js')).href)});
    const { logUncaught } = await import(${JSON.stringify(pathToFileURL(join(DIST, 'daemon', 'uncaught.js')).href)});
    const log = await createLogger('json', 'info');
    logUncaught(log);
    log.info({ event: 'test.before' }, 'before');
    ${how}
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

function crashedLine(stderr: string): Record<string, unknown> | undefined {
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const parsed = JSON.parse(line) as Record<string, unknown>;
    if (parsed.event === 'daemon.crashed') return parsed;
  }
  return undefined;
}

describe('an exception nobody caught in the daemon process', () => {
  it('is logged as daemon.crashed (fatal, with why) and the process ends as Node ends it: stack, exit 1', async () => {
    const { code, stderr } = await crash(
      `setTimeout(() => { throw Object.assign(new Error('write EPIPE in a timer'), { code: 'EPIPE' }); }, 10);`,
    );
    expect(code).toBe(1);
    expect(crashedLine(stderr)).toMatchObject({
      level: 60,
      event: 'daemon.crashed',
      origin: 'uncaughtException',
      reason: 'write EPIPE in a timer',
      code: 'EPIPE',
      msg: expect.stringContaining('restart it (the next start recovers its sessions)'),
    });
    // Node's own report after it, unchanged.
    expect(stderr.indexOf('"daemon.crashed"')).toBeLessThan(
      stderr.lastIndexOf('Error: write EPIPE in a timer'),
    );
  });

  it('a promise rejection nobody handled: the same, with its origin', async () => {
    const { code, stderr } = await crash(`Promise.reject(new Error('no handler'));`);
    expect(code).toBe(1);
    expect(crashedLine(stderr)).toMatchObject({
      event: 'daemon.crashed',
      origin: 'unhandledRejection',
      reason: 'no handler',
      msg: expect.stringContaining('a promise rejection nobody handled: no handler'),
    });
  });

  it('`agentd start` has it: the daemon, up, then an exception in a timer of its process', async () => {
    const dir = makeTempDir('agentd-uncaught-');
    const trip = join(dir, 'trip');
    const preload = join(dir, 'throw.mjs');
    // Throws once the test writes the trip file: after the daemon is ready, from a timer of its process.
    writeFileSync(
      preload,
      `import { existsSync } from 'node:fs';
const timer = setInterval(() => {
  if (!existsSync(${JSON.stringify(trip)})) return;
  clearInterval(timer);
  throw new Error('tripped from outside');
}, 50);
timer.unref();
`,
    );
    const d = await startDaemon(
      { agents: [agent('demo', ['true'])] },
      { env: { NODE_OPTIONS: `--import ${pathToFileURL(preload).href}` } },
    );
    writeFileSync(trip, '');
    expect(await d.waitForExit(30_000)).toBe(1);
    expect(d.logs().find((l) => l.event === 'daemon.crashed')).toMatchObject({
      level: 60,
      origin: 'uncaughtException',
      reason: 'tripped from outside',
    });
    expect(d.stderr()).toContain('Error: tripped from outside');
  });
});
