/**
 * daemon.records_min_free: retention by the free space of the records' filesystem, read through a fake
 * (DiskSpace). Before it, retention went by records_max_age, _size and _count only: measured with a real
 * daemon on a 50 MiB tmpfs (cbd7177), the records filled the filesystem, sessions' outputs were lost and the
 * daemon turned degraded, while no record was removed.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionFiles } from '../../src/adapters/session-files.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import { type MinFree, parseMinFree } from '../../src/config/resources.js';
import { SessionJournal } from '../../src/daemon/journal.js';
import { RECORDS_KEPT_FOR_ROOM, RecordKeeper } from '../../src/daemon/record-keeper.js';
import { requestOf } from '../../src/daemon/recovery.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';

const dirs: string[] = [];
const closing: (() => void)[] = [];
afterEach(() => {
  for (const close of closing.splice(0)) close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const MiB = 1024 * 1024;
const TOTAL = 100 * MiB;

/** A journal whose keeper reads the free space of a filesystem of 100 MiB from `disk.free`. */
function daemonIn(stateDir: string, minFree: MinFree | undefined) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const files = new SessionFiles(stateDir);
  const disk = { free: 50 * MiB, reads: 0, freeInodes: 0, totalInodes: 0 };
  const keeper = new RecordKeeper(
    {
      recordsDir: join(stateDir, 'records'),
      maxAgeMs: 86_400_000,
      maxBytes: 1 << 30,
      maxCount: 100_000,
      ...(minFree === undefined ? {} : { minFree }),
      space: () => {
        disk.reads++;
        return { free: disk.free, total: TOTAL, freeInodes: disk.freeInodes, totalInodes: disk.totalInodes };
      },
    },
    files,
    log,
  );
  closing.push(() => keeper.close());
  const journal = new SessionJournal(
    new SessionStore(stateDir, sessionRecordSchema),
    files,
    keeper,
    log,
    200,
  );
  journal.load(() => {});
  return { keeper, journal, lines, disk };
}

type Daemon = ReturnType<typeof daemonIn>;

function started(daemon: Daemon, id: string) {
  const request = requestOf({
    version: 1,
    id,
    agent: 'demo',
    repo: 'git://127.0.0.1/r.git',
    acceptedAt: new Date().toISOString(),
    phase: 'queued',
    phases: [],
  });
  daemon.journal.accept(request, 1 << 20);
  daemon.journal.phase(id, 'running');
  return request;
}

async function ran(daemon: Daemon, id: string): Promise<void> {
  const request = started(daemon, id);
  await daemon.journal.finish(request, { outcome: 'succeeded', phase: 'running', exitCode: 0 });
  await daemon.keeper.settled();
}

const idOf = (i: number) => i.toString(16).padStart(16, '0');

