import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NotifyOutbox } from '../../src/adapters/notify-outbox.js';
import { markNothingToSearch } from '../../src/adapters/output-archive.js';
import { SessionFiles, StagedFilesFullError } from '../../src/adapters/session-files.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import type { WebhookRequest } from '../../src/adapters/webhook.js';
import { SessionJournal } from '../../src/daemon/journal.js';
import { Notifier } from '../../src/daemon/notifier.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import { requestOf } from '../../src/daemon/recovery.js';
import { type SessionRecord, sessionRecordSchema } from '../../src/sessions/records.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function journalIn(
  stateDir: string,
  historyLimit: number,
  maxStagedBytes?: number,
  log: pino.Logger = pino({ level: 'silent' }),
) {
  const store = new SessionStore(stateDir, sessionRecordSchema);
  const files = new SessionFiles(stateDir, maxStagedBytes);
  const keeper = new RecordKeeper(
    { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
    files,
    log,
  );
  return { store, files, keeper, journal: new SessionJournal(store, files, keeper, log, historyLimit) };
}

function finished(i: number): SessionRecord {
  const at = (s: number) => new Date(Date.UTC(2026, 10, 26, 8, i, s)).toISOString();
  return {
    version: 1,
    id: `00000000000000${String(i).padStart(2, '0')}`,
    agent: 'demo',
    repo: 'git://127.0.0.1/r.git',
    acceptedAt: at(0),
    finishedAt: at(30),
    phase: 'finished',
    phases: [{ phase: 'queued', at: at(0) }],
    outcome: 'succeeded',
  };
}

describe('SessionJournal at start', () => {
  it('keeps daemon.history finished records from the start on, in memory and in the state dir', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const earlier = journalIn(stateDir, 100);
    for (let i = 1; i <= 5; i++) earlier.store.put(finished(i));
    const running: SessionRecord = { ...finished(6), phase: 'running' };
    delete running.outcome;
    delete running.finishedAt;
    earlier.store.put(running);

    const { journal } = journalIn(stateDir, 2);
    const pruned: string[] = [];
    journal.onPruned = (ids) => pruned.push(...ids);
    const { unfinished } = journal.load(() => {});
    expect(unfinished.map((r) => r.id)).toEqual([running.id]);
    await journal.recover();

    // The three oldest finished are gone; the newest two and the unfinished one stay.
    expect(pruned.sort()).toEqual([1, 2, 3].map((i) => finished(i).id));
    expect(journal.history({ limit: 100 }).sessions.map((r) => r.id)).toEqual([
      running.id,
      finished(5).id,
      finished(4).id,
    ]);
    expect(
      readdirSync(join(stateDir, 'sessions'))
        .filter((f) => f.endsWith('.json'))
        .sort(),
    ).toEqual([4, 5, 6].map((i) => `${finished(i).id}.json`));
  });
});

describe('SessionJournal at start, with files staged by the daemon before', () => {
  it('counts the staged files of the sessions it goes on with against what all staged files may take', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const limit = 3 * 1024 * 1024;
    const payload = {
      request: Buffer.alloc(1024 * 1024, 'r'),
      inputs: [{ name: 'data.bin', bytes: Buffer.alloc(1024 * 1024, 'i') }],
    };
    const earlier = journalIn(stateDir, 100);
    const queued: SessionRecord = { ...finished(1), phase: 'queued' };
    delete queued.outcome;
    delete queued.finishedAt;
    earlier.store.put(queued);
    await earlier.files.stage(queued.id, payload);
    // A finished session's files are removed at the start, and are not counted.
    earlier.store.put(finished(2));
    await earlier.files.stage(finished(2).id, payload);

    const next = journalIn(stateDir, 100, limit);
    next.journal.load(() => {});
    const listed = vi.spyOn(next.files, 'sessions');
    await next.journal.recover();
    // The work dir is read once for all of recovery (journal and record keeper).
    expect(listed).toHaveBeenCalledOnce();
    listed.mockRestore();
    expect(next.files.sessions()).toEqual([queued.id]);
    // 2 MiB of the 3 are the queued session's: another 2 MiB would pass the bound.
    await expect(next.files.stage('00000000000000aa', payload)).rejects.toThrow(StagedFilesFullError);
    // Once it has run, its room is free again.
    next.files.remove(queued.id);
    await next.files.stage('00000000000000aa', payload);
  });
});

