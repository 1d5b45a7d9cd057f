import { lstatSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SESSION_ID_PATTERN } from '../constants.js';
import { errorMessage } from '../errors.js';
import { ensurePrivateDir } from './ownership.js';
import { readNoFollow, TEMP_JSON_FILE, writeFileAtomic } from './state-files.js';

/**
 * The outcome notifications not yet taken by their webhooks, one file per session in `<state
 * dir>/notify/`, so that a stop or a crash does not lose them: the next start sends them again, with
 * the same delivery ids (a receiver drops repeats by them). A file names each webhook by a hash of
 * its URL, never the URL (it may hold a key) or its secret: the next start finds the webhook in the
 * configuration it then has. Each webhook's entry keeps when its next attempt is due, so a next start
 * resumes it on its schedule, not at once.
 */

const FILE = /^([0-9a-f]{16})\.json$/;
/** An entry is a session record and a few ids (a few KB): a larger file was not written by agentd. */
export const OUTBOX_MAX_FILE_BYTES = 1024 * 1024;

const entrySchema = z.object({
  version: z.literal(1),
  session: z.string().regex(SESSION_ID_PATTERN),
  /** The finished session's record as JSON text (what is POSTed), once its outcome is published. */
  record: z.string().max(OUTBOX_MAX_FILE_BYTES).optional(),
  targets: z
    .array(
      z.object({
        /** sha256 of the webhook's URL (webhookKey). */
        key: z.string().regex(/^[0-9a-f]{64}$/),
        delivery: z.string().uuid(),
        /** POSTs made so far. */
        made: z.number().int().min(0),
        /**
         * When the next POST may go out (ms since the epoch): a next start keeps to it rather than
         * POSTing at once. Left out before a first POST, and by an agentd before it.
         */
        due: z.number().int().min(0).optional(),
        /**
         * Which of the webhooks with this URL (0: the first configured that wants the outcome): the agent's
         * and the daemon's may share one, each with its own key. Left out by an agentd before it.
         */
        nth: z.number().int().min(0).max(255).optional(),
      }),
    )
    .max(256),
});

export type OutboxEntry = z.infer<typeof entrySchema>;

/** A file of the outbox that could not be read: removed when it could be; the reason is for the log. */
export interface UnreadableEntry {
  file: string;
  reason: string;
  removed: boolean;
}

/**
 * Entries a start could not read for a reason of the system, not of their content (EIO, EMFILE, EACCES:
 * an errno), left as they are for a next start to read: they may be good. Or the outbox dir itself.
 */
export interface UnreadNow {
  /** How many; `files` names the first UNREAD_NAMED of them. */
  count: number;
  files: string[];
  /** The first one's error. */
  reason: string;
}

/** Files an UnreadNow names at most (a start with too few file descriptors may fail thousands). */
const UNREAD_NAMED = 10;

/**
 * The errno codes of a file that is not an entry agentd writes (a link, a directory, a FIFO, a socket):
 * dealt with as one that does not parse. Any other errno is the system's (EIO, EMFILE, EACCES, ENOMEM):
 * the entry is left in place.
 */
const NOT_AN_ENTRY_CODES: ReadonlySet<string> = new Set(['ELOOP', 'EFTYPE', 'EISDIR', 'ENXIO']);

/**
 * What a failed write or removal of a session's entry tells its caller (the notifier's
 * outboxFailureLog logs it): only the first failure for that session until one of its writes or its
 * removal succeeds again, so a full state dir says so once per session, not at every attempt.
 */
export type OutboxFailure = (operation: string, error: unknown, session: string) => void;

/** Sessions whose failure was told, remembered at most (the oldest is forgotten, and may be told again). */
const FAILING_REMEMBERED = 1000;

/**
 * Files read at a start at most (the others are removed with a warning). A live daemon keeps fewer: one
 * per session with a delivery under way (256 at most), waiting its turn (10,000) or left here until
 * there is room (4,096; past that it drops them: notifier.ts), or whose outcome is being recorded.
 */
export const OUTBOX_MAX_ENTRIES = 16_384;

export class NotifyOutbox {
  readonly dir: string;
  /** Sessions whose entry could not be written or removed since it last was (see OutboxFailure). */
  private readonly failing = new Set<string>();

  constructor(
    stateDir: string,
    private readonly onFailure: OutboxFailure,
  ) {
    this.dir = join(stateDir, 'notify');
    ensurePrivateDir(this.dir, 'notification outbox');
  }

