/**
 * The README promises that the npm package carries everything agentd's messages point to. They point to
 * docs/ too: a socket `bad_request` says "see docs/protocol.md", the HTTP API's 400, 404 and 405 "the
 * operations are in docs/openapi.json", its /metrics operation docs/metrics.md. package.json's `files`
 * shipped none of them, so an operator with the installed package was sent to files it did not have.
 * The check: every repository file (scripts/, examples/, docs/) named in a string of src/ (comments
 * left out) is covered by `files`. The e2e package test checks the installed package for scripts/ and
 * examples/ as well.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');
const FILES = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[] }).files;

/** The code of a module without its comments: a line comment, or a line of a block comment. */
function code(text: string): string {
  return text
    .split('\n')
    .filter((line) => !/^\s*(\/\/|\/\*|\*)/.test(line))
    .map((line) => line.replace(/\s\/\/ .*$/, ''))
    .join('\n');
}

function namedInStrings(): Map<string, string> {
  const named = new Map<string, string>();
  for (const name of readdirSync(SRC, { recursive: true, encoding: 'utf8' })) {
    if (!name.endsWith('.ts') || name.startsWith('tools')) continue;
    for (const m of code(readFileSync(join(SRC, name), 'utf8')).matchAll(
      /['"`][^'"`\n]*?\b((?:scripts|examples|docs)\/[\w.-]+\.\w+)/g,
    )) {
      named.set(m[1] as string, name);
    }
  }
  return named;
}

describe('the npm package', () => {
  it('ships every repository file that a message of src/ names', () => {
    const named = namedInStrings();
    expect([...named.keys()]).toEqual(expect.arrayContaining(['docs/protocol.md', 'docs/openapi.json']));
    const missing = [...named]
      .filter(([file]) => !FILES.some((entry) => file === entry || file.startsWith(`${entry}/`)))
      .map(([file, where]) => `${file} (named in src/${where})`);
    expect(missing).toEqual([]);
    for (const file of named.keys()) expect(existsSync(join(ROOT, file)), file).toBe(true);
  });
});