describe('SessionJournal settling many sessions at once', () => {
  it('keeps the newest daemon.history finished records, pruned every 20 outcomes', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const { journal } = journalIn(stateDir, 3);
    journal.load(() => {});
    await journal.recover();
    const pruned: string[] = [];
    journal.onPruned = (ids) => pruned.push(...ids);
    // 45 sessions of an earlier daemon, rebuilt from their containers: 40 settled one after the other (as
    // a restart settles them), 5 left unfinished.
    const records = Array.from({ length: 45 }, (_, i): SessionRecord => {
      const { finishedAt: _f, outcome: _o, ...rest } = finished(i);
      return { ...rest, id: i.toString(16).padStart(16, '0'), phase: 'creating' };
    });
    for (const r of records) journal.rebuilt(r);
    // One millisecond apart, so that which are newest is plain.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      let now = Date.parse('2026-12-02T00:00:00.000Z');
      for (const r of records.slice(0, 40)) {
        vi.setSystemTime(now++);
        await journal.finish(requestOf(r), { outcome: 'abandoned', phase: 'creating', message: 'gone' });
      }
    } finally {
      vi.useRealTimers();
    }
    const ids = (list: SessionRecord[]) => list.map((r) => r.id).sort();
    const kept = ids([...records.slice(37, 40), ...records.slice(40)]);
    expect(
      readdirSync(join(stateDir, 'sessions'))
        .filter((n) => n.endsWith('.json'))
        .map((n) => n.slice(0, -'.json'.length))
        .sort(),
    ).toEqual(kept);
    expect(pruned.sort()).toEqual(ids(records.slice(0, 37)));
    expect(records.map((r) => journal.has(r.id))).toEqual(records.map((r) => kept.includes(r.id)));
    expect(journal.recent(10).map((r) => r.id)).toEqual(
      records
        .slice(37, 40)
        .map((r) => r.id)
        .reverse(),
    );
  });
});

describe('SessionJournal durations across a clock set back', () => {
  afterEach(() => vi.useRealTimers());

  it("records a session's duration by the steady clock, or at least its phases' timings, never negative", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const { journal } = journalIn(stateDir, 100);
    journal.load(() => {});
    await journal.recover();
    const queued = (i: number): SessionRecord => {
      const { finishedAt: _f, outcome: _o, ...rest } = finished(i);
      return { ...rest, phase: 'queued' };
    };
    const timings = { creating: 1000, running: 5000, tearing_down: 500 };
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.parse('2026-12-02T10:00:00.000Z'));
    // Started in this process: timed by the steady clock.
    const here = queued(1);
    journal.rebuilt(here);
    journal.phase(here.id, 'resolving');
    // Started by an earlier daemon (adopted): its wall-clock start is all there is.
    const earlier: SessionRecord = { ...queued(2), phase: 'running', startedAt: '2026-12-02T10:00:00.000Z' };
    journal.rebuilt(earlier);
    // The clock is set back two hours.
    vi.setSystemTime(Date.parse('2026-12-02T08:00:00.000Z'));
    await journal.finish(requestOf(here), { outcome: 'succeeded', phase: 'running', timings });
    await journal.finish(requestOf(earlier), { outcome: 'succeeded', phase: 'running', timings });
    const took = (id: string) => journal.history({ limit: 10 }).sessions.find((r) => r.id === id)?.durationMs;
    expect(took(here.id)).toBeGreaterThanOrEqual(0);
    expect(took(here.id)).toBeLessThan(60_000);
    expect(took(earlier.id)).toBe(6500);
    await journal.settled();
  });
});

