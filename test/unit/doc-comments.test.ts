/**
 * A doc comment documents what follows it. One left behind when what it documented moved away (a
 * constant moved to src/constants.ts, a function moved down the file) reads as the doc of whatever
 * comes next, or of nothing. The check: a one-line doc comment whose next line that is not blank opens
 * another doc comment documents nothing. A module's opening note is a block of its own (several lines,
 * or a blank line and code after it), so it is not taken for one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');
/** The folders this check holds to it: all of src. */
const FOLDERS = readdirSync(SRC, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name);

function orphanedDocComments(path: string): string[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const found: string[] = [];
  lines.forEach((line, i) => {
    const text = line.trim();
    if (!text.startsWith('/**') || !text.endsWith('*/')) return;
    const next = lines.slice(i + 1).find((l) => l.trim() !== '');
    if (next?.trim().startsWith('/**')) found.push(`${path.slice(SRC.length + 1)}:${i + 1}: ${text}`);
  });
  return found;
}

describe('doc comments', () => {
  it('each documents what follows it: none is left with nothing under it', () => {
    const found = FOLDERS.flatMap((folder) =>
      readdirSync(join(SRC, folder), { recursive: true, encoding: 'utf8' })
        .filter((name) => name.endsWith('.ts'))
        .flatMap((name) => orphanedDocComments(join(SRC, folder, name))),
    );
    expect(found).toEqual([]);
  });
});
