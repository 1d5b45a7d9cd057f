import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createActor, raise } from 'xstate';
import {
  SessionFiles,
  SessionFilesExistError,
  StagedFilesFullError,
} from '../../src/adapters/session-files.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import { StateDirError } from '../../src/adapters/state-files.js';
import { SessionJournal } from '../../src/daemon/journal.js';
import { createDaemonPort } from '../../src/daemon/port.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import type { ClientEvent, DaemonEmitted, DaemonInput } from '../../src/machines/daemon.machine.js';
import { MAX_STAGING, type SubmitPort, submitTrigger } from '../../src/protocol/submit.js';
import type { TriggerFields } from '../../src/sessions/check-trigger.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';
import { manifestOf, type WorkPayload } from '../../src/sessions/work.js';
import { AGENTS, deferred, type FakeOptions, Fakes, settle } from '../helpers/machine-fakes.js';
import { makeTempDir } from '../helpers/resources.js';

/** A megabyte of request and 64 small input files: what the auditor's client sent with each trigger. */
const PAYLOAD: WorkPayload = {
  request: Buffer.alloc(1024 * 1024, 'x'),
  inputs: Array.from({ length: 64 }, (_, i) => ({ name: `in-${i}`, bytes: Buffer.from('A') })),
};

/** What happened at the port, in order. */
type Call = { call: 'send'; event: ClientEvent } | { call: 'stage' | 'unstage'; sessionId: string };

/**
 * A port whose machine answers `answer`, and says beforehand whether it makes no session (`noSession`);
 * its staging fails with `stageFails`, or is `stage`.
 */
function fakePort(
  answer: DaemonEmitted | undefined,
  options: { noSession?: boolean; stageFails?: Error; stage?: SubmitPort['stage'] } = {},
) {
  const calls: Call[] = [];
  const counted: string[] = [];
  const port: SubmitPort = {
    turnedAway: (code) => {
      counted.push(code);
    },
    makesNoSession: () => options.noSession ?? false,
    send: (event) => {
      calls.push({ call: 'send', event });
      return answer === undefined ? [] : [answer];
    },
    stage: async (sessionId, payload) => {
      calls.push({ call: 'stage', sessionId });
      if (options.stageFails) throw options.stageFails;
      await options.stage?.(sessionId, payload);
    },
    unstage: (sessionId) => {
      calls.push({ call: 'unstage', sessionId });
    },
  };
  return { port, calls, counted, kinds: () => calls.map((c) => c.call) };
}

const rejected = (code: string, reason = `because ${code}`) =>
  ({ type: 'trigger.rejected', sessionId: 's1', code, reason }) as DaemonEmitted;
const ACCEPTED: DaemonEmitted = { type: 'trigger.accepted', sessionId: 's1', queued: false, position: 0 };