/** A journal and a notifier with its outbox, wired as main.ts wires them; the POSTs it makes, all taken. */
function daemonIn(stateDir: string) {
  const daemon = journalIn(stateDir, 100);
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
    log: pino({ level: 'silent' }),
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
  daemon.journal.onFinishing = (session, outcome) => notifier.prepare(session, outcome);
  daemon.journal.followAll((event) => {
    if (event.type !== 'outcome') return;
    published.push(event.sessionId);
    notifier.notify(event.record);
  });
  return { ...daemon, notifier, posts, published };
}

describe('SessionJournal: the session.outcome log line', () => {
  it('is logged once for a session whose daemon died while sealing its record, by the start that completes it', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const lines: { event?: string; session?: string; outcome?: string; exitCode?: number }[] = [];
    const logger = () =>
      pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const outcomesOf = (id: string) => lines.filter((l) => l.event === 'session.outcome' && l.session === id);
    const earlier = journalIn(stateDir, 100, undefined, logger());
    earlier.journal.load(() => {});
    await earlier.journal.recover();
    const accept = (i: number) => {
      const request = { ...requestOf(finished(i)), acceptedAt: new Date().toISOString() };
      earlier.journal.accept(request, 1 << 20);
      return request;
    };
    const done = accept(1);
    const cut = accept(2);
    await earlier.journal.finish(done, { outcome: 'succeeded', phase: 'running', exitCode: 0 });
    expect(outcomesOf(done.sessionId)).toHaveLength(1);
    // Killed while it seals the record: the state dir's record says finished, nothing logged it.
    const sealing: string[] = [];
    earlier.keeper.seal = async (record) => {
      sealing.push(record.id);
      return new Promise(() => {});
    };
    void earlier.journal.finish(cut, { outcome: 'failed', phase: 'running', exitCode: 7 });
    await vi.waitFor(() => expect(sealing).toEqual([cut.sessionId]));
    expect(outcomesOf(cut.sessionId)).toEqual([]);

    const next = journalIn(stateDir, 100, undefined, logger());
    next.journal.load(() => {});
    await next.journal.recover();
    expect(outcomesOf(cut.sessionId)).toMatchObject([{ outcome: 'failed', exitCode: 7 }]);
    expect(outcomesOf(done.sessionId)).toHaveLength(1);
    // A later start logs neither again.
    const third = journalIn(stateDir, 100, undefined, logger());
    third.journal.load(() => {});
    await third.journal.recover();
    expect(outcomesOf(cut.sessionId)).toHaveLength(1);
    expect(outcomesOf(done.sessionId)).toHaveLength(1);
  });
});

describe('SessionJournal while a session tears down', () => {
  it('keeps the decided outcome in the record until the outcome is recorded, for a restarted daemon', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const { journal, store } = journalIn(stateDir, 100);
    journal.load(() => {});
    await journal.recover();
    const { finishedAt: _f, outcome: _o, ...rest } = finished(1);
    journal.rebuilt({ ...rest, phase: 'queued' });
    journal.phase(rest.id, 'creating');
    const decided = {
      outcome: 'cancelled' as const,
      phase: 'creating' as const,
      message: 'session cancelled while creating',
    };
    journal.phase(rest.id, 'tearing_down', undefined, decided);
    // What a daemon killed now leaves in the state dir, read back as recovery reads it.
    expect(store.read(rest.id)).toMatchObject({ phase: 'tearing_down', decided });
    await journal.finish(requestOf(store.read(rest.id) as SessionRecord), { ...decided, timings: {} });
    const record = journal.history({ limit: 10 }).sessions.find((r) => r.id === rest.id);
    expect(record).toMatchObject({ outcome: 'cancelled', phase: 'finished' });
    expect(record).not.toHaveProperty('decided');
    expect(record).not.toHaveProperty('exitCode');
    await journal.settled();
  });
});

