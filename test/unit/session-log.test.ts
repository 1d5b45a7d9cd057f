/** The bounded session log (src/runner/session-log.ts): newest output kept, where an adoption resumes. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SessionLog } from '../../src/runner/session-log.js';
import { makeTempDir } from '../helpers/resources.js';

const DROPPED = '[agentd: earlier output dropped to keep this log bounded]';

function log(maxBytes = 1000): SessionLog {
  return new SessionLog(join(makeTempDir('agentd-unit-log-'), 'session.log'), maxBytes);
}

describe('session log', () => {
  it('appends lines and counts them for an adopted session to skip on replay', () => {
    const l = log();
    expect(l.writtenLines()).toBe(0);
    expect(l.lastWrite()).toBeUndefined();
    l.append('one');
    l.append('two');
    expect(readFileSync(l.path, 'utf8')).toBe('one\ntwo\n');
    expect(l.writtenLines()).toBe(2);
    expect(l.lastWrite()).toBeInstanceOf(Date);
  });

  it('keeps the newest output under its bound, cut at a line, and says what was dropped', () => {
    const l = log(1000);
    for (let i = 0; i < 200; i++) l.append(`line ${i.toString().padStart(3, '0')} ${'x'.repeat(20)}`);
    const text = readFileSync(l.path, 'utf8');
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(1000 + DROPPED.length + 1);
    const lines = text.split('\n').filter(Boolean);
    expect(lines[0]).toBe(DROPPED);
    expect(lines.at(-1)).toMatch(/^line 199 /);
    expect(lines.slice(1).every((line) => /^line \d{3} x{20}$/.test(line))).toBe(true);
    // A trimmed log cannot be replayed line for line: an adoption resumes from its last write instead.
    expect(l.writtenLines()).toBeUndefined();
  });

  it("cannot be replayed line for line once it holds agentd's own notes", () => {
    const l = log();
    l.append('output');
    l.append('[agentd: output withheld: ...]');
    expect(l.writtenLines()).toBeUndefined();
  });

  it('picks up an existing log where it ends (a daemon restart)', () => {
    const dir = makeTempDir('agentd-unit-log-');
    writeFileSync(join(dir, 'session.log'), 'a\nb\n');
    const l = new SessionLog(join(dir, 'session.log'), 1000);
    l.append('c');
    expect(readFileSync(l.path, 'utf8')).toBe('a\nb\nc\n');
    expect(l.writtenLines()).toBe(3);
  });
});
