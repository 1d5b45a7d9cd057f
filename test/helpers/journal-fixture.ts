import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { afterEach } from 'vitest';
import { SessionFiles } from '../../src/adapters/session-files.js';
import { SessionStore } from '../../src/adapters/session-store.js';
import { SessionJournal } from '../../src/daemon/journal.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import { sessionRecordSchema } from '../../src/sessions/records.js';

/** A state dir and the journal over it, wired as main.ts wires them (records kept for a day, 1 GiB). */
export interface JournalFixture {
  /** The temp dir the state dir is in (the state dir itself unless `stateAt` was given). */
  root: string;
  stateDir: string;
  store: SessionStore;
  keeper: RecordKeeper;
  journal: SessionJournal;
}

/**
 * For a test file: its own temp dirs (`tempDir`) and journals (`journalIn`), all closed and removed
 * after each test. Call once at the file's top level.
 */
export function journalFixtures(prefix: string): {
  tempDir: () => string;
  journalIn: (options?: { stateAt?: string }) => JournalFixture;
} {
  const dirs: string[] = [];
  const closing: (() => void)[] = [];
  afterEach(() => {
    for (const close of closing.splice(0)) close();
    // What a seal made 0555 is still removed: rmSync as root, as the tests run.
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
  const journalIn = ({ stateAt }: { stateAt?: string } = {}): JournalFixture => {
    const root = tempDir();
    const stateDir = stateAt === undefined ? root : join(root, stateAt);
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const { store, keeper, journal } = journalOver(stateDir, pino({ level: 'silent' }), 200);
    closing.push(() => keeper.close());
    return { root, stateDir, store, keeper, journal };
  };
  return { tempDir, journalIn };
}

/**
 * The journal over an existing state dir, wired as main.ts wires it (records kept for a day, 1 GiB);
 * the caller closes its keeper. For tests that start several daemons over one state dir.
 */
export function journalOver(
  stateDir: string,
  log: Logger,
  historyLimit: number,
): { store: SessionStore; files: SessionFiles; keeper: RecordKeeper; journal: SessionJournal } {
  const store = new SessionStore(stateDir, sessionRecordSchema);
  const files = new SessionFiles(stateDir);
  const keeper = new RecordKeeper(
    { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
    files,
    log,
  );
  return { store, files, keeper, journal: new SessionJournal(store, files, keeper, log, historyLimit) };
}