describe('submitTrigger: a trigger the daemon turns away is never staged', () => {
  it('sends a trigger the daemon makes no session of to the machine without writing its files', async () => {
    const { port, calls, kinds } = fakePort(rejected('unknown_agent'), { noSession: true });
    expect(await submitTrigger(port, 's1', { agent: 'nope' }, PAYLOAD)).toEqual({
      accepted: false,
      code: 'unknown_agent',
      reason: 'because unknown_agent',
    });
    expect(kinds()).toEqual(['send']);
    // The machine gets no digests of files that were never written.
    expect(calls[0]).toEqual({ call: 'send', event: { type: 'trigger', sessionId: 's1', agent: 'nope' } });
  });

  it("answers a repeated key with its session without writing the trigger's files", async () => {
    const existing: DaemonEmitted = { ...ACCEPTED, sessionId: 'first', existing: true };
    const { port, kinds } = fakePort(existing, { noSession: true });
    expect(await submitTrigger(port, 's1', { agent: 'demo', key: 'k' }, PAYLOAD)).toEqual({
      accepted: true,
      sessionId: 'first',
      queued: false,
      position: 0,
      existing: true,
    });
    expect(kinds()).toEqual(['send']);
  });

  it('refuses content over the limits with bad_input before anything else, and sends nothing', async () => {
    const { port, kinds } = fakePort(ACCEPTED, { noSession: true });
    const big = {
      inputs: Array.from({ length: 65 }, (_, i) => ({ name: `f${i}`, bytes: Buffer.from('A') })),
    };
    expect(await submitTrigger(port, 's1', { agent: 'nope' }, big)).toMatchObject({ code: 'bad_input' });
    expect(kinds()).toEqual([]);
  });

  it('stages the files of a trigger that may make a session before sending it, with their digests', async () => {
    const { port, calls, kinds } = fakePort(ACCEPTED);
    expect(await submitTrigger(port, 's1', { agent: 'demo' }, PAYLOAD)).toMatchObject({ accepted: true });
    expect(kinds()).toEqual(['stage', 'send']);
    expect(calls[1]).toEqual({
      call: 'send',
      event: { type: 'trigger', sessionId: 's1', agent: 'demo', work: manifestOf(PAYLOAD) },
    });
  });

  it('removes what it staged when the machine still refuses, or answers with a key’s session', async () => {
    for (const answer of [rejected('queue_full'), { ...ACCEPTED, existing: true }, undefined]) {
      const { port, kinds } = fakePort(answer as DaemonEmitted | undefined);
      await submitTrigger(port, 's1', { agent: 'demo' }, PAYLOAD);
      expect(kinds()).toEqual(['stage', 'send', 'unstage']);
    }
  });

  it('refuses a trigger whose files the state dir cannot take, and sends nothing', async () => {
    const full = new StateDirError(
      'store the request',
      '/state/work/s1',
      Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }),
    );
    const { port, kinds } = fakePort(ACCEPTED, { stageFails: full });
    expect(await submitTrigger(port, 's1', { agent: 'demo' }, PAYLOAD)).toMatchObject({
      accepted: false,
      code: 'state_dir_full',
    });
    expect(kinds()).toEqual(['stage']);
  });

  it('counts the triggers it turns away itself (agentd_triggers_rejected_total), not those the machine rejects', async () => {
    const big = {
      inputs: Array.from({ length: 65 }, (_, i) => ({ name: `f${i}`, bytes: Buffer.from('A') })),
    };
    const badInput = fakePort(ACCEPTED);
    await submitTrigger(badInput.port, 's1', { agent: 'demo' }, big);
    expect(badInput.counted).toEqual(['bad_input']);
    const full = new StateDirError(
      'store the request',
      '/state/work/s1',
      Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }),
    );
    const noRoom = fakePort(ACCEPTED, { stageFails: full });
    await submitTrigger(noRoom.port, 's1', { agent: 'demo' }, PAYLOAD);
    expect(noRoom.counted).toEqual(['state_dir_full']);
    // The machine's answers are counted where it emits them (observe.ts): not twice.
    for (const [answer, noSession] of [
      [rejected('unknown_agent'), true],
      [rejected('queue_full'), false],
    ] as const) {
      const machine = fakePort(answer, { noSession });
      await submitTrigger(machine.port, 's1', { agent: 'demo' }, PAYLOAD);
      expect(machine.counted).toEqual([]);
    }
  });

  it('sends a trigger without files as it is, whatever the state', async () => {
    const { port, kinds } = fakePort(ACCEPTED, { noSession: true });
    await submitTrigger(port, 's1', { agent: 'demo' }, { inputs: [] });
    await submitTrigger(port, 's1', { agent: 'demo' });
    expect(kinds()).toEqual(['send', 'send']);
  });
});

/**
 * The real daemon machine behind the real port (src/daemon/port.ts), with a journal that notes what is
 * staged: the pre-check must agree with the machine, never keeping the files from a session it makes.
 */
async function daemon(options: FakeOptions & Partial<DaemonInput> = {}) {
  const fakes = new Fakes(options);
  const actor = createActor(fakes.daemon(), {
    input: {
      agents: AGENTS,
      maxSessions: options.maxSessions ?? 1,
      ...(options.maxQueued ? { maxQueued: options.maxQueued } : {}),
    },
  });
  actor.start();
  await settle();
  const staged: { sessionId: string; recordedBefore: boolean }[] = [];
  const unstaged: string[] = [];
  const journal = {
    used: () => false,
    stage: async (sessionId: string) => {
      staged.push({ sessionId, recordedBefore: fakes.accepted.some((r) => r.sessionId === sessionId) });
    },
    unstage: (sessionId: string) => unstaged.push(sessionId),
  } as unknown as SessionJournal;
  const port = createDaemonPort({
    actor,
    journal,
    reload: async () => ({ applied: false }) as never,
    version: '0.0.0',
    instanceId: 'test',
    socket: '/nowhere',
    log: pino({ level: 'silent' }),
  });
  const submit = (sessionId: string, fields: Partial<TriggerFields> = {}) =>
    submitTrigger(port, sessionId, { agent: 'demo', ...fields }, PAYLOAD);
  return { actor, fakes, port, staged, unstaged, submit };
}

