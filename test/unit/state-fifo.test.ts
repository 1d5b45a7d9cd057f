/**
 * A FIFO planted in the state dir where agentd reads a file (a session record, a session log, the
 * schedules, a cache's file) is refused at once, never waited on: a blocking open of a FIFO waits for
 * a writer, and with it the whole event loop.
 *
 * A regression would block this test worker in a synchronous open, where no vitest timeout can end
 * it. So each FIFO has a rescuer beside it, a shell that opens it read-write every RESCUE_MS and
 * closes it again: that lets a blocked open (reader or writer) go on. The old code then returns late,
 * and the tests fail on the time taken and on what was returned instead of hanging.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cacheImageBytes } from '../../src/adapters/cache-image.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import { appendNoFollow, NotRegularFileError, readNoFollow } from '../../src/adapters/state-files.js';
import { LogReader, readSessionLog, SessionLog } from '../../src/runner/session-log.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';
import { sessionRecord } from '../helpers/session-record.js';

/** When a rescuer first lets a blocked open go: well beyond what a refusal takes. */
const RESCUE_MS = 2000;
/** What a refusal may take at most. */
const PROMPT_MS = 1000;
const TIMEOUT = 20_000;

const dirs: string[] = [];
const rescuers: ChildProcess[] = [];
afterEach(() => {
  // The rescuers first: one that outlived its FIFO would create a file where it was. Each is the
  // leader of its own process group: killing the shell alone left its `sleep` running past the test.
  for (const child of rescuers.splice(0)) killGroup(child);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-fifo-'));
  dirs.push(dir);
  return dir;
}

/** Makes a FIFO at path, with its rescuer. */
function plantFifo(path: string): void {
  execFileSync('mkfifo', ['-m', '0600', path]);
  const seconds = String(RESCUE_MS / 1000);
  const script = `while :; do sleep ${seconds}; [ -p "$1" ] || exit 0; exec 3<>"$1"; exec 3>&-; done`;
  rescuers.push(spawn('sh', ['-c', script, 'rescuer', path], { stdio: 'ignore', detached: true }));
}

function killGroup(child: ChildProcess): void {
  try {
    process.kill(-(child.pid as number), 'SIGKILL');
  } catch {
    // Gone already.
  }
}

/** What fn returned or threw, and how long it took. */
function timed<T>(fn: () => T): { value?: T; error?: unknown; ms: number } {
  const start = performance.now();
  try {
    const value = fn();
    return { value, ms: performance.now() - start };
  } catch (error) {
    return { error, ms: performance.now() - start };
  }
}

const record = sessionRecord;

const GOOD = '0123456789abcdef';
const FIFO = '3333333333333333';

describe('a FIFO where agentd reads a state file', () => {
  it(
    'readNoFollow refuses it at once, naming the file and saying to remove it',
    () => {
      const path = join(tempDir(), 'schedules.json');
      plantFifo(path);
      const { error, ms } = timed(() => readNoFollow(path));
      expect(ms).toBeLessThan(PROMPT_MS);
      expect(error).toBeInstanceOf(NotRegularFileError);
      expect((error as NotRegularFileError).code).toBe('EFTYPE');
      expect((error as Error).message).toBe(
        `${path} is a FIFO, not a regular file that agentd made; remove it`,
      );
    },
    TIMEOUT,
  );

  it(
    'the session store quarantines a FIFO record at start, keeps the good ones, and reads it as no record',
    () => {
      const store = new SessionStore(tempDir(), sessionRecordSchema);
      store.accept(record(GOOD));
      const path = join(store.dir, `${FIFO}.json`);
      plantFifo(path);
      const read = timed(() => store.read(FIFO));
      expect(read.ms).toBeLessThan(PROMPT_MS);
      expect(read.value).toBeUndefined();
      const bad: string[] = [];
      const listed = timed(() => store.list((q) => bad.push(`${q.file}: ${q.reason}`)));
      expect(listed.ms).toBeLessThan(PROMPT_MS);
      expect(listed.value?.map((r) => r.id)).toEqual([GOOD]);
      expect(bad).toEqual([`${path}: it is a FIFO, not a regular file`]);
      expect(readdirSync(store.quarantineDir)).toEqual([expect.stringMatching(`^${FIFO}\\.json\\.\\d+$`)]);
    },
    TIMEOUT,
  );

  it(
    'agentd logs (LogReader) reads a FIFO in place of a session log as no log, at once',
    () => {
      const dir = tempDir();
      const path = join(dir, `${FIFO}.log`);
      plantFifo(path);
      const whole = timed(() => readSessionLog(path));
      expect(whole.ms).toBeLessThan(PROMPT_MS);
      expect(whole.value).toEqual([]);
      // A FIFO as the older half: the newer half is still read.
      const other = join(dir, `${GOOD}.log`);
      writeFileSync(other, '1 2025-01-01T00:00:00.000Z out kept\n');
      plantFifo(`${other}.1`);
      const half = timed(() => {
        const reader = new LogReader(other);
        try {
          return reader.next();
        } finally {
          reader.close();
        }
      });
      expect(half.ms).toBeLessThan(PROMPT_MS);
      expect(half.value?.map((entry) => ('text' in entry ? entry.text : entry.reason))).toEqual(['kept']);
    },
    TIMEOUT,
  );

  it(
    'a session log whose file is a FIFO neither waits for it nor writes into it: its output is missing',
    async () => {
      const path = join(tempDir(), `${FIFO}.log`);
      plantFifo(path);
      const made = timed(() => new SessionLog(path, 1024));
      expect(made.ms).toBeLessThan(PROMPT_MS);
      const log = made.value as SessionLog;
      const written = performance.now();
      log.append('nobody reads this');
      await log.flushed();
      expect(performance.now() - written).toBeLessThan(PROMPT_MS);
      expect(log.missing).toEqual({ lines: 1, bytes: 18 });
      const appended = timed(() => appendNoFollow(path, 'x\n', 'write the session log'));
      expect(appended.ms).toBeLessThan(PROMPT_MS);
      expect((appended.error as Error).message).toBe(
        `state dir not writable: cannot write the session log (ENXIO on ${path}); ${path} is a symbolic link or an unexpected file that agentd did not make; remove it`,
      );
      await log.close();
    },
    TIMEOUT,
  );

  it(
    "a cache's file that is a FIFO is no bound's file, at once",
    () => {
      const path = join(tempDir(), 'cache.img');
      plantFifo(path);
      const { value, ms } = timed(() => cacheImageBytes(path));
      expect(ms).toBeLessThan(PROMPT_MS);
      expect(value).toBeUndefined();
    },
    TIMEOUT,
  );
});
