/**
 * A session that ends while its record cannot be sealed (the records directory's filesystem full): its
 * outcome is published once, its output and log are kept (work dir, state-dir record) and sealed into
 * its record once there is room, by the running daemon or at a later start; never a second outcome or
 * a second notification.
 */
import { execFileSync } from 'node:child_process';
import type * as fs from 'node:fs';
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createActor } from 'xstate';
import { NotifyOutbox } from '../../src/adapters/notify-outbox.js';
import { markNothingToSearch } from '../../src/adapters/output-archive.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import type { WebhookRequest } from '../../src/adapters/webhook.js';
import { checkReply } from '../../src/cli/reply-check.js';
import { unsealedLine } from '../../src/cli/status-run.js';
import { Notifier } from '../../src/daemon/notifier.js';
import { createDaemonPort } from '../../src/daemon/port.js';
import { requestOf } from '../../src/daemon/recovery.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';
import { journalOver } from '../helpers/journal-fixture.js';
import { AGENTS, Fakes, settle } from '../helpers/machine-fakes.js';

const faults = vi.hoisted(() => ({ mkdirOut: false }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const mkdirSync = ((path: fs.PathLike, options?: fs.MakeDirectoryOptions) => {
    if (faults.mkdirOut && String(path).endsWith('/out')) {
      faults.mkdirOut = false;
      throw Object.assign(new Error(`ENOSPC: no space left on device, mkdir '${path}'`), {
        code: 'ENOSPC',
        syscall: 'mkdir',
        path,
      });
    }
    return real.mkdirSync(path, options);
  }) as typeof real.mkdirSync;
  const mocked = { ...real, mkdirSync };
  return { ...mocked, default: mocked };
});