describe("SessionJournal saying when a session's container call starts", () => {
  it('writes it before the call, at creating or with it, and forgets it when requeued or finished', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const { journal, store } = journalIn(stateDir, 100);
    journal.load(() => {});
    await journal.recover();
    // With secrets: creating says the call is not started (a restarted daemon may run it again), then it is.
    const { finishedAt: _f, outcome: _o, ...one } = finished(3);
    journal.rebuilt({ ...one, phase: 'queued' });
    journal.phase(one.id, 'resolving', 'local');
    journal.phase(one.id, 'creating');
    expect(store.read(one.id)).toMatchObject({ phase: 'creating', containerCallStarted: false });
    journal.containerCall(one.id);
    expect(store.read(one.id)).toMatchObject({ phase: 'creating', containerCallStarted: true });
    journal.requeued(one.id);
    expect(store.read(one.id)).not.toHaveProperty('containerCallStarted');
    // No secret to make: the call comes in the step that enters creating, whose own write (a microtask
    // later) comes after the call's spawn; the record says both before it, and the phase once.
    const { finishedAt: _g, outcome: _p, ...two } = finished(4);
    journal.rebuilt({ ...two, phase: 'queued' });
    journal.phase(two.id, 'resolving', 'local');
    journal.containerCall(two.id);
    journal.phase(two.id, 'creating');
    const written = store.read(two.id);
    expect(written).toMatchObject({ phase: 'creating', containerCallStarted: true });
    expect(written?.phases.map((p) => p.phase)).toEqual(['queued', 'resolving', 'creating']);
    await journal.finish(requestOf(written as SessionRecord), {
      outcome: 'succeeded',
      phase: 'running',
      timings: {},
    });
    expect(store.read(two.id)).toMatchObject({ phase: 'finished' });
    expect(store.read(two.id)).not.toHaveProperty('containerCallStarted');
    await journal.settled();
  });
});

describe('SessionJournal rebuilding a record from its record directory', () => {
  it("does not take the copy's word that the container's call was not started: it is written behind", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const earlier = journalIn(stateDir, 100);
    earlier.journal.load(() => {});
    await earlier.journal.recover();
    const { finishedAt: _f, outcome: _o, ...one } = finished(5);
    earlier.journal.accept(requestOf({ ...one, phase: 'queued' }), 1 << 20);
    earlier.journal.phase(one.id, 'resolving', 'local');
    earlier.journal.phase(one.id, 'creating');
    await earlier.journal.settled();
    // The state dir's record is gone (deleted, or quarantined); its record directory says creating.
    rmSync(join(stateDir, 'sessions', `${one.id}.json`));
    const later = journalIn(stateDir, 100);
    const { unfinished } = later.journal.load(() => {});
    expect(unfinished.map((r) => [r.id, r.phase])).toEqual([[one.id, 'creating']]);
    expect(unfinished[0]).not.toHaveProperty('containerCallStarted');
    expect(later.store.read(one.id)).not.toHaveProperty('containerCallStarted');
    await later.journal.recover();
    await later.journal.settled();
  });
});

describe('SessionJournal requeuing a session an earlier daemon was resolving', () => {
  it('records it queued again, with no start and no host, so that it starts afresh', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const { journal, store } = journalIn(stateDir, 100);
    journal.load(() => {});
    await journal.recover();
    const { finishedAt: _f, outcome: _o, ...rest } = finished(2);
    // As a daemon before 2026-12-07 wrote it (resolving is no longer written to the state dir).
    journal.rebuilt({
      ...rest,
      phase: 'resolving',
      phases: [...rest.phases, { phase: 'resolving', at: rest.acceptedAt }],
      startedAt: rest.acceptedAt,
      host: 'local',
    });
    journal.requeued(rest.id);
    const record = store.read(rest.id);
    expect(record).toMatchObject({ phase: 'queued' });
    expect(record?.phases.map((p) => p.phase)).toEqual(['queued', 'resolving', 'queued']);
    expect(record).not.toHaveProperty('startedAt');
    expect(record).not.toHaveProperty('host');
    await journal.settled();
  });
});

