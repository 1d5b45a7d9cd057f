/**
 * What a plain `agentd trigger` and `agentd status` load before they connect. Every module and Node
 * built-in the CLI imports at its start is paid by every call (scripts and hooks call these often, and
 * `trigger --quiet` is the whole-process session benchmark): measured on a 2-core machine, the three
 * kept out below (the daemon's young-generation module with node:v8 and node:vm; session-follow,
 * session-wait and reply-check, which only a trigger whose connection was lost needs; ownership.ts's
 * directory creation with state-files.ts and node:crypto) were 7 of the 32 modules of agentd and 29 of
 * the 90 built-ins a trigger loaded, and about 10 ms of its 69 ms of CPU (`node -e 0`: 26 ms).
 *
 * The graph is the one Node loads: each file compiled as `tsc` emits it (imports used only as types
 * are dropped), its static imports followed; `import()` is not followed (loaded when used).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');

/**
 * The imports of a source file as emitted: relative ones as src paths, packages and built-ins as named;
 * static ones only, or `import()`s too.
 */
function staticImports(file: string, dynamic = false): string[] {
  const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    fileName: file,
  });
  const specifiers = [
    ...outputText.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+'([^']+)'/gm),
    ...outputText.matchAll(/^\s*import\s+'([^']+)'/gm),
    ...(dynamic ? outputText.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g) : []),
  ].map((match) => match[1] as string);
  return specifiers.map((specifier) =>
    specifier.startsWith('.') ? resolve(dirname(file), specifier).replace(/\.js$/, '.ts') : specifier,
  );
}

/**
 * Everything the entry files load statically (with `dynamic`, also whatever they may load later through
 * `import()`), as src-relative paths and package or built-in names.
 */
function loadedBy(entries: string[], dynamic = false): Set<string> {
  const seen = new Set<string>();
  const queue = entries.map((entry) => join(SRC, entry));
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const name = file.startsWith(SRC) ? relative(SRC, file) : file;
    if (seen.has(name)) continue;
    seen.add(name);
    if (file.startsWith(SRC)) queue.push(...staticImports(file, dynamic));
  }
  return seen;
}

// The entry imports quick.ts, which imports the command's runner, each with import().
const TRIGGER = loadedBy(['cli/index.ts', 'cli/quick.ts', 'cli/trigger-run.ts']);
const STATUS = loadedBy(['cli/index.ts', 'cli/quick.ts', 'cli/status-run.ts']);

describe('what a plain trigger and status load at their start', () => {
  it('follows the real graph (the modules every client needs are found)', () => {
    for (const needed of ['cli/client.ts', 'cli/client-io.ts', 'adapters/ownership-checks.ts', 'node:net']) {
      expect(TRIGGER.has(needed), needed).toBe(true);
      expect(STATUS.has(needed), needed).toBe(true);
    }
    expect(STATUS.has('cli/reply-check.ts')).toBe(true);
  });

  it("leave out the daemon's heap tuning, directory creation and node:crypto", () => {
    for (const loaded of [TRIGGER, STATUS]) {
      for (const absent of [
        'daemon/young-generation.ts',
        'adapters/ownership.ts',
        'adapters/state-files.ts',
        'node:v8',
        'node:vm',
        'node:crypto',
        'clipanion',
        'zod',
      ]) {
        expect(loaded.has(absent), absent).toBe(false);
      }
    }
  });

  // reply-check is loaded: every reply is checked against its table of fields (4b49c7a); it loads no zod.
  it('trigger leaves out what only a lost connection needs (session-follow, session-wait)', () => {
    for (const absent of ['cli/session-follow.ts', 'cli/session-wait.ts']) {
      expect(TRIGGER.has(absent), absent).toBe(false);
    }
  });
});

describe('what `agentd wait` may load', () => {
  // The entry and clipanion's commands table load each command with import(): their static graphs, and
  // wait's whole, import() included (it loaded zod once the outcome came, to check its record).
  const WAIT = new Set([...loadedBy(['cli/index.ts', 'cli/cli.ts']), ...loadedBy(['cli/wait.ts'], true)]);

  it('follows the real graph: the client, its reply check and the wait across a restart', () => {
    for (const needed of ['cli/client.ts', 'cli/reply-check.ts', 'cli/session-wait.ts', 'clipanion']) {
      expect(WAIT.has(needed), needed).toBe(true);
    }
  });

  it('loads no zod, nor any schema of it, at any point: the outcome is checked by the reply tables', () => {
    for (const absent of ['zod', 'sessions/records.ts', 'protocol/replies.ts', 'daemon/main.ts']) {
      expect(WAIT.has(absent), absent).toBe(false);
    }
  });
});