const dirs: string[] = [];
const closing: (() => unknown)[] = [];
afterEach(async () => {
  faults.mkdirOut = false;
  vi.restoreAllMocks();
  for (const close of closing.splice(0)) await close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const ID = '00000000000000f1';

/** A journal, its record keeper and a notifier with its outbox, wired as main.ts wires them. */
function daemonIn(stateDir: string, historyLimit: number) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const { store, files, keeper, journal } = journalOver(stateDir, log, historyLimit);
  const posts: WebhookRequest[] = [];
  const notifier = new Notifier({
    targets: () => [
      {
        url: 'http://127.0.0.1:9/hook',
        secret: { kind: 'env', name: 'HOOK_KEY', raw: 'env:HOOK_KEY' },
        attempts: 3,
        backoffMs: 1000,
      },
    ],
    env: { HOOK_KEY: 'whsec-test' },
    log,
    metrics: { notification: () => {}, notificationAttempt: () => {} },
    version: '9.9.9',
    outbox: new NotifyOutbox(stateDir, (operation, error) => {
      throw new Error(`${operation}: ${error}`);
    }),
    post: async (request) => {
      posts.push(request);
    },
  });
  const published: string[] = [];
  journal.onFinishing = (session, outcome) => notifier.prepare(session, outcome);
  journal.followAll((event) => {
    if (event.type !== 'outcome') return;
    published.push(event.sessionId);
    notifier.notify(event.record);
  });
  // A retry on the keeper's timer must not outlive the test's directory.
  closing.push(
    () => keeper.close(),
    () => notifier.close(0),
  );
  return { store, files, keeper, journal, notifier, posts, published, lines };
}

type Daemon = ReturnType<typeof daemonIn>;

/** The next seal fails as a filesystem with no inode left makes it fail: out/ cannot be made. */
function noRoomForNextSeal(): void {
  faults.mkdirOut = true;
}

/** A session accepted and run: its container left an archive of one file in its work dir. */
function ran(daemon: Daemon) {
  const request = {
    ...requestOf({
      version: 1,
      id: ID,
      agent: 'demo',
      repo: 'git://127.0.0.1/r.git',
      acceptedAt: new Date().toISOString(),
      phase: 'queued',
      phases: [],
    }),
  };
  daemon.journal.accept(request, 1 << 20);
  daemon.journal.phase(ID, 'running');
  const tree = mkdtempSync(join(tmpdir(), 'agentd-unsealed-out-'));
  dirs.push(tree);
  writeFileSync(join(tree, 'result.txt'), 'done\n');
  const paths = daemon.files.paths(ID);
  execFileSync('tar', ['-cf', paths.archive, '-C', tree, '.']);
  markNothingToSearch(paths.archive, paths.searched);
  return request;
}

const sealed = (dir: string) => (lstatSync(dir).mode & 0o222) === 0;

/** A first daemon: the session ends while its record cannot be sealed. */
async function endedWithNoRoom(stateDir: string, historyLimit: number) {
  const first = daemonIn(stateDir, historyLimit);
  first.journal.load(() => {});
  await first.journal.recover();
  const request = ran(first);
  noRoomForNextSeal();
  await first.journal.finish(request, { outcome: 'succeeded', phase: 'running', exitCode: 0 });
  return first;
}

describe('a session whose record cannot be sealed when it ends', () => {
  it('keeps its work dir, publishes its outcome once, and seals its record at a flush once there is room', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-unsealed-'));
    dirs.push(stateDir);
    const daemon = await endedWithNoRoom(stateDir, 0);
    const recordDir = daemon.keeper.dirOf('demo', ID);

    // The outcome is told once, at once; the output (and the log) wait in the work dir.
    expect(daemon.published).toEqual([ID]);
    await vi.waitFor(() => expect(daemon.posts).toHaveLength(1));
    expect(daemon.files.sessions()).toEqual([ID]);
    expect(existsSync(daemon.files.paths(ID).archive)).toBe(true);
    expect(sealed(recordDir)).toBe(false);
    // `show` says why there is no output yet.
    expect(daemon.journal.record(ID)).toMatchObject({
      outcome: 'succeeded',
      output: { files: 0, missing: expect.stringContaining('not in its record yet') },
    });

    // Said once, with what to do and without a stack; said again at no attempt.
    const warned = () => daemon.lines.filter((l) => l.event === 'session.record_unsealed');
    expect(warned()).toEqual([
      expect.objectContaining({
        level: 40,
        session: ID,
        code: 'ENOSPC',
        reason: expect.stringContaining('free space'),
      }),
    ]);
    expect(warned()[0]).not.toHaveProperty('err');
    expect(String(warned()[0]?.msg)).toMatch(
      /could not be sealed: .*ENOSPC.*agentd seals the record as soon as it can/,
    );
    noRoomForNextSeal();
    await daemon.keeper.retry(performance.now() + 60_000);
    expect(faults.mkdirOut).toBe(false);
    expect(warned()).toHaveLength(1);
    expect(daemon.files.sessions()).toEqual([ID]);

    // Room again: the watcher's flush seals it (its first retry is due a second after the failure).
    const now = performance.now();
    vi.spyOn(performance, 'now').mockReturnValue(now + 300_000);
    daemon.journal.flush();
    await vi.waitFor(() => expect(daemon.journal.record(ID)?.output).toMatchObject({ files: 1, bytes: 5 }));
    vi.mocked(performance.now).mockRestore();
    expect(daemon.journal.record(ID)?.output?.missing).toBeUndefined();
    expect(sealed(recordDir)).toBe(true);
    expect(readdirSync(join(recordDir, 'out'))).toEqual(['result.txt']);
    expect(new SessionStore(stateDir, sessionRecordSchema).read(ID)?.output).toMatchObject({ files: 1 });
    expect(daemon.files.sessions()).toEqual([]);
    expect(daemon.lines.filter((l) => l.event === 'session.record_sealed')).toHaveLength(1);
    // Neither a second outcome nor a second notification.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(daemon.published).toEqual([ID]);
    expect(daemon.posts).toHaveLength(1);
  });

  it('is sealed when due by the steady clock, not held up by a wall clock set back', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-unsealed-'));
    dirs.push(stateDir);
    const daemon = await endedWithNoRoom(stateDir, 100);
    expect(daemon.files.sessions()).toEqual([ID]);
    // The clock set back 2 h, while 1.5 s go by (the first attempt again is due after 1 s).
    vi.spyOn(Date, 'now').mockReturnValue(Date.now() - 2 * 3_600_000);
    vi.spyOn(performance, 'now').mockReturnValue(performance.now() + 1500);
    await daemon.keeper.retry();
    expect(daemon.journal.record(ID)?.output).toMatchObject({ files: 1, bytes: 5 });
    expect(sealed(daemon.keeper.dirOf('demo', ID))).toBe(true);
    expect(daemon.files.sessions()).toEqual([]);
  });

  it('at a stop: settled waits for a seal made again that is under way, and its record is written before', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-unsealed-'));
    dirs.push(stateDir);
    const daemon = await endedWithNoRoom(stateDir, 100);
    vi.spyOn(performance, 'now').mockReturnValue(performance.now() + 60_000);
    // The watcher's flush starts it; the daemon stops while it runs.
    daemon.journal.flush();
    daemon.keeper.close();
    await daemon.journal.settled();
    expect(daemon.journal.record(ID)?.output).toMatchObject({ files: 1, bytes: 5 });
    expect(new SessionStore(stateDir, sessionRecordSchema).read(ID)?.output).toMatchObject({ files: 1 });
    expect(daemon.files.sessions()).toEqual([]);
  });

  it('after close: a seal that fails is made again neither on the timer nor at a flush (the next start makes it)', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-unsealed-'));
    dirs.push(stateDir);
    const daemon = daemonIn(stateDir, 100);
    daemon.journal.load(() => {});
    await daemon.journal.recover();
    const request = ran(daemon);
    // A session settled on the way out, after the stop closed the keeper.
    daemon.keeper.close();
    noRoomForNextSeal();
    await daemon.journal.finish(request, { outcome: 'succeeded', phase: 'running', exitCode: 0 });
    expect(daemon.files.sessions()).toEqual([ID]);
    // Its first attempt again would be due after 1 s.
    await new Promise((resolve) => setTimeout(resolve, 1300));
    daemon.journal.flush();
    await daemon.journal.settled();
    expect(daemon.journal.record(ID)?.output?.missing).toContain('not in its record yet');
    expect(sealed(daemon.keeper.dirOf('demo', ID))).toBe(false);
    expect(daemon.files.sessions()).toEqual([ID]);
    expect(daemon.lines.filter((l) => l.event === 'session.record_sealed')).toEqual([]);
  });

  it('sealed late after history let go of it: only its work dir goes, its state-dir record is not written back', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-unsealed-'));
    dirs.push(stateDir);
    const daemon = await endedWithNoRoom(stateDir, 0);
    // The journal's history pruning (every PRUNE_EVERY outcomes) runs between the seal that succeeds
    // and the journal hearing of it: the record no longer waits, and history: 0 lets it go.
    const journal = daemon.journal as unknown as { prune(): void };
    const late = daemon.keeper.onSealedLate;
    daemon.keeper.onSealedLate = (record, output) => {
      journal.prune();
      late(record, output);
    };
    vi.spyOn(performance, 'now').mockReturnValue(performance.now() + 60_000);
    await daemon.keeper.retry();
    expect(sealed(daemon.keeper.dirOf('demo', ID))).toBe(true);
    expect(daemon.journal.has(ID)).toBe(false);
    expect(new SessionStore(stateDir, sessionRecordSchema).read(ID)).toBeUndefined();
    expect(daemon.files.sessions()).toEqual([]);
    // Its record directory keeps it, with the output.
    expect(daemon.journal.record(ID)).toMatchObject({ outcome: 'succeeded', output: { files: 1 } });
  });

  it('is recovered with its outcome at each start until its record can be sealed, never settled again (history: 0)', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-unsealed-'));
    dirs.push(stateDir);
    const first = await endedWithNoRoom(stateDir, 0);
    await vi.waitFor(() => expect(first.posts).toHaveLength(1));
    first.keeper.close();
    await first.notifier.close(0);

    // A start while there is still no room: the seal fails again; the state dir's record stays (however
    // short the history), and so does the work dir.
    const second = daemonIn(stateDir, 0);
    const { unfinished } = second.journal.load(() => {});
    expect(unfinished).toEqual([]);
    second.notifier.resume((id) => second.journal.record(id));
    noRoomForNextSeal();
    await second.journal.recover();
    expect(new SessionStore(stateDir, sessionRecordSchema).read(ID)).toMatchObject({ outcome: 'succeeded' });
    expect(second.files.sessions()).toEqual([ID]);
    expect(second.published).toEqual([]);
    second.keeper.close();
    await second.notifier.close(0);

    // A start once there is room: sealed with its output, its outcome as it was.
    const third = daemonIn(stateDir, 0);
    expect(third.journal.load(() => {}).unfinished).toEqual([]);
    third.notifier.resume((id) => third.journal.record(id));
    await third.journal.recover();
    expect(third.journal.record(ID)).toMatchObject({ outcome: 'succeeded', output: { files: 1 } });
    expect(sealed(third.keeper.dirOf('demo', ID))).toBe(true);
    expect(third.files.sessions()).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect([...second.published, ...third.published]).toEqual([]);
    expect([...second.posts, ...third.posts]).toEqual([]);
  });

  it('is recovered from its open record directory with its outcome when the state dir lost its record', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-unsealed-'));
    dirs.push(stateDir);
    const first = await endedWithNoRoom(stateDir, 100);
    await vi.waitFor(() => expect(first.posts).toHaveLength(1));
    first.keeper.close();
    await first.notifier.close(0);
    rmSync(join(stateDir, 'sessions', `${ID}.json`));

    const next = daemonIn(stateDir, 100);
    expect(next.journal.load(() => {}).unfinished).toEqual([]);
    next.notifier.resume((id) => next.journal.record(id));
    await next.journal.recover();
    expect(next.journal.record(ID)).toMatchObject({ outcome: 'succeeded', output: { files: 1 } });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(next.published).toEqual([]);
    expect(next.posts).toEqual([]);
  });
});

