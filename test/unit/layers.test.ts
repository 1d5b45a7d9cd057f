/**
 * The layer rule (DEVELOPERS.md): imports point one way, from the top of this list to the bottom,
 * never back up, and no module imports itself round a cycle. A small import-graph check over src/:
 * every `from '...'` and `import('...')` of a relative path counts, type-only imports included.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');

/** Highest first; folders on one line are peers and may import each other (cycles still fail). */
const LAYERS: readonly (readonly string[])[] = [
  ['cli', 'tools'],
  ['daemon', 'inspector', 'http'],
  ['protocol', 'machines'],
  ['sessions'],
  ['runner'],
  ['adapters'],
  ['config'],
  // Files directly under src/: constants, errors, durations, SecretValue.
  ['(base)'],
];

/** Known exceptions, each with the reason it is allowed to stay for now. */
const ALLOWED: Record<string, string> = {};

function rankOf(folder: string): number {
  const rank = LAYERS.findIndex((layer) => layer.includes(folder));
  if (rank === -1) throw new Error(`src/${folder}/ is in no layer: add it to LAYERS and to DEVELOPERS.md`);
  return rank;
}

function folderOf(file: string): string {
  const parts = relative(SRC, file).split('/');
  return parts.length === 1 ? '(base)' : (parts[0] as string);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The src files a file imports (relative specifiers only; packages are not layers). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [
    ...text.matchAll(/\bfrom\s+'(\.[^']+)'/g),
    ...text.matchAll(/\bimport\s*\(\s*'(\.[^']+)'\s*\)/g),
    ...text.matchAll(/^import\s+'(\.[^']+)'/gm),
  ].map((m) => m[1] as string);
  return [...new Set(specifiers)].map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
}

const name = (file: string) => relative(SRC, file);
type Graph = Map<string, string[]>;

function upwardImports(graph: Graph): string[] {
  const upward: string[] = [];
  for (const [file, deps] of graph) {
    for (const dep of deps) {
      const edge = `${name(file)} → ${name(dep)}`;
      if (rankOf(folderOf(dep)) < rankOf(folderOf(file)) && !(edge in ALLOWED)) upward.push(edge);
    }
  }
  return upward;
}

function cyclesOf(graph: Graph): string[] {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const dep of graph.get(file) ?? []) {
      if (state.get(dep) === 'open')
        cycles.push([...stack.slice(stack.indexOf(dep)), dep].map(name).join(' → '));
      else if (!state.has(dep) && graph.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return cycles;
}

const graph: Graph = new Map(sourceFiles(SRC).map((file) => [file, importsOf(file)]));

describe('layers', () => {
  it('every import resolves to a file in src/', () => {
    const missing = [...graph].flatMap(([file, deps]) =>
      deps.filter((dep) => !graph.has(dep)).map((dep) => `${name(file)} → ${name(dep)}`),
    );
    expect(missing).toEqual([]);
  });

  it('no folder imports from a folder above it', () => {
    expect(upwardImports(graph), 'imports that point up the layers (see DEVELOPERS.md, "Layers")').toEqual(
      [],
    );
  });

  it('no module imports itself round a cycle', () => {
    expect(cyclesOf(graph)).toEqual([]);
  });

  it('catches an upward import and a cycle', () => {
    const [low, high, base] = ['adapters/x.ts', 'sessions/y.ts', 'errors.ts'].map((f) => join(SRC, f));
    const bad: Graph = new Map([
      [low as string, [high as string, base as string]],
      [high as string, [low as string]],
    ]);
    expect(upwardImports(bad)).toEqual(['adapters/x.ts → sessions/y.ts']);
    expect(cyclesOf(bad)).toEqual(['adapters/x.ts → sessions/y.ts → adapters/x.ts']);
  });
});