describe('submitTrigger with the daemon machine', () => {
  it("stages an accepted trigger's files before its session is recorded, and nothing for an unknown agent", async () => {
    const d = await daemon();
    expect(await d.submit('s1')).toMatchObject({ accepted: true, sessionId: 's1' });
    expect(d.staged).toEqual([{ sessionId: 's1', recordedBefore: false }]);
    expect(d.fakes.accepted.map((r) => [r.sessionId, r.work])).toEqual([['s1', manifestOf(PAYLOAD)]]);
    expect(await d.submit('s2', { agent: 'nope' })).toMatchObject({ accepted: false, code: 'unknown_agent' });
    expect(d.staged.map((s) => s.sessionId)).toEqual(['s1']);
    expect(d.unstaged).toEqual([]);
  });

  it('stages nothing while degraded, draining or starting; a repeated key still gets its session', async () => {
    const d = await daemon();
    expect(await d.submit('s1', { key: 'k' })).toMatchObject({ accepted: true });
    d.actor.send({ type: 'stateDir.unwritable', code: 'state_dir_full', reason: 'state dir full' });
    expect(d.port.state()).toBe('degraded');
    expect(await d.submit('s2')).toMatchObject({ accepted: false, code: 'state_dir_full' });
    expect(await d.submit('s3', { key: 'k' })).toMatchObject({
      accepted: true,
      sessionId: 's1',
      existing: true,
    });
    d.actor.send({ type: 'stateDir.writable' });
    d.port.send({ type: 'shutdown' });
    expect(d.port.state()).toBe('shutdown.draining');
    expect(await d.submit('s4')).toMatchObject({ accepted: false, code: 'not_accepting' });
    expect(await d.submit('s5', { key: 'k' })).toMatchObject({
      accepted: true,
      sessionId: 's1',
      existing: true,
    });
    expect(d.staged.map((s) => s.sessionId)).toEqual(['s1']);
    expect(d.unstaged).toEqual([]);

    const starting = await daemon({ reconcile: 'manual' });
    expect(await starting.submit('s1')).toMatchObject({ accepted: false, code: 'not_accepting' });
    expect(starting.staged).toEqual([]);
  });

  it('stages nothing while ready for a repeated key, a full queue, a used session id or a rule it breaks', async () => {
    const d = await daemon({ maxSessions: 1, maxQueued: 1 });
    expect(await d.submit('s1', { key: 'k' })).toMatchObject({ accepted: true, sessionId: 's1' });
    expect(await d.submit('s2', { key: 'k' })).toMatchObject({
      accepted: true,
      sessionId: 's1',
      existing: true,
    });
    expect(await d.submit('s3', { agent: 'norepo', key: 'k' })).toMatchObject({ code: 'key_conflict' });
    expect(await d.submit('s1')).toMatchObject({ code: 'duplicate_session' });
    expect(await d.submit('s4', { timeout: 'soon' })).toMatchObject({ code: 'bad_timeout' });
    expect(await d.submit('s5')).toMatchObject({ accepted: true, queued: true });
    expect(await d.submit('s6')).toMatchObject({ code: 'queue_full' });
    expect(d.staged.map((s) => s.sessionId)).toEqual(['s1', 's5']);
    expect(d.unstaged).toEqual([]);
  });
});

