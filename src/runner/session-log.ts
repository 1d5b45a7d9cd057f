import { statSync } from 'node:fs';
import { appendNoFollow, readNoFollow, writeFileAtomic } from '../adapters/state-files.js';

const DROPPED = '[agentd: earlier output dropped to keep this log bounded]\n';
/** Lines agentd itself writes into a log start so; a log holding one cannot be replayed line for line. */
const NOTE_PREFIX = '[agentd: ';
const GAP_RETRY_MS = 2000;

/** Output that could not be written (the state dir was full): recorded in the log once it can be. */
interface Gap {
  lines: number;
  bytes: number;
  since: Date;
  until: Date;
  errno: string;
}

/**
 * Appends a session's output to its log file, keeping at most maxBytes (the newest output). The file
 * is never opened through a symbolic link. A write that fails (a full state dir) never stops the
 * session: the line still reaches followers, and the log gets one note saying what is missing, from
 * when to when, as soon as it can be written.
 */
export class SessionLog {
  private size: number;
  private gap: Gap | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** Size at which a trim failed; tried again only once the log has grown well past it. */
  private trimFailedAt: number | undefined;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    /** Told of each line that could not be written (counted by the metrics). */
    private readonly onMissed: () => void = () => {},
  ) {
    this.size = safeSize(path);
  }

  /** Lines written so far, or undefined once agentd wrote notes into it: where an adopted session resumes. */
  writtenLines(): number | undefined {
    let content: Buffer;
    try {
      content = readNoFollow(this.path);
    } catch {
      return 0;
    }
    if (content.subarray(0, DROPPED.length).toString() === DROPPED) return undefined;
    if (
      content.includes(`\n${NOTE_PREFIX}`) ||
      content.subarray(0, NOTE_PREFIX.length).toString() === NOTE_PREFIX
    )
      return undefined;
    let count = 0;
    for (let i = content.indexOf(10); i !== -1; i = content.indexOf(10, i + 1)) count++;
    return count;
  }

  /** When output was last written, if ever. */
  lastWrite(): Date | undefined {
    try {
      return statSync(this.path).mtime;
    } catch {
      return undefined;
    }
  }

  append(line: string): void {
    const data = `${line}\n`;
    // A pending gap note goes first, in the same write: either both reach the log or neither does.
    const note = this.gap ? this.gapNote(this.gap) : '';
    try {
      appendNoFollow(this.path, note + data, 'write the session log');
    } catch (error) {
      this.missed(Buffer.byteLength(data), (error as { errno?: string }).errno ?? 'EIO');
      return;
    }
    if (note) this.gapWritten();
    this.size += Buffer.byteLength(note + data);
    if (
      this.size > this.maxBytes &&
      (this.trimFailedAt === undefined || this.size > this.trimFailedAt + this.maxBytes / 4)
    )
      this.trim();
  }

  /** The session ended: a gap still unrecorded is written as soon as the state dir has room. */
  close(): void {
    if (this.gap) this.writeGapNote();
  }

  /** Output not written because of a gap, if any (for tests and status). */
  get missing(): { lines: number; bytes: number } | undefined {
    return this.gap && { lines: this.gap.lines, bytes: this.gap.bytes };
  }

  private missed(bytes: number, errno: string): void {
    this.onMissed();
    const now = new Date();
    if (this.gap) {
      this.gap.lines++;
      this.gap.bytes += bytes;
      this.gap.until = now;
    } else {
      this.gap = { lines: 1, bytes, since: now, until: now, errno };
    }
    if (!this.retry) {
      // Without new output the note would wait for ever: try again on a timer until it is written.
      this.retry = setInterval(() => this.writeGapNote(), GAP_RETRY_MS);
      this.retry.unref();
    }
  }

  /** Writes the note for the current gap on its own; true when it is written (or there was none). */
  private writeGapNote(): boolean {
    if (!this.gap) return true;
    const note = this.gapNote(this.gap);
    try {
      appendNoFollow(this.path, note, 'write the session log');
    } catch {
      return false;
    }
    this.size += Buffer.byteLength(note);
    this.gapWritten();
    return true;
  }

  private gapNote(gap: Gap): string {
    const reason =
      gap.errno === 'ENOSPC' || gap.errno === 'EDQUOT'
        ? 'the state dir was full'
        : 'the log could not be written';
    return `${NOTE_PREFIX}${gap.lines} line(s), ${gap.bytes} bytes of output are missing here: ${reason} (${gap.errno}) from ${gap.since.toISOString()} to ${gap.until.toISOString()}; followers received them live]\n`;
  }

  private gapWritten(): void {
    this.gap = undefined;
    clearInterval(this.retry);
    this.retry = undefined;
  }

  private trim(): void {
    try {
      const content = readNoFollow(this.path);
      // Keep the newest half so trimming is rare; cut at a line boundary.
      let start = content.length - Math.floor(this.maxBytes / 2);
      const newline = content.indexOf(10, start);
      start = newline === -1 ? start : newline + 1;
      const kept = Buffer.concat([Buffer.from(DROPPED), content.subarray(start)]);
      writeFileAtomic(this.path, kept, { operation: 'trim the session log' });
      this.size = kept.length;
      this.trimFailedAt = undefined;
    } catch {
      // No room for the trimmed copy: the log stays a little longer than its bound for now.
      this.trimFailedAt = this.size;
    }
  }
}

function safeSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
