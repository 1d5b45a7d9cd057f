import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** What the store needs of a record; the record's schema is the sessions layer's (sessions/records.ts). */
export interface StoredRecord {
  id: string;
  outcome?: string;
  finishedAt?: string;
}

/** Validates what is read back: a zod schema, or anything with the same `parse`. */
export interface RecordSchema<R> {
  parse(data: unknown): R;
}

/**
 * Session records as one JSON file each under <state_dir>/sessions, written atomically (temp file
 * + rename) so a crash never leaves half a record.
 */
export class SessionStore<SessionRecord extends StoredRecord = StoredRecord> {
  readonly dir: string;
  constructor(
    stateDir: string,
    private readonly schema: RecordSchema<SessionRecord>,
  ) {
    this.dir = join(stateDir, 'sessions');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  logPath(id: string): string {
    return join(this.dir, `${id}.log`);
  }

  /** `durable` flushes the record to disk before returning: for what a client is about to be promised. */
  write(record: SessionRecord, options: { durable?: boolean } = {}): void {
    const file = join(this.dir, `${record.id}.json`);
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(record)}\n`);
      if (options.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    if (options.durable) syncDirectory(this.dir);
  }

  read(id: string): SessionRecord | undefined {
    if (!/^[0-9a-f]{16}$/.test(id)) return undefined;
    try {
      return this.schema.parse(JSON.parse(readFileSync(join(this.dir, `${id}.json`), 'utf8')));
    } catch {
      return undefined;
    }
  }

  update(id: string, change: (record: SessionRecord) => SessionRecord): SessionRecord | undefined {
    const current = this.read(id);
    if (!current) return undefined;
    const next = change(current);
    this.write(next);
    return next;
  }

  /** Every readable record; unreadable files are reported to onInvalid and skipped. */
  list(onInvalid?: (file: string, error: unknown) => void): SessionRecord[] {
    const records: SessionRecord[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      try {
        records.push(this.schema.parse(JSON.parse(readFileSync(join(this.dir, name), 'utf8'))));
      } catch (error) {
        onInvalid?.(join(this.dir, name), error);
      }
    }
    return records;
  }

  /** Keeps the newest `keep` finished records (and their logs). */
  prune(keep: number): number {
    const finished = this.list()
      .filter((r) => r.outcome !== undefined)
      .sort((a, b) => (b.finishedAt ?? '').localeCompare(a.finishedAt ?? ''));
    const old = finished.slice(keep);
    for (const record of old) {
      rmSync(join(this.dir, `${record.id}.json`), { force: true });
      rmSync(this.logPath(record.id), { force: true });
    }
    return old.length;
  }
}

/** Makes a rename durable: the directory entry is flushed as well. */
function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