describe('SessionJournal at resolving', () => {
  it('writes no record to the state dir (recovery takes it for queued); creating carries it', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const { journal, store } = journalIn(stateDir, 100);
    journal.load(() => {});
    await journal.recover();
    const { finishedAt: _f, outcome: _o, ...one } = finished(7);
    journal.accept(requestOf({ ...one, phase: 'queued' }), 1 << 20);
    const file = join(stateDir, 'sessions', `${one.id}.json`);
    const accepted = readFileSync(file, 'utf8');
    journal.phase(one.id, 'resolving', 'local');
    // The state dir's record is the accepted one, untouched; status and history see resolving.
    expect(readFileSync(file, 'utf8')).toBe(accepted);
    expect(journal.record(one.id)).toMatchObject({ phase: 'resolving', host: 'local' });
    journal.phase(one.id, 'creating');
    const written = store.read(one.id);
    expect(written).toMatchObject({ phase: 'creating', host: 'local', containerCallStarted: false });
    expect(written?.phases.map((p) => p.phase)).toEqual(['queued', 'resolving', 'creating']);
    expect(written?.startedAt).toBe(written?.phases[1]?.at);
    await journal.settled();
  });
});

describe('SessionJournal at start, after a stop cut a seal short', () => {
  it('writes the output summary of the records it completes into the state dir, then publishes their outcomes and sends their webhooks', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const earlier = daemonIn(stateDir);
    earlier.journal.load(() => {});
    await earlier.journal.recover();
    /** A running session whose container left an archive of one file in its work dir. */
    const ran = (i: number, searched: boolean) => {
      const record = finished(i);
      const request = { ...requestOf(record), acceptedAt: new Date().toISOString() };
      earlier.journal.accept(request, 1 << 20);
      const tree = mkdtempSync(join(tmpdir(), 'agentd-journal-out-'));
      dirs.push(tree);
      writeFileSync(join(tree, 'result.txt'), 'done\n');
      const paths = earlier.files.paths(record.id);
      execFileSync('tar', ['-cf', paths.archive, '-C', tree, '.']);
      if (searched) markNothingToSearch(paths.archive, paths.searched);
      return request;
    };
    const clean = ran(1, true);
    const unsearched = ran(2, false);
    const sealedOnly = ran(3, true);
    const published = ran(4, true);
    await earlier.journal.finish(published, { outcome: 'succeeded', phase: 'running' });
    await vi.waitFor(() => expect(earlier.posts).toHaveLength(1));

    // The daemon is killed while it unpacks two archives (an agent can make that take a while), and
    // after the third's seal, before the state dir had its summary: none of their outcomes was published.
    const seal = earlier.keeper.seal.bind(earlier.keeper);
    const sealing: string[] = [];
    earlier.keeper.seal = async (record, logFile) => {
      if (record.id === sealedOnly.sessionId) await seal(record, logFile);
      sealing.push(record.id);
      return new Promise(() => {});
    };
    for (const request of [clean, unsearched, sealedOnly])
      void earlier.journal.finish(request, { outcome: 'failed', phase: 'running', exitCode: 1 });
    await vi.waitFor(() => expect(sealing).toHaveLength(3));
    expect(earlier.published).toEqual([published.sessionId]);
    const deliveries = new Map(
      [clean, unsearched, sealedOnly].map(({ sessionId }) => [
        sessionId,
        (
          JSON.parse(readFileSync(join(stateDir, 'notify', `${sessionId}.json`), 'utf8')) as {
            targets: { delivery: string }[];
          }
        ).targets[0]?.delivery,
      ]),
    );

    const next = daemonIn(stateDir);
    next.journal.load(() => {});
    next.notifier.resume((id) => next.journal.record(id));
    // Not sent from the record as the state dir had it, without its output.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(next.posts).toEqual([]);
    await next.journal.recover();

    const withheld =
      'withheld: the output archive was not searched for credential values (a daemon stopped before it could be, or the search failed)';
    const expected = {
      [clean.sessionId]: { files: 1, truncated: false, skipped: 0 },
      [unsearched.sessionId]: { files: 0, missing: withheld },
      [sealedOnly.sessionId]: { files: 1, truncated: false, skipped: 0 },
    };
    const onDisk = new SessionStore(stateDir, sessionRecordSchema);
    for (const [id, output] of Object.entries(expected)) {
      expect(next.journal.record(id)?.output).toMatchObject(output);
      expect(next.journal.history({ limit: 10 }).sessions.find((r) => r.id === id)?.output).toMatchObject(
        output,
      );
      expect(onDisk.read(id)?.output).toMatchObject(output);
    }
    // Published once each, now; the session published before is not again.
    expect(next.published.sort()).toEqual(Object.keys(expected).sort());
    await vi.waitFor(() => expect(next.posts).toHaveLength(3));
    for (const post of next.posts) {
      const body = JSON.parse(post.body) as { delivery: string; session: SessionRecord };
      expect(body.session.output).toMatchObject(expected[body.session.id] ?? {});
      expect(body.delivery).toBe(deliveries.get(body.session.id));
    }
    await next.notifier.close(0);
    await earlier.notifier.close(0);
    expect(readdirSync(join(stateDir, 'notify'))).toEqual([]);
  });
});

