/**
 * A reload of a configuration near its 4 MiB bound (MAX_CONFIG_BYTES) is read and checked in a thread of
 * its own (src/daemon/reload-thread.ts, dist's reload-worker.js): the daemon answers meanwhile. In the
 * daemon's thread it held the event loop for the whole parse (5 to 10 s here): not one `status` was
 * answered until the reload's reply. A stop while the thread reads ends the reload: nothing changes.
 * Counts only, no times: the status requests answered while the reload is under way.
 */
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_CONFIG_BYTES } from '../../src/config/config-file.js';
import { MAX_AGENTS } from '../../src/config/load.js';
import { launchDaemon, leftoversOfDaemons, prepareDaemon, type TestDaemon } from '../helpers/daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll } from '../helpers/resources.js';

afterEach(async () => {
  const left = await leftoversOfDaemons();
  await cleanupAll();
  expect(left, 'podman objects the test daemons left behind').toEqual([]);
});

/**
 * A daemon whose file holds as many agents of 16 lines as fit in 4 MiB less 64 KiB and MAX_AGENTS allows
 * (10,000: the 16th line, a note, fills the file as 12,000 agents of 15 lines did before that bound).
 */
async function largeDaemon(): Promise<{ daemon: TestDaemon; agents: number; bytes: number }> {
  const files = prepareDaemon({ agents: [] });
  let text = `daemon:\n  socket: ${files.socketPath}\n  state_dir: ${files.stateDir}\n  stop_grace: 2s\nagents:\n`;
  let agents = 0;
  for (;;) {
    const entry = `  - name: agent-${agents}\n    image: ${TEST_IMAGE}\n    network: none\n    command: [sh, -c, 'echo hello from agent ${agents}; exit 0']\n    timeout: 10m\n    env:\n      LOG_LEVEL: debug\n      WHO: agent-${agents}\n      MODE: review\n      NOTE: reviews the change it is given and says what it found\n    resources:\n      memory: 512m\n      cpus: 1\n      pids: 256\n    exit_codes:\n      3: nothing_ready\n`;
    if (agents === MAX_AGENTS || text.length + entry.length > MAX_CONFIG_BYTES - 65_536) break;
    text += entry;
    agents++;
  }
  writeFileSync(files.configPath, text);
  const daemon = launchDaemon(files);
  await daemon.ready(180_000);
  return { daemon, agents, bytes: text.length };
}

interface Exchange {
  /** The reload's reply. */
  reply: Promise<Record<string, unknown> | undefined>;
  /** Status replies that came before it. */
  answered: () => number;
  close: () => void;
}

/** Sends a reload, then a status 20 ms after each answer, on the same connection, until the reload is answered. */
function reloadWhilePinging(socketPath: string): Exchange {
  const socket: Socket = connect(socketPath);
  const lines = createInterface({ input: socket });
  let answered = 0;
  let timer: NodeJS.Timeout | undefined;
  let n = 0;
  let done = false;
  // The daemon that stops closes the connection.
  socket.on('error', () => {});
  const ping = () =>
    !done && socket.write(`${JSON.stringify({ v: 2, id: `status-${n++}`, type: 'status' })}\n`);
  const reply = new Promise<Record<string, unknown> | undefined>((resolve) => {
    lines.on('line', (line) => {
      const message = JSON.parse(line) as Record<string, unknown>;
      if (message.id === 'reload') {
        done = true;
        clearTimeout(timer);
        resolve(message);
      } else if (message.type === 'status') {
        answered++;
        timer = setTimeout(ping, 20);
      }
    });
    lines.once('close', () => resolve(undefined));
  });
  socket.write(`${JSON.stringify({ v: 2, id: 'reload', type: 'reload' })}\n`);
  timer = setTimeout(ping, 20);
  return {
    reply,
    answered: () => answered,
    close: () => {
      done = true;
      clearTimeout(timer);
      socket.destroy();
    },
  };
}

describe('a reload of a 4 MiB configuration', () => {
  it('leaves the daemon answering while the file is read, and then applies it', async () => {
    const { daemon, agents, bytes } = await largeDaemon();
    expect(agents).toBe(MAX_AGENTS);
    expect(bytes).toBeGreaterThan(MAX_CONFIG_BYTES * 0.9);
    const exchange = reloadWhilePinging(daemon.socketPath);
    const reply = await exchange.reply;
    const answered = exchange.answered();
    exchange.close();
    expect(reply).toMatchObject({
      type: 'reloaded',
      added: [],
      changed: [],
      removed: [],
      counts: { agents, added: 0, changed: 0, removed: 0 },
    });
    // The first 20 names, not all of them (a reply of 160 KB for this file).
    expect(reply?.agents).toEqual(Array.from({ length: 20 }, (_, i) => `agent-${i}`));
    expect(JSON.stringify(reply).length).toBeLessThan(4_096);
    // In the daemon's thread: none.
    expect(answered).toBeGreaterThanOrEqual(10);
    // It is still the daemon it was: a second reload applies the same file.
    expect(await daemon.request({ type: 'reload' })).toMatchObject({ type: 'reloaded', changed: [] });
    expect(await daemon.stop()).toBe(0);
  }, 600_000);

  it('is ended by a stop: the reload is refused, nothing changes, and the daemon stops', async () => {
    const { daemon } = await largeDaemon();
    const exchange = reloadWhilePinging(daemon.socketPath);
    await daemon.waitForLog((line) => line.event === 'daemon.reloading');
    daemon.signal('SIGTERM');
    const reply = await exchange.reply;
    exchange.close();
    expect(reply).toMatchObject({ type: 'reload_failed' });
    expect(reply?.message).toMatch(/the daemon is stopping/);
    expect(await daemon.waitForExit()).toBe(0);
    expect(daemon.logs().filter((line) => line.event === 'daemon.reloaded')).toEqual([]);
  }, 600_000);
});