describe('records_min_free', () => {
  it('removes the oldest sealed records while the filesystem has less free, never the newest nor an open one', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-room-'));
    dirs.push(stateDir);
    const daemon = daemonIn(stateDir, { percent: 10 });
    await daemon.journal.recover();
    // The oldest session still runs: its record is open.
    started(daemon, idOf(0));
    for (let i = 1; i <= 20; i++) await ran(daemon, idOf(i));
    const exists = (i: number) => existsSync(daemon.keeper.dirOf('demo', idOf(i)));
    // 50 MiB free, more than the floor of 10 MiB: nothing goes.
    expect(daemon.disk.reads).toBeGreaterThan(0);
    expect(daemon.lines.filter((l) => l.event === 'records.pruned')).toEqual([]);

    // 1 byte short of the floor: the oldest sealed record makes it up, and only it.
    daemon.disk.free = 10 * MiB - 1;
    daemon.keeper.keepRoom();
    expect(exists(1)).toBe(false);
    expect(exists(2)).toBe(true);
    expect(exists(0)).toBe(true);
    expect(daemon.lines.filter((l) => l.event === 'records.pruned')).toEqual([
      expect.objectContaining({
        reason: 'records_min_free',
        count: 1,
        removed: [idOf(1)],
        minFree: 10 * MiB,
      }),
    ]);
    // Its room counts as free while it is removed in the background: asked again, nothing more goes.
    daemon.keeper.keepRoom();
    expect(exists(2)).toBe(true);

    // Nothing free: every sealed record but the newest ten, and never the running session's.
    daemon.disk.free = 0;
    daemon.keeper.keepRoom();
    const kept = Array.from({ length: 21 }, (_, i) => i).filter(exists);
    expect(kept).toEqual([0, ...Array.from({ length: RECORDS_KEPT_FOR_ROOM }, (_, i) => 11 + i)]);
    // Told once that the floor cannot be reached, with what to do.
    const low = () => daemon.lines.filter((l) => l.event === 'records.room_low');
    expect(low()).toEqual([expect.objectContaining({ level: 40, kept: RECORDS_KEPT_FOR_ROOM })]);
    expect(String(low()[0]?.msg)).toMatch(/less than daemon.records_min_free \(10%: 10240 KiB\).*Free space/);
    daemon.keeper.keepRoom();
    expect(low()).toHaveLength(1);
    // Room again, then short again: said again.
    daemon.disk.free = 50 * MiB;
    daemon.keeper.keepRoom();
    daemon.disk.free = 0;
    daemon.keeper.keepRoom();
    expect(low()).toHaveLength(2);
  });

  it('keeps as many inodes free as its share says: records of many files use them up before the bytes', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-room-'));
    dirs.push(stateDir);
    const daemon = daemonIn(stateDir, { percent: 10 });
    // 10,000 inodes, 1,000 of them free: the floor exactly.
    Object.assign(daemon.disk, { totalInodes: 10_000, freeInodes: 1000 });
    await daemon.journal.recover();
    for (let i = 1; i <= 12; i++) await ran(daemon, idOf(i));
    expect(daemon.lines.filter((l) => l.event === 'records.pruned')).toEqual([]);
    // 5 inodes short, bytes aplenty: the oldest go until their inodes (directories and files) make it up.
    daemon.disk.freeInodes = 995;
    daemon.keeper.keepRoom();
    const pruned = daemon.lines.filter((l) => l.event === 'records.pruned');
    expect(pruned).toEqual([
      expect.objectContaining({
        reason: 'records_min_free',
        removed: [idOf(1), idOf(2)].slice(0, Number(pruned[0]?.count)),
        minFreeInodes: 1000,
        freeInodes: 995,
      }),
    ]);
    expect(Number(pruned[0]?.inodes)).toBeGreaterThanOrEqual(5);
    expect(existsSync(daemon.keeper.dirOf('demo', idOf(1)))).toBe(false);
    expect(existsSync(daemon.keeper.dirOf('demo', idOf(3)))).toBe(true);
    // A size floor keeps bytes only (a filesystem without a fixed number of inodes says 0 of 0 anyway).
    const sized = daemonIn(mkdtempSync(join(tmpdir(), 'agentd-room-')), { bytes: MiB });
    dirs.push(join(sized.keeper.dirOf('demo', idOf(1)), '..', '..', '..'));
    Object.assign(sized.disk, { totalInodes: 10_000, freeInodes: 0 });
    await sized.journal.recover();
    for (let i = 1; i <= 12; i++) await ran(sized, idOf(i));
    expect(sized.lines.filter((l) => l.event === 'records.pruned')).toEqual([]);
  });

  it('runs after every seal, and not at all without a floor', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-room-'));
    dirs.push(stateDir);
    const daemon = daemonIn(stateDir, { bytes: 20 * MiB });
    await daemon.journal.recover();
    for (let i = 1; i <= 12; i++) await ran(daemon, idOf(i));
    daemon.disk.free = 19 * MiB;
    // The next seal applies it: the oldest, beyond the newest ten, make up the 1 MiB.
    await ran(daemon, idOf(13));
    const pruned = daemon.lines.filter((l) => l.event === 'records.pruned');
    expect(pruned).toEqual([expect.objectContaining({ reason: 'records_min_free' })]);
    expect(existsSync(daemon.keeper.dirOf('demo', idOf(1)))).toBe(false);
    expect(existsSync(daemon.keeper.dirOf('demo', idOf(13)))).toBe(true);

    const off = daemonIn(mkdtempSync(join(tmpdir(), 'agentd-room-')), undefined);
    dirs.push(join(off.keeper.dirOf('demo', idOf(1)), '..', '..', '..'));
    await off.journal.recover();
    off.disk.free = 0;
    for (let i = 1; i <= 12; i++) await ran(off, idOf(i));
    expect(off.disk.reads).toBe(0);
    expect(existsSync(off.keeper.dirOf('demo', idOf(1)))).toBe(true);
  });

  it('reads no free space when it is 0 (off, the default), and once a seal when it is set', async () => {
    // `0` (the default), `0%` and `0g` are { bytes: 0 }, `0.0%` is { percent: 0 }: each keeps no floor.
    for (const minFree of [parseMinFree('0'), parseMinFree('0.0%'), parseMinFree(0)] as MinFree[]) {
      const off = daemonIn(mkdtempSync(join(tmpdir(), 'agentd-room-')), minFree);
      dirs.push(join(off.keeper.dirOf('demo', idOf(1)), '..', '..', '..'));
      await off.journal.recover();
      for (let i = 1; i <= 5; i++) await ran(off, idOf(i));
      off.keeper.keepRoom();
      expect(off.disk.reads, JSON.stringify(minFree)).toBe(0);
    }
    const on = daemonIn(mkdtempSync(join(tmpdir(), 'agentd-room-')), parseMinFree('1%'));
    dirs.push(join(on.keeper.dirOf('demo', idOf(1)), '..', '..', '..'));
    await on.journal.recover();
    const atStart = on.disk.reads;
    for (let i = 1; i <= 5; i++) await ran(on, idOf(i));
    expect(on.disk.reads - atStart).toBe(5);
  });
});