describe("SessionJournal writing a successful session's record to the state dir", () => {
  it('writes it 8 times (each phase recovery decides by, the outcome, its output), carrying the container, image and commit with the next phase', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentd-journal-'));
    dirs.push(stateDir);
    const { journal, store } = journalIn(stateDir, 100);
    journal.load(() => {});
    await journal.recover();
    // Every synchronous write of the state dir's record (an atomic write and a rename on the event loop).
    const writes: string[] = [];
    const put = store.put.bind(store);
    vi.spyOn(store, 'put').mockImplementation((record) => {
      writes.push(record.phase);
      put(record);
    });
    const accept = store.accept.bind(store);
    vi.spyOn(store, 'accept').mockImplementation((record) => {
      writes.push(`accept ${record.phase}`);
      accept(record);
    });
    const { finishedAt: _f, outcome: _o, ...one } = finished(8);
    const request = requestOf({ ...one, phase: 'queued' });
    // As main.ts and the runner tell it, in this order, for a session with a secret on the local Podman.
    journal.accept(request, 1 << 20);
    journal.phase(one.id, 'resolving', 'local');
    journal.phase(one.id, 'creating');
    journal.containerCall(one.id);
    journal.container(one.id, 'agentd-x-demo-s');
    journal.image(one.id, 'localhost/agentd-base:bookworm', 'sha256:1', 'sha256:2');
    // A daemon killed now: the record says what recovery needs (creating, its container's call started).
    expect(store.read(one.id)).toMatchObject({ phase: 'creating', containerCallStarted: true });
    expect(store.read(one.id)).not.toHaveProperty('container');
    journal.phase(one.id, 'cloning');
    expect(store.read(one.id)).toMatchObject({
      phase: 'cloning',
      container: 'agentd-x-demo-s',
      image: 'localhost/agentd-base:bookworm',
      imageId: 'sha256:1',
      imageDigest: 'sha256:2',
    });
    journal.commit(one.id, 'a'.repeat(40));
    // `show` has it at once; the state dir with the next phase.
    expect(journal.record(one.id)).toMatchObject({ commit: 'a'.repeat(40) });
    journal.phase(one.id, 'running');
    expect(store.read(one.id)).toMatchObject({ phase: 'running', commit: 'a'.repeat(40) });
    // An image read after the clone began is written at once: the clone may take long.
    const before = writes.length;
    journal.image(one.id, 'localhost/agentd-base:bookworm', 'sha256:3');
    expect(store.read(one.id)).toMatchObject({ imageId: 'sha256:3' });
    // (Not a successful session's usual write: its image is known at its container's start.)
    expect(writes.splice(before)).toEqual(['running']);
    const decided = {
      outcome: 'succeeded' as const,
      phase: 'running' as const,
      kind: 'success' as const,
      exitCode: 0,
    };
    journal.phase(one.id, 'tearing_down', undefined, decided);
    await journal.finish(request, { ...decided, timings: {} });
    expect(store.read(one.id)).toMatchObject({
      outcome: 'succeeded',
      container: 'agentd-x-demo-s',
      commit: 'a'.repeat(40),
      imageId: 'sha256:3',
    });
    expect(writes).toEqual([
      'accept queued',
      'creating',
      'creating',
      'cloning',
      'running',
      'tearing_down',
      'finished',
      'finished',
    ]);
    await journal.settled();
  });
});
