/**
 * daemon.records_min_free on a real filesystem: records_dir on a tmpfs of 8 MiB that keeps half of it free.
 * The daemon removes the oldest sealed records as the newest fill it, keeps the newest ten, and every
 * session keeps its output. Before it, retention went by age, size and count only, and the records filled
 * the filesystem until outputs were lost (cbd7177: measured on a 50 MiB tmpfs). And `agentd status` on a
 * records filesystem too small for a session's output: the record that waits to be sealed is shown.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  gitAndGate,
  launchDaemon,
  prepareDaemon,
  type TestDaemon,
  writeDaemonConfig,
} from '../helpers/daemon.js';
import { track } from '../helpers/resources.js';

const { agent } = gitAndGate();
const daemons: TestDaemon[] = [];

beforeAll(() => {
  if (process.geteuid?.() !== 0) throw new Error('this test mounts a tmpfs: run it as root');
});
afterEach(async () => {
  for (const d of daemons.splice(0)) if (d.running) await d.stop();
});

const TOKEN = 'records-room-e2e-token';

/** The daemon's /metrics, as a scraper with a read token gets it. */
async function scrape(d: TestDaemon): Promise<string> {
  const listening = await d.waitForLog((l) => l.event === 'http.listening');
  const response = await fetch(`${String(listening.address)}/metrics`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(response.status).toBe(200);
  return response.text();
}

describe('records_min_free', () => {
  it('removes the oldest sealed records to keep the records filesystem half free, never the newest ten', async () => {
    const files = prepareDaemon({ agents: [] });
    const recordsDir = join(files.dir, 'records');
    mkdirSync(recordsDir, { mode: 0o700 });
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8192k,mode=0700', 'tmpfs', recordsDir]);
    expect(mounted.status, String(mounted.stderr)).toBe(0);
    track.onCleanup(() => execa('umount', ['-l', recordsDir], { reject: false }));
    writeDaemonConfig(files, {
      daemon: { records_dir: recordsDir, records_min_free: '50%', max_sessions: 1 },
      // 300 KB of output each: random, so that it takes its room.
      agents: [agent('out', ['sh', '-c', 'head -c 300000 /dev/urandom > /agentd/out/data.bin'])],
    });
    const d = launchDaemon(files);
    daemons.push(d);
    await d.ready();

    const ids: string[] = [];
    for (let i = 0; i < 14; i++) {
      const run = await d.cli(['trigger', 'out', '--json']);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      ids.push(JSON.parse(run.stdout).sessionId);
    }
    // Every session kept its output: the floor made room before the filesystem filled.
    for (const id of ids) expect(d.record(id)?.output, id).toMatchObject({ files: 1, bytes: 300000 });
    const pruned = d.logs().filter((l) => l.event === 'records.pruned');
    expect(pruned.length).toBeGreaterThan(0);
    expect(pruned.every((l) => l.reason === 'records_min_free')).toBe(true);
    const removed = pruned.flatMap((l) => l.removed as string[]);
    // The oldest went, in order; the newest ten stay.
    expect(removed).toEqual(ids.slice(0, removed.length));
    for (const id of ids.slice(-10)) expect(existsSync(join(recordsDir, 'out', id)), id).toBe(true);
    for (const id of removed) expect(existsSync(join(recordsDir, 'out', id)), id).toBe(false);
    expect(d.logs().filter((l) => l.event === 'records.room_low')).toEqual([]);
    // Half of it free again once the removed records are gone (in the background).
    await expect
      .poll(() => {
        const fs = statfsSync(recordsDir);
        return fs.bavail / fs.blocks;
      })
      .toBeGreaterThanOrEqual(0.5);
    expect(await d.stop()).toBe(0);
  });

  it('removes the oldest sealed records to keep a share of the inodes free: records of many empty files', async () => {
    const files = prepareDaemon({ agents: [] });
    const recordsDir = join(files.dir, 'records');
    mkdirSync(recordsDir, { mode: 0o700 });
    // Bytes aplenty, 2,000 inodes: 30% of them (600) kept free.
    const mounted = spawnSync('mount', [
      '-t',
      'tmpfs',
      '-o',
      'size=65536k,nr_inodes=2000,mode=0700',
      'tmpfs',
      recordsDir,
    ]);
    expect(mounted.status, String(mounted.stderr)).toBe(0);
    track.onCleanup(() => execa('umount', ['-l', recordsDir], { reject: false }));
    writeDaemonConfig(files, {
      daemon: { records_dir: recordsDir, records_min_free: '30%', max_sessions: 1 },
      agents: [agent('many', ['sh', '-c', 'cd /agentd/out && for i in $(seq 1 100); do : > f$i; done'])],
    });
    const d = launchDaemon(files);
    daemons.push(d);
    await d.ready();
    const ids: string[] = [];
    for (let i = 0; i < 16; i++) {
      const run = await d.cli(['trigger', 'many', '--json']);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      ids.push(JSON.parse(run.stdout).sessionId);
    }
    for (const id of ids) expect(d.record(id)?.output, id).toMatchObject({ files: 100 });
    const pruned = d.logs().filter((l) => l.event === 'records.pruned');
    expect(pruned.length).toBeGreaterThan(0);
    expect(pruned[0]).toMatchObject({ reason: 'records_min_free', minFreeInodes: 600 });
    const removed = pruned.flatMap((l) => l.removed as string[]);
    expect(removed).toEqual(ids.slice(0, removed.length));
    for (const id of ids.slice(-10)) expect(existsSync(join(recordsDir, 'many', id)), id).toBe(true);
    expect(
      d.logs().filter((l) => l.event === 'records.room_low' || l.event === 'session.record_unsealed'),
    ).toEqual([]);
    await expect.poll(() => statfsSync(recordsDir).ffree).toBeGreaterThanOrEqual(600);
    expect(await d.stop()).toBe(0);
  });

  it('`status` shows a record that waits to be sealed for room, and stops once it is sealed', async () => {
    const files = prepareDaemon({ agents: [] });
    const recordsDir = join(files.dir, 'records');
    mkdirSync(recordsDir, { mode: 0o700 });
    // 2 MiB: no room for an output of 3 MB.
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2048k,mode=0700', 'tmpfs', recordsDir]);
    expect(mounted.status, String(mounted.stderr)).toBe(0);
    track.onCleanup(() => execa('umount', ['-l', recordsDir], { reject: false }));
    writeDaemonConfig(files, {
      daemon: {
        records_dir: recordsDir,
        http: {
          listen: '127.0.0.1:0',
          tokens: [{ name: 'view', source: 'env:AGENTD_E2E_ROOM_TOKEN', scopes: ['read'] }],
        },
      },
      agents: [agent('big', ['sh', '-c', 'head -c 3000000 /dev/urandom > /agentd/out/big.bin'])],
    });
    const d = launchDaemon(files, { env: { AGENTD_E2E_ROOM_TOKEN: TOKEN } });
    daemons.push(d);
    await d.ready();
    const run = await d.cli(['trigger', 'big', '--json']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const id = JSON.parse(run.stdout).sessionId as string;
    const status = await d.cli(['status']);
    // Held work, not a fault: still exit 0.
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(
      new RegExp(
        `^unsealed: 1 finished session waits for its record to be sealed \\(the oldest: ${id}, ended .* ago\\)`,
        'm',
      ),
    );
    const json = JSON.parse((await d.cli(['status', '--json'])).stdout);
    expect(json.unsealed).toMatchObject({ count: 1, oldest: id, waitingMs: expect.any(Number) });
    expect(await scrape(d)).toMatch(/^agentd_records_unsealed 1$/m);

    // Room: the record is sealed at its next try, and status no longer says so.
    const grown = spawnSync('mount', ['-o', 'remount,size=16384k', recordsDir]);
    expect(grown.status, String(grown.stderr)).toBe(0);
    await d.waitForLog((l) => l.event === 'session.record_sealed' && l.session === id, 60_000);
    const after = JSON.parse((await d.cli(['status', '--json'])).stdout);
    expect(after.unsealed).toBeUndefined();
    const text = await scrape(d);
    expect(text).toMatch(/^agentd_records_unsealed 0$/m);
    expect(text).toMatch(/^agentd_records_unsealed_oldest_seconds 0$/m);
    expect(d.record(id)?.output).toMatchObject({ files: 1, bytes: 3000000 });
    expect(await d.stop()).toBe(0);
  });
});
