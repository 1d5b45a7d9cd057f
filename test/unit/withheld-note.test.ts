/**
 * The note beside a session's output archive that says why it is not kept: the setup step's, written on a
 * full filesystem, can be created and left empty by the write that failed. An empty note is no reason (the
 * seal's own words apply), never an empty `missing` ("output none: " with nothing after it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { withheldReason } from '../../src/adapters/output-archive.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function note(content?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'agentd-withheld-'));
  dirs.push(dir);
  const path = join(dir, 'out.withheld');
  if (content !== undefined) writeFileSync(path, content);
  return path;
}

describe('withheldReason', () => {
  it('is none for an empty note or a missing one', () => {
    expect(withheldReason(note(''))).toBeUndefined();
    expect(withheldReason(note('\n'))).toBeUndefined();
    expect(withheldReason(note())).toBeUndefined();
  });

  it("is the note's words otherwise", () => {
    expect(withheldReason(note('the state dir was full when the session ended'))).toBe(
      'the state dir was full when the session ended',
    );
  });
});
