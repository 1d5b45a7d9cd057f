import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

export interface CodeBlock {
  lang: string;
  body: string;
}

/** The fenced code blocks of one `## ` section of the README, in order. */
export function readmeSection(heading: RegExp): { text: string; blocks: CodeBlock[] } {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const sections = readme.split(/^(?=## )/m);
  const text = sections.find((s) => heading.test(s.split('\n', 1)[0] ?? ''));
  if (text === undefined) throw new Error(`README.md has no section matching ${heading}`);
  const blocks = [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({
    lang: m[1] ?? '',
    body: m[2] ?? '',
  }));
  return { text, blocks };
}

/** Blocks an operator runs: fenced as sh or bash. */
export function commandBlocks(blocks: CodeBlock[]): CodeBlock[] {
  return blocks.filter((b) => b.lang === 'sh' || b.lang === 'bash');
}