  /**
   * Writes a session's entry now: before its record says it finished (written the same way, not
   * flushed), so that a crash in between leaves the notification to be sent; before a POST goes out; and
   * after each failed attempt. Synchronous, so that the newest content is always the one on disk (a
   * session's entry changes a few times at most). Returns false when the state dir did not take it.
   */
  writeNow(entry: OutboxEntry): boolean {
    try {
      writeFileAtomic(this.path(entry.session), serialise(entry), {
        operation: 'record an outcome notification',
      });
      this.failing.delete(entry.session);
      return true;
    } catch (error) {
      this.failed(entry.session, 'record an outcome notification', error);
      return false;
    }
  }

  /** Removes a session's entry now (taken or given up). */
  removeNow(session: string): void {
    try {
      unlinkSync(this.path(session));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.failed(session, 'remove a delivered notification', error);
        return;
      }
    }
    this.failing.delete(session);
  }

  /** Tells of a session's failure once until it has an entry written or removed again. */
  private failed(session: string, operation: string, error: unknown): void {
    if (this.failing.has(session)) return;
    this.failing.add(session);
    if (this.failing.size > FAILING_REMEMBERED) {
      const [oldest] = this.failing;
      if (oldest !== undefined) this.failing.delete(oldest);
    }
    this.onFailure(operation, error, session);
  }

  /**
   * The entries left by an earlier daemon, oldest file name first (session ids are random: the order
   * is only stable). Temp files of writes cut short and entries that are not what agentd writes are
   * removed; those that fail to be read for a reason of the system (an errno: EIO, EMFILE) are left in
   * place, in `unread`, for a next start.
   */
  load(): { entries: OutboxEntry[]; unreadable: UnreadableEntry[]; unread?: UnreadNow } {
    const entries: OutboxEntry[] = [];
    const unreadable: UnreadableEntry[] = [];
    let unread: UnreadNow | undefined;
    let names: string[];
    try {
      names = readdirSync(this.dir).sort();
    } catch (error) {
      return { entries, unreadable, unread: { count: 1, files: [this.dir], reason: errorMessage(error) } };
    }
    for (const name of names) {
      const file = join(this.dir, name);
      if (TEMP_JSON_FILE.test(name)) {
        removeQuietly(file);
        continue;
      }
      const match = FILE.exec(name);
      if (!match || entries.length >= OUTBOX_MAX_ENTRIES) {
        const reason = match
          ? `more than ${OUTBOX_MAX_ENTRIES} notifications waiting`
          : 'not a file agentd makes';
        unreadable.push({ file, reason, removed: removeQuietly(file) });
        continue;
      }
      try {
        entries.push(readEntry(file, match[1] as string));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        // Gone since it was listed (taken by a daemon still stopping?): nothing to send from it.
        if (code === 'ENOENT') continue;
        if (typeof code === 'string' && !NOT_AN_ENTRY_CODES.has(code)) {
          unread ??= { count: 0, files: [], reason: errorMessage(error) };
          unread.count += 1;
          if (unread.files.length < UNREAD_NAMED) unread.files.push(file);
          continue;
        }
        unreadable.push({ file, reason: errorMessage(error), removed: removeQuietly(file) });
      }
    }
    return { entries, unreadable, ...(unread === undefined ? {} : { unread }) };
  }

  /**
   * A session's entry as this daemon wrote it: a notification left here while too many waited is read
   * back once there is room. Throws when it is gone or not what agentd writes.
   */
  read(session: string): OutboxEntry {
    return readEntry(this.path(session), session);
  }

  private path(session: string): string {
    return join(this.dir, `${session}.json`);
  }
}

/** One entry file, checked as a start checks it: within its size, its schema, for its session. */
function readEntry(file: string, session: string): OutboxEntry {
  const size = lstatSync(file).size;
  if (size > OUTBOX_MAX_FILE_BYTES) throw new Error(`${size} bytes, more than an entry holds`);
  const entry = entrySchema.parse(JSON.parse(readNoFollow(file).toString('utf8')));
  if (entry.session !== session) throw new Error(`it names session ${entry.session}`);
  return entry;
}

function serialise(entry: OutboxEntry): string {
  return `${JSON.stringify(entry)}\n`;
}

/** Whether path is gone: a directory is not removed (nothing to send from it either way). */
function removeQuietly(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT';
  }
}