describe('staging a trigger’s files', () => {
  it('takes at most so many bytes for all sessions together; what a finished session frees is taken again', async () => {
    const files = new SessionFiles(makeTempDir('agentd-unit-stage-'), 2 * 1024 * 1024 + 1024);
    await files.stage('000000000000000a', PAYLOAD);
    await files.stage('000000000000000b', PAYLOAD);
    await expect(files.stage('000000000000000c', PAYLOAD)).rejects.toThrow(StagedFilesFullError);
    expect(files.sessions().sort()).toEqual(['000000000000000a', '000000000000000b']);
    files.remove('000000000000000a');
    await files.stage('000000000000000c', PAYLOAD);
    // Turned away for now: retry later.
    const { port } = fakePort(ACCEPTED, { stage: (id, payload) => files.stage(id, payload) });
    expect(await submitTrigger(port, '000000000000000d', { agent: 'demo' }, PAYLOAD)).toMatchObject({
      accepted: false,
      code: 'queue_full',
    });
  });

  it('writes and syncs them in the thread pool: the event loop turns while they go to disk', async () => {
    const files = new SessionFiles(makeTempDir('agentd-unit-stage-'));
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    await files.stage('0123456789abcdef', PAYLOAD);
    // Before, 66 writes and fsyncs ran on the event loop: nothing else ran until they were done.
    expect(turned).toBe(true);
    const paths = files.paths('0123456789abcdef');
    expect(readFileSync(paths.request)).toEqual(PAYLOAD.request);
    expect(readdirSync(paths.input)).toHaveLength(64);
    expect(statSync(paths.input).mode & 0o777).toBe(0o555);
    expect(statSync(paths.request).mode & 0o777).toBe(0o444);
  });
});

describe('two triggers with one session id and files', () => {
  it("leave the first's files whole and count them once: the second is a duplicate_session", async () => {
    const state = makeTempDir('agentd-unit-stage-');
    const files = new SessionFiles(state, 2 * 1024 * 1024 + 1024);
    const id = '00000000000000aa';
    const other = {
      request: Buffer.from('the other request'),
      inputs: [{ name: 'x', bytes: Buffer.from('X') }],
    };
    // At once: both got past the machine, which knew neither.
    const first = files.stage(id, PAYLOAD);
    await expect(files.stage(id, other)).rejects.toThrow(SessionFilesExistError);
    await first;
    // After: the first's were written and it was accepted.
    const { port, calls } = fakePort(ACCEPTED, { stage: (sid, payload) => files.stage(sid, payload) });
    expect(await submitTrigger(port, id, { agent: 'demo' }, other)).toEqual({
      accepted: false,
      code: 'duplicate_session',
      reason: `session id ${id} is already being accepted with its files; leave sessionId out to get a fresh one`,
    });
    expect(calls.map((c) => c.call)).toEqual(['stage']);
    const paths = files.paths(id);
    expect(readFileSync(paths.request)).toEqual(PAYLOAD.request);
    expect(readdirSync(paths.input)).toHaveLength(64);
    // Counted once: one more payload fits (two in all), and all of it again once the first is gone.
    await files.stage('00000000000000bb', PAYLOAD);
    files.remove(id);
    files.remove('00000000000000bb');
    await files.stage('00000000000000cc', PAYLOAD);
    await files.stage('00000000000000dd', PAYLOAD);
    // A directory another daemon left (not staged by this one) is not removed either.
    const later = new SessionFiles(state);
    await expect(later.stage('00000000000000cc', other)).rejects.toThrow(SessionFilesExistError);
    expect(readFileSync(files.paths('00000000000000cc').request)).toEqual(PAYLOAD.request);
  });
});

describe('triggers whose files are being written', () => {
  it(`are at most ${MAX_STAGING} at once: the next is turned away for now, and taken once one is done`, async () => {
    const releases: (() => void)[] = [];
    let released = false;
    const { port } = fakePort(ACCEPTED, {
      stage: () => (released ? Promise.resolve() : new Promise<void>((resolve) => releases.push(resolve))),
    });
    const pending = Array.from({ length: MAX_STAGING }, () =>
      submitTrigger(port, 's1', { agent: 'demo' }, PAYLOAD),
    );
    // Each holds its decoded files until they are on disk: a pipelining client cannot make it hold more.
    expect(await submitTrigger(port, 's1', { agent: 'demo' }, PAYLOAD)).toMatchObject({
      accepted: false,
      code: 'queue_full',
    });
    released = true;
    for (const release of releases) release();
    for (const result of await Promise.all(pending)) expect(result).toMatchObject({ accepted: true });
    expect(await submitTrigger(port, 's1', { agent: 'demo' }, PAYLOAD)).toMatchObject({ accepted: true });
  });
});

