/**
 * DEVELOPERS.md's layout table is where a newcomer looks a module up. Modules added without a word
 * there were found by nobody reading it (36 modules of src/ were named nowhere in it, among them
 * daemon/start-hosts.ts, daemon/leftovers.ts, protocol/limits.ts and config/schema.ts). The check: every
 * module of src/ is named in DEVELOPERS.md by its file name, and every file name the page gives exists.
 * The folders whose rows describe a rule rather than a list (src/cli/: one clipanion command per file;
 * src/protocol/handlers/: one handler per message type) are named as a whole.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');
const PAGE = readFileSync(join(ROOT, 'DEVELOPERS.md'), 'utf8');
/** Folders of src/ whose row says what each file is by a rule: `one class per file`, `one handler per message type`. */
const BY_RULE = ['cli/', 'protocol/handlers/'];

const modules = readdirSync(SRC, { recursive: true, encoding: 'utf8' })
  .filter((name) => name.endsWith('.ts'))
  .map((name) => name.split('\\').join('/'));

/** The file names in backquotes on the page: `reload.ts`, `src/daemon/main.ts`, `adapters/write-behind.ts`. */
function namedFiles(text: string): string[] {
  return [...text.matchAll(/`([A-Za-z0-9_./-]+\.ts)`/g)].map((match) => match[1] as string);
}

describe('DEVELOPERS.md', () => {
  it('names every module of src/ in its layout table', () => {
    const named = new Set(namedFiles(PAGE).map((file) => file.split('/').pop()));
    const unnamed = modules.filter(
      (module) => !BY_RULE.some((folder) => module.startsWith(folder)) && !named.has(module.split('/').pop()),
    );
    expect(unnamed).toEqual([]);
  });

  it('names no module that does not exist', () => {
    const basenames = new Set(modules.map((module) => module.split('/').pop()));
    const testFiles = readdirSync(join(ROOT, 'test'), { recursive: true, encoding: 'utf8' }).map((name) =>
      name.split('\\').join('/').split('/').pop(),
    );
    const missing = namedFiles(PAGE).filter((file) => {
      const base = file.split('/').pop() as string;
      if (file.includes('/')) return !existsSync(join(ROOT, file)) && !existsSync(join(SRC, file));
      return !basenames.has(base) && !testFiles.includes(base);
    });
    expect(missing).toEqual([]);
  });
});