/**
 * `agentd status` of a daemon that holds finished sessions whose record waits to be sealed: before, it
 * said `ready` with nothing about them (measured with a real daemon whose records_dir was a full 2 MiB
 * tmpfs: a session of 3 MB of output waited unsealed, its archive in the state dir's work dir, while
 * `status` and `status --json` showed only the ready daemon), so an operator could not see the output the
 * daemon held, nor for how long.
 */
describe('the status of a daemon with records waiting to be sealed', () => {
  it('says how many wait and which ended first, and stops saying so once it is sealed', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-unsealed-'));
    dirs.push(stateDir);
    const daemon = await endedWithNoRoom(stateDir, 100);
    const actor = createActor(new Fakes().daemon(), { input: { agents: AGENTS, maxSessions: 2 } });
    actor.start();
    closing.push(() => actor.stop());
    await settle();
    const port = createDaemonPort({
      actor,
      journal: daemon.journal,
      reload: async () => {
        throw new Error('no reload here');
      },
      version: '0.0.0-test',
      instanceId: 'test',
      socket: '/tmp/none.sock',
      log: pino({ level: 'silent' }),
    });
    const finishedAt = daemon.journal.record(ID)?.finishedAt;
    expect(finishedAt).toBeDefined();
    const status = port.status();
    expect(status.state).toBe('ready');
    expect(status.unsealed).toEqual({
      count: 1,
      oldest: ID,
      oldestFinishedAt: finishedAt,
      waitingMs: expect.any(Number),
    });
    // The CLI takes it (its hand-made table) and shows it on a line of its own.
    const reply = { v: 2, type: 'status', ...status };
    expect(checkReply(reply)).toBeUndefined();
    expect(unsealedLine(status.unsealed as NonNullable<typeof status.unsealed>)).toMatch(
      new RegExp(
        `^unsealed: 1 finished session waits for its record to be sealed \\(the oldest: ${ID}, ended .* ago\\); output and logs are held in the state dir`,
      ),
    );

    // Sealed once there is room: no longer said.
    vi.spyOn(performance, 'now').mockReturnValue(performance.now() + 60_000);
    await daemon.keeper.retry();
    expect(daemon.journal.record(ID)?.output).toMatchObject({ files: 1 });
    expect(port.status().unsealed).toBeUndefined();
  });
});
