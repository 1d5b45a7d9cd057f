import { appendFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const DROPPED = '[agentd: earlier output dropped to keep this log bounded]\n';

/** Appends a session's output to its log file, keeping at most maxBytes (the newest output). */
export class SessionLog {
  private size: number;
  constructor(
    readonly path: string,
    private readonly maxBytes: number,
  ) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.size = safeSize(path);
  }

  /** Lines written so far, or undefined once trimming dropped some: where an adopted session resumes. */
  writtenLines(): number | undefined {
    let content: Buffer;
    try {
      content = readFileSync(this.path);
    } catch {
      return 0;
    }
    if (content.subarray(0, DROPPED.length).toString() === DROPPED) return undefined;
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
    appendFileSync(this.path, data, { mode: 0o600 });
    this.size += Buffer.byteLength(data);
    if (this.size > this.maxBytes) this.trim();
  }

  private trim(): void {
    const content = readFileSync(this.path);
    // Keep the newest half so trimming is rare; cut at a line boundary.
    let start = content.length - Math.floor(this.maxBytes / 2);
    const newline = content.indexOf(10, start);
    start = newline === -1 ? start : newline + 1;
    const kept = Buffer.concat([Buffer.from(DROPPED), content.subarray(start)]);
    writeFileSync(this.path, kept, { mode: 0o600 });
    this.size = kept.length;
  }
}

function safeSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