/**
 * The real journal and session files behind the real port and the daemon machine (recording as
 * main.ts does), with the staging of files held open once they are written (`hold`), so that another
 * trigger comes while a trigger's files are being staged.
 */
async function filedDaemon() {
  const stateDir = makeTempDir('agentd-unit-stage-');
  const log = pino({ level: 'silent' });
  const store = new SessionStore(stateDir, sessionRecordSchema);
  const files = new SessionFiles(stateDir, 2 * 1024 * 1024 + 1024);
  const keeper = new RecordKeeper(
    { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
    files,
    log,
  );
  const journal = new SessionJournal(store, files, keeper, log, 100);
  const fakes = new Fakes();
  const machine = fakes.daemon().provide({
    guards: { sessionIdRecorded: (_, sessionId) => journal.used(sessionId) },
    actions: {
      recordAccepted: raise((_, { session, requestId }) => {
        const answer = requestId === undefined ? { session } : { session, requestId };
        try {
          journal.accept(session.request, session.agent.resources.output.bytes);
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          return { type: 'trigger.unrecorded' as const, ...answer, code: 'state_dir_unwritable', reason };
        }
        return { type: 'trigger.recorded' as const, ...answer };
      }),
    },
  });
  const actor = createActor(machine, { input: { agents: AGENTS, maxSessions: 2 } });
  actor.start();
  await settle();
  const port = createDaemonPort({
    actor,
    journal,
    reload: async () => ({ applied: false }) as never,
    version: '0.0.0',
    instanceId: 'test',
    socket: '/nowhere',
    log,
  });
  const staged = deferred<void>();
  const hold = deferred<void>();
  const stage = files.stage.bind(files);
  files.stage = async (sessionId, content) => {
    await stage(sessionId, content);
    staged.resolve();
    await hold.promise;
  };
  return { actor, store, files, journal, port, staged, hold };
}

describe('a trigger with files and one without that choose one session id', () => {
  const id = '00000000000000ee';

  it('the one without files is accepted while the other stages: the refused one removes only its own files', async () => {
    const d = await filedDaemon();
    const first = submitTrigger(d.port, id, { agent: 'demo' }, PAYLOAD);
    await d.staged.promise;
    // The machine knows nothing of the first yet: the second is accepted, its work dir the same.
    expect(submitTrigger(d.port, id, { agent: 'demo' })).toMatchObject({ accepted: true, sessionId: id });
    const paths = d.files.paths(id);
    writeFileSync(join(paths.copy, 'out.tar'), 'the output of the session');
    d.hold.resolve();
    expect(await first).toMatchObject({ accepted: false, code: 'duplicate_session' });
    // The accepted session's work dir and its output place are whole; the refused one's files are gone
    // and no longer counted (two more payloads fit).
    expect(readFileSync(paths.archive, 'utf8')).toBe('the output of the session');
    expect(existsSync(paths.request)).toBe(false);
    expect(existsSync(paths.input)).toBe(false);
    await d.files.stage('00000000000000e1', PAYLOAD);
    await d.files.stage('00000000000000e2', PAYLOAD);
    await d.journal.settled();
  });

  it('the one without files that cannot be recorded leaves the staged files of the other alone', async () => {
    const d = await filedDaemon();
    const first = submitTrigger(d.port, id, { agent: 'demo' }, PAYLOAD);
    await d.staged.promise;
    const accept = d.store.accept.bind(d.store);
    d.store.accept = () => {
      throw new StateDirError(
        'write the record',
        d.store.dir,
        Object.assign(new Error('EIO'), { code: 'EIO' }),
      );
    };
    expect(submitTrigger(d.port, id, { agent: 'demo' })).toMatchObject({ accepted: false });
    d.store.accept = accept;
    // The state dir takes writes again before the first is decided: it is accepted, with its files.
    d.actor.send({ type: 'stateDir.writable' });
    d.hold.resolve();
    expect(await first).toMatchObject({ accepted: true, sessionId: id });
    const paths = d.files.paths(id);
    expect(readFileSync(paths.request)).toEqual(PAYLOAD.request);
    expect(readdirSync(paths.input)).toHaveLength(64);
    expect(existsSync(paths.copy)).toBe(true);
    await d.journal.settled();
  });
});
